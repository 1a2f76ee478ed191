"""The scale workload: K worker processes of one job slot each drain one backlog of no-op jobs on one store
(standard library only; runs in every venv, driven by bench/scale.py through ``<system>_bench.py scale``).

The jobs are ``_jobbodies.record``: each writes one line ``slot pid thread start_ns end_ns`` to a file of the
cell. That file is how the driver follows the drain, so it never asks the store how much is left while the
store's costs are being measured (only once, at the end, to check that the system agrees all is done). It also
gives every system the same claim-latency measure: in one worker (one slot), the gap from one job's end to the
next one's start is what the system spent between two jobs (settle, claim, dispatch).

Figures come from two windows:

- **drain**: from just before the K workers are spawned until the system reports nothing left (or the end of
  a capped window): jobs/s as the other drains measure it, start-up of K interpreters included.
- **steady**: from the first moment every worker has run a job (all K are connected and working) until 90 %
  of the backlog is done, or ``cap`` seconds later: jobs/s, server CPU per job, request segments per job and
  the gaps. If some worker has still run nothing when half the backlog is done, or ``cap`` seconds after the
  workers were spawned, the window starts there (noted).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

import _harness
import _jobbodies
from _serverstats import ServerProbe, segments_between

#: Share of the backlog done at which the steady window ends (uncapped cells).
STEADY_END = 0.9
#: Share of the backlog done at which the steady window starts even if a worker has not run a job yet.
LATE_START = 0.5
#: Seconds the system's bookkeeping may lag once every job body has run.
BOOKKEEPING_WAIT = 10.0
#: A steady window with fewer jobs than this (uncapped: or than 2 % of the backlog) gives no figures.
MIN_WINDOW_JOBS = 100


# -- the records the jobs write -----------------------------------------------------------------------------
Record = tuple[str, int, int, int, int]  # slot, pid, thread, start_ns, end_ns


def parse_records(text: str) -> list[Record]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5:
            out.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])))
    return out


class RecordReader:
    """Follows the record file as it grows: how many jobs ran, and which worker slots have run one."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.done = 0
        self.slots: set[str] = set()

    def poll(self) -> int:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        for line in data[:cut].splitlines():
            self.done += 1
            self.slots.add(line.split(b" ", 1)[0].decode())
        return self.done


def gaps_ns(records: Sequence[Record], lo: int, hi: int) -> tuple[list[int], int]:
    """Per slot, in start order: next start - this end, for jobs whose end is within [lo, hi]. Also how many
    jobs of one slot overlapped (0 when each worker really ran one job at a time)."""
    by_slot: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        by_slot[rec[0]].append(rec)
    gaps: list[int] = []
    overlaps = 0
    for jobs in by_slot.values():
        jobs.sort(key=lambda r: r[3])
        for prev, nxt in pairwise(jobs):
            if lo <= prev[4] <= hi:
                if nxt[3] < prev[4]:
                    overlaps += 1
                else:
                    gaps.append(nxt[3] - prev[4])
    return gaps, overlaps


def ended_between(records: Sequence[Record], lo: int, hi: int) -> int:
    return sum(1 for rec in records if lo <= rec[4] <= hi)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (as the latency workload reports)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def per_job(before: dict[str, Any], after: dict[str, Any], records: Sequence[Record]) -> dict[str, Any]:
    """Server CPU, requests and (Redis) read events and commands per job between two probe snapshots, each
    divided by the jobs that ended between the moments that figure was read."""
    if not before or not after:
        return {}
    out: dict[str, Any] = {}
    jobs = ended_between(records, before["cpu_t"], after["cpu_t"])
    if jobs:
        out["cpu_s"] = after["cpu_s"] - before["cpu_s"]
        out["cpu_per_job_us"] = out["cpu_s"] / jobs * 1e6
        for key in ("reads", "commands"):
            if key in after:
                out[f"{key}_per_job"] = (after[key] - before[key]) / jobs
    seg_jobs = ended_between(records, before["ss_t"], after["ss_t"])
    seg = segments_between(before["segments"], after["segments"])
    out.update(connections=seg["connections"], connections_lost=seg["lost"], segments=seg["segments"])
    if seg_jobs:
        out["segments_per_job"] = seg["segments"] / seg_jobs
    return out


# -- the server of the store ---------------------------------------------------------------------------------
def probe_for(store: str) -> ServerProbe:
    if store == "redis":
        url = urlsplit(_harness.REDIS_URL)
        return ServerProbe("redis", url.hostname or "127.0.0.1", url.port or 6379)
    if store == "postgres":
        url = urlsplit(_harness.PG_DSN_BASE)
        return ServerProbe("postgres", url.hostname or "127.0.0.1", url.port or 5432)
    return ServerProbe("none")


def record_call_us(workdir: str, calls: int = 2000) -> float:
    """What one ``record()`` call costs in this process, write included (the job body's own cost)."""
    path = os.path.join(workdir, "calibration.txt")
    open(path, "w").close()
    os.environ["BENCH_SCALE_RECORDS"] = path
    try:
        t0 = time.perf_counter()
        for _ in range(calls):
            _jobbodies.record()
        return (time.perf_counter() - t0) / calls * 1e6
    finally:
        del os.environ["BENCH_SCALE_RECORDS"]
        os.unlink(path)


# -- worker processes ----------------------------------------------------------------------------------------
def start_workers(adapter: _harness.Adapter, count: int, records: str) -> tuple[list[_harness.WorkerProcess], str,
                                                                                    list[str]]:
    argv, env, desc = adapter.worker_command("scale")
    workers = []
    for slot in range(count):
        slot_env = dict(env, BENCH_SCALE_RECORDS=records, BENCH_SCALE_SLOT=str(slot))
        workers.append(_harness.WorkerProcess(argv, slot_env, os.path.join(adapter.workdir, f"worker-{slot}.log")))
    return workers, desc, argv


def stop_all(workers: Sequence[_harness.WorkerProcess], grace: float = 10.0) -> None:
    """SIGTERM every worker's process group at once, SIGKILL what is left after ``grace`` seconds."""
    for worker in workers:
        if worker.alive():
            worker._signal(signal.SIGTERM)
    end = time.monotonic() + grace
    for worker in workers:
        try:
            worker.proc.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for worker in workers:
        worker.stop(grace=0.0)


# -- the workload --------------------------------------------------------------------------------------------
def workload_scale(adapter: _harness.Adapter, n: int, deadline: float, cap: float, workers: int) -> dict[str, Any]:
    adapter.reset()
    records_path = os.path.join(adapter.workdir, "records.txt")
    open(records_path, "w").close()
    call_us = record_call_us(adapter.workdir)
    filled = adapter.fill("record", [()] * n)
    before = adapter.remaining(n)
    if before != n:
        raise _harness.CellError(f"expected {n} jobs waiting before the workers start, the system reports {before}")
    probe = probe_for(adapter.store)
    quiet = probe.wait_quiet()
    reader = RecordReader(records_path)
    snaps: dict[str, dict[str, Any]] = {"start": probe.snapshot()}
    t0 = time.monotonic_ns()
    procs, desc, argv = start_workers(adapter, workers, records_path)
    marks: dict[str, Any] = {"t0": t0}
    try:
        _follow(adapter, probe, reader, procs, n, deadline, cap, snaps, marks)
    finally:
        stop_all(procs)
    executed = reader.poll()
    records = parse_records(open(records_path).read())
    if not marks["capped"] and executed != n:
        raise _harness.CellError(f"{n} jobs enqueued, {executed} job bodies ran by the time every worker stopped")
    return _figures(n, workers, records, snaps, marks, executed, call_us) | {
        "filled_with": filled, "worker": f"{workers} x {desc}", "worker_argv": argv,
        "server": {"kind": probe.kind, "port": probe.port, "pid": probe.pid, **quiet},
    }


def _follow(adapter: _harness.Adapter, probe: ServerProbe, reader: RecordReader,
            procs: Sequence[_harness.WorkerProcess], n: int, deadline: float, cap: float,
            snaps: dict[str, dict[str, Any]], marks: dict[str, Any]) -> None:
    """Poll the record file until the backlog is done (or the cap), taking the steady window's snapshots."""
    t0 = marks["t0"]
    marks["capped"] = False
    while True:
        done = reader.poll()
        now = time.monotonic_ns()
        if "first_progress" not in marks and done:
            marks["first_progress"] = now
        if "steady_start" not in snaps:
            reason = _steady_start(len(reader.slots), len(procs), done, n, (now - t0) / 1e9, cap)
            if reason:
                marks["steady_start_reason"] = reason
                snaps["steady_start"] = probe.snapshot()
                marks["steady_start"] = time.monotonic_ns()
        elif "steady_end" not in snaps and done >= STEADY_END * n:
            snaps["steady_end"] = probe.snapshot()
            marks["steady_end"] = time.monotonic_ns()
        if done >= n:
            marks["bodies_done"] = now
            _await_bookkeeping(adapter, n, deadline, procs, marks)
            marks["end"] = time.monotonic_ns()
            snaps["end"] = probe.snapshot()
            return
        if cap and "steady_start" in marks and (now - marks["steady_start"]) / 1e9 >= cap:
            snaps["end"] = probe.snapshot()
            marks["end"] = time.monotonic_ns()
            marks["capped"] = True
            if "steady_end" not in snaps:
                snaps["steady_end"], marks["steady_end"] = snaps["end"], marks["end"]
            return
        _check_alive(procs, n - done, n)
        if time.perf_counter() > deadline:
            raise _harness.CellError(f"time budget spent with {n - done} of {n} jobs left; log tail:\n"
                                     f"{procs[0].tail()}")
        time.sleep(_harness.POLL_INTERVAL)


def _steady_start(started: int, workers: int, done: int, n: int, elapsed: float, cap: float) -> str | None:
    """Why the steady window starts now, or None: every worker has run a job; or, failing that, half the
    backlog is done, or the cap has passed since the workers were spawned (start-up is bounded by the cap too)."""
    if started == workers:
        return "every worker had run a job"
    if done >= LATE_START * n:
        return f"{started} of {workers} workers had run a job when half the backlog was done"
    if cap and elapsed >= cap:
        return f"{started} of {workers} workers had run a job {cap:g} s after they were spawned"
    return None


def _await_bookkeeping(adapter: _harness.Adapter, n: int, deadline: float,
                       procs: Sequence[_harness.WorkerProcess], marks: dict[str, Any]) -> None:
    """Every job body ran: wait until the system's own bookkeeping agrees (its last settles). If it still
    disagrees after BOOKKEEPING_WAIT seconds, say so with what the workers logged (the figures stand: every job
    ran, and the cell is marked)."""
    give_up = min(deadline, time.perf_counter() + BOOKKEEPING_WAIT)
    while (left := adapter.remaining(n)) > 0:
        _check_alive(procs, left, n)
        if time.perf_counter() > give_up:
            marks["bookkeeping"] = (f"every job body ran, but {BOOKKEEPING_WAIT:.0f} s later the system still "
                                    f"reported {left} of {n} jobs not done; {_first_error(procs)}")
            return
        time.sleep(_harness.POLL_INTERVAL)


def _first_error(procs: Sequence[_harness.WorkerProcess]) -> str:
    """The last line of the first traceback or error any worker logged."""
    for worker in procs:
        lines = worker.tail(400).splitlines()
        errors = [line for line in lines if "Error" in line or "error" in line.split(":", 1)[0]]
        if errors:
            return f"worker log: {errors[-1].strip()[:300]}"
    return "the workers logged no error"


def _check_alive(procs: Sequence[_harness.WorkerProcess], left: int, n: int) -> None:
    for worker in procs:
        if not worker.alive():
            tail = worker.tail()
            last = tail.strip().splitlines()[-1].strip()[:200] if tail.strip() else "nothing"
            raise _harness.CellError(f"a worker exited with code {worker.proc.returncode} with {left} of {n} jobs "
                                     f"left (it logged last: {last}); log tail:\n{tail}")


def _figures(n: int, workers: int, records: Sequence[Record], snaps: dict[str, dict[str, Any]],
             marks: dict[str, Any], executed: int, call_us: float) -> dict[str, Any]:
    t0, end = marks["t0"], marks["end"]
    done = ended_between(records, t0, end)
    out: dict[str, Any] = {
        "n": n, "workers": workers, "done": done, "executed": executed, "capped": marks["capped"],
        "seconds": (end - t0) / 1e9, "jobs_per_s": done / ((end - t0) / 1e9),
        "first_progress_s": (marks["first_progress"] - t0) / 1e9 if "first_progress" in marks else None,
        "record_call_us": call_us,
        **({"bookkeeping": marks["bookkeeping"]} if "bookkeeping" in marks else {}),
        "drain": per_job(snaps["start"], snaps["end"], records),
    }
    first_job: dict[str, int] = {}
    for rec in records:
        first_job[rec[0]] = min(first_job.get(rec[0], rec[3]), rec[3])
    out["workers_started"] = len(first_job)
    out["last_worker_first_job_s"] = (max(first_job.values()) - t0) / 1e9 if first_job else None
    stamps = sorted(rec[4] - rec[3] for rec in records)
    out["body_stamps_median_ns"] = stamps[len(stamps) // 2] if stamps else None
    lo, hi = marks.get("steady_start"), marks.get("steady_end")
    jobs = ended_between(records, lo, hi) if lo and hi else 0
    # A window the cap ended holds what the system managed; an uncapped one this short means start-up took most
    # of the backlog.
    if jobs < (MIN_WINDOW_JOBS if marks["capped"] else max(MIN_WINDOW_JOBS, 0.02 * n)):
        out["steady"] = {"note": f"no steady window: {jobs} jobs ran in it"
                                 + ("" if marks["capped"] else " (the backlog was nearly gone once every worker ran)")}
        return out
    gaps, overlaps = gaps_ns(records, lo, hi)
    steady: dict[str, Any] = {
        "from_s": (lo - t0) / 1e9, "to_s": (hi - t0) / 1e9, "jobs": jobs, "jobs_per_s": jobs / ((hi - lo) / 1e9),
        "start": marks["steady_start_reason"], "overlaps": overlaps, "gaps": len(gaps),
    }
    if gaps:
        us = [g / 1000 for g in gaps]
        steady.update(gap_p50_us=percentile(us, 0.5), gap_p99_us=percentile(us, 0.99), gap_mean_us=sum(us) / len(us))
    steady.update(per_job(snaps["steady_start"], snaps["steady_end"], records))
    out["steady"] = steady
    return out
