"""offload on its own: CPU-bound scaling, worker memory over many jobs, and what a long job history costs.

    .venv/bin/python bench/offload_extra.py --quick     # a few minutes
    .venv/bin/python bench/offload_extra.py --full      # the full sizes (the 1,000,000-job history fill is long)
    .venv/bin/python bench/offload_extra.py --quick --parts cost --stores postgres

Writes bench/results/extra.json (every run, every sample) and bench/results/extra.md (the tables). The three
workloads are described in bench/README.md ("offload on its own"). Figures are medians of the rounds, each next to
its ratio to a baseline measured in the same run (concurrency 1; the idle worker; an empty history), never
absolute claims: the machine is small and shared.

Runs in offload's own venv (it imports offload); workers are the real ``offload worker`` command. Touches only
Redis database 14 (FLUSHDB), the PostgreSQL database ``bench_extra`` (created and dropped here) and SQLite files
under bench/.work/extra-<run>/ (deleted at the end).

This module also holds the CPU-bound job (``burn``); workers import it as ``offload_extra:burn``, so its
top-level imports stay light.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from machine import BUSY_LIMIT, describe, load_lines, other_load

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / "peers"
RESULTS = BENCH / "results"
REDIS_URL = os.environ.get("BENCH_EXTRA_REDIS_URL", "redis://127.0.0.1:6379/14")
PG_DSN_BASE = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432")
PG_DATABASE = "bench_extra"
SITE = "extra"
NOOP = "_jobbodies:noop"  # the peers harness's no-op body (bench/peers/_jobbodies.py)
BURN = "offload_extra:burn"
JOB_MS = 20.0  # CPU per burn job

MODES: dict[str, dict[str, Any]] = {
    "quick": {"cpu_jobs": 200, "concurrency": [1, 2, 4], "memory_jobs": 20_000, "memory_limit_jobs": 2_000,
              "recycle_after": 1000, "histories": [0, 100_000], "drain": 10_000, "samples": 200, "repeats": 3},
    "full": {"cpu_jobs": 1000, "concurrency": [1, 2, 4], "memory_jobs": 100_000, "memory_limit_jobs": 5_000,
             "recycle_after": 1000, "histories": [0, 100_000, 1_000_000], "drain": 10_000, "samples": 500,
             "repeats": 3},
}


def burn(iterations: int) -> None:
    """The CPU-bound job: pure-Python arithmetic, holding the GIL throughout (~20 ms once calibrated)."""
    total = 0
    for i in range(iterations):
        total += i % 7


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# -- processes, from /proc ----------------------------------------------------------------------------------------
def memory_of(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and RssShmem of one process, in KiB (empty if it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    keys = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in keys}


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()  # fields after "pid (comm)": state, ppid, ...


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (this kernel has no /proc/<pid>/task/*/children: scan every ppid)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(int(entry))
            except (OSError, ValueError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return sorted(found)


def sched_seconds(pid: int) -> tuple[float, float]:
    """(on CPU, runnable but waiting for a CPU) seconds of a process, from /proc/<pid>/schedstat."""
    try:
        on_cpu, waiting = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine since boot (/proc/stat): busy (everyone's), steal (the hypervisor's)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return {"busy": (sum(values) - values[3] - values[4] - values[7]) / tick, "steal": values[7] / tick,
            "all": sum(values) / tick}


def worker_memory(pid: int) -> dict[str, Any]:
    """RSS of a supervisor and its executor children, per process and summed (MiB)."""
    kids = children_of(pid)
    sup = memory_of(pid)
    execs = {k: memory_of(k) for k in kids}
    execs = {k: v for k, v in execs.items() if v}
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    total = sup.get("VmRSS", 0) + sum(m.get("VmRSS", 0) for m in execs.values())
    anon = sup.get("RssAnon", 0) + sum(m.get("RssAnon", 0) for m in execs.values())
    return {"total_mib": total / 1024, "anon_mib": anon / 1024, "supervisor_mib": sup.get("VmRSS", 0) / 1024,
            "executors_mib": [round(m.get("VmRSS", 0) / 1024, 2) for m in execs.values()],
            "executor_pids": sorted(execs), "supervisor_fds": fds}


# -- stores -----------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """One store instance: an engine, a name (its own file, key prefix or schema) and its URL."""

    engine: str
    name: str
    url: str

    @property
    def schema(self) -> str:
        return f"x_{self.name}"


def make_target(engine: str, name: str, workdir: Path) -> Target:
    if engine == "sqlite":
        return Target(engine, name, f"sqlite:///{workdir / (name + '.db')}")
    if engine == "redis":
        return Target(engine, name, f"{REDIS_URL}?prefix=extra-{name}")
    return Target(engine, name, f"{PG_DSN_BASE}/{PG_DATABASE}?schema=x_{name}")


def reset(target: Target, workdir: Path) -> None:
    """Remove every trace of ``target`` (its file, keys or schema)."""
    if target.engine == "sqlite":
        for path in workdir.glob(target.name + ".db*"):
            path.unlink()
    elif target.engine == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"extra-{target.name}:*", count=5000))
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start:start + 5000])
        client.close()
    else:
        with pg_connect(PG_DATABASE) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{target.schema}" CASCADE')


def pg_connect(database: str) -> Any:
    import psycopg

    return psycopg.connect(f"{PG_DSN_BASE}/{database}", autocommit=True)


def open_app(target: Target) -> Any:
    from offload import Offload

    app = Offload(store=target.url, site_id=SITE)
    app.store  # noqa: B018 - connect and migrate now, outside any timing
    return app


class Pending:
    """How many jobs of queue "default" are queued or started: the completion check of every drain.

    SQLite and Redis: ``store.count(["default"], ["queued", "started"])``. PostgreSQL: the same count on a
    connection of our own with the values in the SQL text, because the store's connection forces generic plans
    and the generic plan of ``count`` is a sequential scan of the whole history (see bench/README.md), which
    would make the check itself grow with the history being measured."""

    def __init__(self, target: Target, app: Any) -> None:
        self.app = app
        self.conn = None
        if target.engine == "postgres":
            from psycopg import sql

            self.conn = pg_connect(PG_DATABASE)
            self.query = sql.SQL("SELECT count(*) FROM {}.jobs WHERE site = {} AND queue = {} "
                                 "AND state IN ('queued', 'started')").format(
                sql.Identifier(target.schema), sql.Literal(SITE), sql.Literal(f"{SITE}:default"))

    def __call__(self) -> int:
        if self.conn is None:
            return int(self.app.store.count(["default"], ["queued", "started"]))
        return int(self.conn.execute(self.query, prepare=False).fetchone()[0])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# -- workers ----------------------------------------------------------------------------------------------------
def start_worker(target: Target, concurrency: int, extra: list[str], log_path: Path) -> Any:
    """The real ``offload worker`` in its own process group (the peers harness's WorkerProcess)."""
    import _harness

    argv = [str(Path(sys.executable).parent / "offload"), "--store", target.url, "--site-id", SITE, "worker",
            "default", "--concurrency", str(concurrency), "--log-level", "warning", "--without-scheduler", *extra]
    return _harness.WorkerProcess(argv, {"PYTHONPATH": str(BENCH)}, str(log_path))


def worker_warnings(worker: Any) -> list[str]:
    """What a stopped worker logged (it runs at WARNING, so a clean run logs nothing), first lines only."""
    try:
        text = Path(worker.log_path).read_text(errors="replace")
    except OSError:
        return []
    return [line[:400] for line in text.splitlines() if line.strip()][:20]


def wait_drained(pending: Callable[[], int], worker: Any, budget: float,
                 tick: Callable[[int], None] | None = None, every: float = 0.02) -> float:
    """Poll ``pending`` until it is 0; return that moment (perf_counter)."""
    deadline = time.perf_counter() + budget
    while True:
        left = pending()
        now = time.perf_counter()
        if left == 0:
            return now
        if not worker.alive():
            raise RuntimeError(f"worker exited ({worker.proc.returncode}) with {left} jobs left:\n{worker.tail()}")
        if now > deadline:
            raise RuntimeError(f"{budget:.0f} s budget spent with {left} jobs left:\n{worker.tail()}")
        if tick is not None:
            tick(left)
        time.sleep(every)


def warm_up(app: Any, pending: Pending, worker: Any, calls: list[Any]) -> list[str]:
    """Run a few jobs first, so that every executor has booted and imported the job's module."""
    ids = [job.id for job in app.enqueue_many(calls, queue="default")]
    wait_drained(pending, worker, 60)
    return ids


# -- 1. CPU-bound scaling -----------------------------------------------------------------------------------------
def calibrate() -> dict[str, Any]:
    """Loop iterations that take JOB_MS of CPU time (process time: other processes' load does not count)."""
    probe = 200_000
    times = []
    for _ in range(7):
        t0 = time.process_time()
        burn(probe)
        times.append(time.process_time() - t0)
    iterations = int(probe * JOB_MS / 1000 / statistics.median(times))
    cpu, wall = [], []
    for _ in range(5):
        t0, w0 = time.process_time(), time.perf_counter()
        burn(iterations)
        cpu.append((time.process_time() - t0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return {"iterations": iterations, "job_cpu_ms": round(statistics.median(cpu), 2),
            "job_wall_ms": round(statistics.median(wall), 2)}


def cpu_run(concurrency: int, iterations: int, n: int, workdir: Path) -> dict[str, Any]:
    target = make_target("sqlite", f"cpu{concurrency}", workdir)
    reset(target, workdir)
    app = open_app(target)
    pending = Pending(target, app)
    worker = start_worker(target, concurrency, [], workdir / f"worker-cpu{concurrency}.log")
    try:
        warm_up(app, pending, worker, [(BURN, [iterations])] * (2 * concurrency))
        procs = [worker.proc.pid, *children_of(worker.proc.pid)]
        before, machine0, load = [sched_seconds(p) for p in procs], machine_cpu(), loadavg()
        t0 = time.perf_counter()
        app.enqueue_many([(BURN, [iterations])] * n, queue="default")
        wall = wait_drained(pending, worker, 600) - t0
        after, machine1 = [sched_seconds(p) for p in procs], machine_cpu()
    finally:
        worker.stop()
        warnings = worker_warnings(worker)
        pending.close()
        app.close()
        reset(target, workdir)
    on_cpu = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
    waited = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
    cores = os.cpu_count() or 1
    span = (machine1["all"] - machine0["all"]) / cores
    return {"concurrency": concurrency, "n": n, "seconds": wall, "jobs_per_s": n / wall,
            "executor_cores": sum(on_cpu[1:]) / wall,
            # Cores the executors wanted: on a CPU, or runnable and waiting for one. Equal to the concurrency
            # when the supervisor kept every executor supplied; the gap to executor_cores is CPU contention.
            "executor_demand": (sum(on_cpu[1:]) + sum(waited[1:])) / wall,
            "executor_cpu_ms_per_job": sum(on_cpu[1:]) / n * 1000,
            "supervisor_cores": on_cpu[0] / wall,
            "machine_busy_cores": (machine1["busy"] - machine0["busy"]) / span,
            "steal_cores": (machine1["steal"] - machine0["steal"]) / span, "loadavg": load,
            "worker_log": warnings}


def part_cpu(params: dict[str, Any], repeats: int, workdir: Path) -> dict[str, Any]:
    cal = calibrate()
    log(f"cpu: {cal['iterations']:,} iterations per job = {cal['job_cpu_ms']} ms of CPU ({cal['job_wall_ms']} ms wall)")
    runs: list[dict[str, Any]] = []
    for round_no in range(1, repeats + 1):
        for conc in params["concurrency"]:
            run = cpu_run(conc, cal["iterations"], params["cpu_jobs"], workdir)
            run["round"] = round_no
            runs.append(run)
            log(f"  round {round_no} concurrency {conc}: {run['jobs_per_s']:.1f} jobs/s; executors on CPU "
                f"{run['executor_cores']:.2f} cores, wanting {run['executor_demand']:.2f}; machine busy "
                f"{run['machine_busy_cores']:.2f}; load {run['loadavg']}")
    return {"calibration": cal, "store": "sqlite", "runs": runs, "rows": _cpu_rows(runs)}


def _cpu_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("jobs_per_s", "executor_cores", "executor_demand", "executor_cpu_ms_per_job", "supervisor_cores",
            "machine_busy_cores", "steal_cores")
    rows = []
    for conc in dict.fromkeys(r["concurrency"] for r in runs):
        mine = [r for r in runs if r["concurrency"] == conc]
        rows.append({"concurrency": conc, **{k: median([r[k] for r in mine]) for k in keys}})
    job_ms = rows[0]["executor_cpu_ms_per_job"]  # the CPU a job took in the executors at concurrency 1
    for row in rows:
        row["ideal_jobs_per_s"] = min(row["concurrency"], os.cpu_count() or 1) * 1000 / job_ms
    base = {r["round"]: r["jobs_per_s"] for r in runs if r["concurrency"] == rows[0]["concurrency"]}
    for row in rows:
        row["speedup"] = row["jobs_per_s"] / rows[0]["jobs_per_s"]
        # Also per round, against concurrency 1 of the same round: a slow spell hits both sides of that ratio.
        row["speedups_by_round"] = [round(r["jobs_per_s"] / base[r["round"]], 2) for r in runs
                                    if r["concurrency"] == row["concurrency"]]
    return rows


# -- 2. memory ----------------------------------------------------------------------------------------------------
def wait_idle(worker: Any, concurrency: int) -> dict[str, Any]:
    """The worker's memory once its executors are up and their RSS has stopped moving (no job run yet)."""
    deadline, stable, last = time.monotonic() + 30, 0, None
    time.sleep(1.0)
    while time.monotonic() < deadline:
        snap = worker_memory(worker.proc.pid)
        key = (len(snap["executor_pids"]), round(snap["total_mib"], 1))
        stable = stable + 1 if key == last and key[0] == concurrency else 0
        if stable >= 3:
            return snap
        last = key
        time.sleep(0.3)
    raise RuntimeError(f"worker did not settle within 30 s:\n{worker.tail()}")


def _slope(samples: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> float | None:
    """Least-squares slope of ``value`` (MiB) against jobs done, in KiB per 10,000 jobs."""
    if len(samples) < 3:
        return None
    xs = [s["done"] for s in samples]
    ys = [value(s) * 1024 for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 10_000


def memory_run(target: Target, flags: list[str], n: int, workdir: Path, label: str) -> dict[str, Any]:
    reset(target, workdir)
    app = open_app(target)
    pending = Pending(target, app)
    worker = start_worker(target, 2, flags, workdir / f"worker-memory-{label}.log")
    samples: list[dict[str, Any]] = []
    pids: set[int] = set()
    enqueued = 0
    clock = {"next_sample": 0.0}

    def sample(left: int | None = None) -> None:
        pids.update(children_of(worker.proc.pid))
        now = time.perf_counter()
        if now >= clock["next_sample"]:
            clock["next_sample"] = now + 0.5
            snap = worker_memory(worker.proc.pid)
            snap["done"] = enqueued - (pending() if left is None else left)
            snap["t"] = round(now - t0, 2)
            samples.append(snap)

    try:
        idle = wait_idle(worker, 2)
        pids.update(idle["executor_pids"])
        t0 = time.perf_counter()
        for start in range(0, n, 10_000):  # the worker drains while the rest goes in
            app.enqueue_many([NOOP] * min(10_000, n - start), queue="default")
            enqueued = min(n, start + 10_000)
            sample()
        t_done = wait_drained(pending, worker, 1800, tick=sample, every=0.1)
        time.sleep(1.0)
        final = worker_memory(worker.proc.pid)
    finally:
        worker.stop()
        warnings = worker_warnings(worker)
        pending.close()
        app.close()
    run = {"label": label, "flags": flags, "n": n, "jobs_per_s": n / (t_done - t0), "idle": idle, "final": final,
           "executor_pids_seen": len(pids), "samples": samples, "loadavg": loadavg(), "worker_log": warnings}
    return judge_samples(run)


def judge_samples(run: dict[str, Any]) -> dict[str, Any]:
    """Mark the samples whose sum means something, and pick warm and peak among them. A sample taken while a
    recycled executor boots (one missing, or still below 90 % of an idle executor) has a meaningless sum."""
    floor = 0.9 * min(run["idle"]["executors_mib"])
    for snap in run["samples"]:
        snap["complete"] = len(snap["executors_mib"]) >= 2 and min(snap["executors_mib"]) >= floor
    complete = [snap for snap in run["samples"] if snap["complete"]]
    run["warm"] = next((snap for snap in complete if snap["done"] >= run["n"] * 0.1),
                       complete[0] if complete else run["final"])
    run["peak_total_mib"] = max([snap["total_mib"] for snap in complete] + [run["final"]["total_mib"]])
    return run


def part_memory(params: dict[str, Any], repeats: int, workdir: Path, engine: str,
                plain_engines: list[str]) -> dict[str, Any]:
    """Per round: plain no-op drains on every store (what the store client costs the supervisor), then the two
    recycling settings on ``engine``."""
    every = params["recycle_after"]
    runs: list[dict[str, Any]] = []
    for round_no in range(1, repeats + 1):
        plain = {}
        for e in dict.fromkeys([engine, *plain_engines]):
            plain[e] = memory_run(make_target(e, "memory", workdir), [], params["memory_jobs"], workdir, "plain")
            plain[e]["store"] = e
        # Just under an idle executor's own RSS: every executor is over the limit once it reports its RSS.
        limit = max(1, int(min(plain[engine]["idle"]["executors_mib"])))
        target = make_target(engine, "memory", workdir)
        recycled = [memory_run(target, ["--max-jobs-per-child", str(every)], params["memory_jobs"], workdir,
                               "max-jobs"),
                    memory_run(target, ["--max-memory-per-child", str(limit)], params["memory_limit_jobs"], workdir,
                               "max-memory")]
        for run in [*plain.values(), *recycled]:
            run.setdefault("store", engine)
            run["round"] = round_no
            runs.append(run)
            log(f"  round {round_no} {run['store']:8} {' '.join(run['flags']) or '(no flags)':27} idle "
                f"{run['idle']['total_mib']:.1f} warm {run['warm']['total_mib']:.1f} peak {run['peak_total_mib']:.1f} "
                f"final {run['final']['total_mib']:.1f} MiB, {run['executor_pids_seen']} executor pids, "
                f"{run['jobs_per_s']:,.0f} jobs/s, load {run['loadavg']}")
        for e in plain:
            reset(make_target(e, "memory", workdir), workdir)
    return {"store": engine, "runs": runs, "rows": _memory_rows(runs)}


def _largest(snap: dict[str, Any]) -> float:
    return float(max(snap["executors_mib"] or [0.0]))


def _memory_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (store, flags). Growth is judged per process (the supervisor; the largest executor), so that
    a spare executor the supervisor boots after a kill is not mistaken for growth; noise is how far the same
    figure moved between rounds, at least 1 MiB."""
    rows = []
    for store, label in dict.fromkeys((r["store"], r["label"]) for r in runs):
        mine = [r for r in runs if (r["store"], r["label"]) == (store, label)]
        row: dict[str, Any] = {"store": store, "label": label, "flags": " ".join(mine[0]["flags"]), "n": mine[0]["n"]}
        for key, pick in (("idle", lambda r: r["idle"]["total_mib"]), ("warm", lambda r: r["warm"]["total_mib"]),
                          ("peak", lambda r: r["peak_total_mib"]), ("final", lambda r: r["final"]["total_mib"]),
                          ("executors_at_end", lambda r: len(r["final"]["executors_mib"])),
                          ("executor_pids_seen", lambda r: r["executor_pids_seen"]),
                          ("jobs_per_s", lambda r: r["jobs_per_s"]),
                          ("fds_idle", lambda r: r["idle"]["supervisor_fds"]),
                          ("fds_final", lambda r: r["final"]["supervisor_fds"])):
            row[key] = median([pick(r) for r in mine])
        for who, size in (("supervisor", lambda snap: snap["supervisor_mib"]), ("executor", _largest)):
            warm = [size(r["warm"]) for r in mine]
            growth = median([size(r["final"]) - size(r["warm"]) for r in mine])
            noise = max(1.0, max(warm) - min(warm))
            slopes = [_slope([x for x in r["samples"] if x.get("complete") and x["done"] >= r["n"] * 0.2], size)
                      for r in mine]
            row[who] = {"idle": median([size(r["idle"]) for r in mine]), "warm": median(warm),
                        "final": median([size(r["final"]) for r in mine]), "growth": growth, "noise": noise,
                        "grew": growth is not None and growth > noise,
                        "slope_kib_per_10k": median([x for x in slopes if x is not None])}
        rows.append(row)
    return rows


# -- 3. cost of history -------------------------------------------------------------------------------------------
FILL_BATCH = {"sqlite": 5000, "redis": 1000, "postgres": 5000}  # Redis: keep each script short (shared server)
PG_VACUUM_EVERY = 100_000


def fill_history(target: Target, app: Any, n: int) -> float:
    """Add ``n`` finished no-op jobs to queue "default" through the store API: enqueue_many, claim and settle in
    batches (the engine's own layout and indexes, as a worker would leave them). Returns the seconds it took."""
    from offload.jobs import Outcome, new_id

    store = app.store
    template = app.build_job(NOOP, [], queue="default")
    batch, done, since_vacuum = FILL_BATCH[target.engine], 0, 0
    t0 = time.perf_counter()
    while done < n:
        k, now = min(batch, n - done), time.time()
        jobs = [replace(template, id=new_id(), created_at=now + i * 1e-6) for i in range(k)]
        store.enqueue_many(jobs, now)
        claimed = store.claim(["default"], "history-filler", 3600.0, k, now)
        settled = store.settle([Outcome(j.id, j.lease_token or "", "finish", "null", ended_at=now) for j in claimed],
                               now)
        if len(claimed) != k or not all(settled):
            raise RuntimeError(f"history fill: claimed {len(claimed)} of {k}, settled {sum(settled)}")
        done, since_vacuum = done + k, since_vacuum + k
        if target.engine == "postgres" and since_vacuum >= PG_VACUUM_EVERY:
            pg_vacuum(target)  # stands in for autovacuum, which this server runs without (autovacuum = off)
            since_vacuum = 0
    return time.perf_counter() - t0


def pg_vacuum(target: Target) -> float:
    t0 = time.perf_counter()
    with pg_connect(PG_DATABASE) as conn:
        conn.execute(f'VACUUM (ANALYZE) "{target.schema}".jobs')
    return time.perf_counter() - t0


def _timed(fn: Callable[[], Any], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def claim_times(store: Any, samples: int) -> list[float]:
    """ms of each of ``samples`` calls of claim on queue "default" (empty: nothing is claimed)."""
    return _timed(lambda: store.claim(["default"], "w", 30.0, 1, time.time()), samples)


def latencies(app: Any, samples: int) -> tuple[dict[str, Any], list[str]]:
    """Median ms of: claim on an empty queue; claim + settle of one job; Queue.count(); count of every pending job."""
    from offload.jobs import Outcome

    store, ids = app.store, []
    empty = claim_times(store, samples)
    both = []
    for _ in range(samples):
        ids.append(app.enqueue(NOOP, queue="default").id)
        t0 = time.perf_counter()
        job = store.claim(["default"], "w", 30.0, 1, time.time())[0]
        store.settle([Outcome(job.id, job.lease_token or "", "finish", "null", ended_at=time.time())], time.time())
        both.append((time.perf_counter() - t0) * 1000)
    queue_count = _timed(lambda: store.count(["default"], ["queued"]), 5)
    pending_count = _timed(lambda: store.count(None, ["queued", "started"]), 3)
    return {"claim_ms": median(empty), "claim_settle_ms": median(both), "queue_count_ms": median(queue_count),
            "pending_count_ms": median(pending_count)}, ids


def drain_run(target: Target, app: Any, n: int, log_path: Path) -> tuple[dict[str, Any], list[str]]:
    """One worker (concurrency 2), warmed up; then n no-op jobs in one enqueue_many, timed until none is left."""
    pending = Pending(target, app)
    worker = start_worker(target, 2, [], log_path)
    try:
        ids = warm_up(app, pending, worker, [NOOP] * 4)
        t0 = time.perf_counter()
        ids += [job.id for job in app.enqueue_many([NOOP] * n, queue="default")]
        t_enqueued = time.perf_counter()
        t_done = wait_drained(pending, worker, 600)
    finally:
        worker.stop()
        pending.close()
    return {"jobs_per_s": n / (t_done - t_enqueued), "enqueue_many_s": t_enqueued - t0,
            "worker_log": worker_warnings(worker)}, ids


def cost_cell(target: Target, app: Any, params: dict[str, Any], workdir: Path) -> dict[str, Any]:
    load = loadavg()
    lat, ids = latencies(app, params["samples"])
    drain, more = drain_run(target, app, params["drain"], workdir / f"worker-cost-{target.engine}-{target.name}.log")
    t0 = time.perf_counter()
    for job_id in ids + more:  # back to exactly the history this cell started with
        app.store.delete(job_id)
    cleanup = time.perf_counter() - t0
    if target.engine == "postgres":
        cleanup += pg_vacuum(target)
    return {**lat, **drain, "cleanup_s": round(cleanup, 2), "loadavg": load}


def explain(target: Target, app: Any) -> dict[str, str]:
    """How the engine runs the claim and the pending count now (evidence, not a figure)."""
    try:
        if target.engine == "sqlite":
            import sqlite3

            conn = sqlite3.connect(str(app.store.path))
            plans = {name: "; ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, args))
                     for name, query, args in (
                         ("claim", "SELECT seq FROM jobs WHERE queue=? AND state='queued' ORDER BY enqueued_at, seq "
                          "LIMIT 1", (f"{SITE}:default",)),
                         ("pending_count", "SELECT count(*) FROM jobs WHERE site=? AND state IN (?,?)",
                          (SITE, "queued", "started")))}
            conn.close()
            return plans
        if target.engine == "postgres":
            store = app.store
            now = time.time()
            claim = {"queues": [f"{SITE}:default"], "limit": 1, "now": now, "lease_until": now + 30, "worker": "w",
                     "promote": store.promote_batch, "channel": store.channel, "site": SITE}
            count = (f'SELECT count(*) FROM "{target.schema}".jobs j WHERE j.site = %(site)s '
                     "AND j.state = ANY(%(states)s::text[])")
            return {"claim": pg_explain_generic(store._sql["claim"], claim),
                    "pending_count": pg_explain_generic(count, {"site": SITE, "states": ["queued", "started"]})}
    except Exception as exc:  # evidence only: never lose the run over it
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {}


def pg_explain_generic(query: str, values: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of ``query`` as the store runs it: prepared, with plan_cache_mode = force_generic_plan."""
    import re

    from psycopg import sql

    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", query)))
    text = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", query)
    with pg_connect(PG_DATABASE) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE bench_extra_q AS {text}")
        args = sql.SQL(", ").join(sql.Literal(values[n]) for n in names)
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_extra_q({})").format(args))
        return "\n".join(r[0] for r in rows.fetchall())


def part_cost(params: dict[str, Any], repeats: int, workdir: Path, engines: list[str]) -> dict[str, Any]:
    levels = [h for h in params["histories"] if h > 0]
    targets = {e: (make_target(e, "h0", workdir), make_target(e, "hist", workdir)) for e in engines}
    apps: dict[str, Any] = {}
    for e, pair in targets.items():
        for t in pair:
            reset(t, workdir)
            apps[f"{e}/{t.name}"] = open_app(t)
    cells, fills, evidence, filled = [], [], [], dict.fromkeys(engines, 0)
    try:
        for level in levels:
            for e in engines:
                h0, hist = targets[e]
                seconds = fill_history(hist, apps[f"{e}/hist"], level - filled[e])
                fill = {"engine": e, "to": level, "added": level - filled[e], "seconds": round(seconds, 1)}
                filled[e] = level
                if e == "postgres":
                    fill["claim_ms_before_vacuum"] = median(claim_times(apps[f"{e}/hist"].store, params["samples"]))
                    fill["vacuum_s"] = round(pg_vacuum(hist) + pg_vacuum(h0), 1)
                fills.append(fill)
                log(f"cost: {e} history filled to {level:,} (+{fill['added']:,} in {seconds:.0f} s, "
                    f"{fill['added'] / seconds:,.0f} jobs/s)")
                for t, history in ((h0, 0), (hist, level)):
                    evidence.append({"engine": e, "history": history, "phase": level,
                                     "plans": explain(t, apps[f"{e}/{t.name}"])})
            for round_no in range(1, repeats + 1):
                for e in engines:
                    for t, history in ((targets[e][0], 0), (targets[e][1], level)):
                        cell = cost_cell(t, apps[f"{e}/{t.name}"], params, workdir)
                        cell.update(engine=e, history=history, phase=level, round=round_no)
                        cells.append(cell)
                        log(f"  round {round_no} {e:8} history {history:>9,}: drain {cell['jobs_per_s']:,.0f} jobs/s, "
                            f"claim {cell['claim_ms']:.3f} ms, claim+settle {cell['claim_settle_ms']:.3f} ms, "
                            f"pending count {cell['pending_count_ms']:.1f} ms, load {cell['loadavg']}")
    finally:
        for app in apps.values():
            app.close()
        for pair in targets.values():
            for t in pair:
                reset(t, workdir)
    return {"engines": engines, "fills": fills, "cells": cells, "rows": _cost_rows(cells), "evidence": evidence}


COST_METRICS = ("jobs_per_s", "claim_ms", "claim_settle_ms", "queue_count_ms", "pending_count_ms", "enqueue_many_s")


def _cost_rows(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for key in dict.fromkeys((c["engine"], c["phase"], c["history"]) for c in cells):
        mine = [c for c in cells if (c["engine"], c["phase"], c["history"]) == key]
        rows.append({"engine": key[0], "phase": key[1], "history": key[2], "rounds": len(mine),
                     **{m: median([c[m] for c in mine]) for m in COST_METRICS}})
    for row in rows:
        base = next(r for r in rows if (r["engine"], r["phase"], r["history"]) == (row["engine"], row["phase"], 0))
        row["ratio"] = {m: row[m] / base[m] if base[m] else None for m in COST_METRICS}
    return rows


# -- report -------------------------------------------------------------------------------------------------------
DASH, TIMES, ARROW = "\N{EN DASH}", "\N{MULTIPLICATION SIGN}", "\N{RIGHTWARDS ARROW}"
MINUS, PLUSMINUS = "\N{MINUS SIGN}", "\N{PLUS-MINUS SIGN}"


def _f(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def _x(ratio: float | None) -> str:
    return "" if ratio is None else f" ({ratio:.2f}{TIMES})"


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    parts = ", ".join(f"{k} {v / 60:.1f}" for k, v in meta["part_durations_s"].items())
    lines = [f"# offload on its own: CPU scaling, memory, cost of history ({meta['mode']} run)", "",
             f"{meta['date']} · {meta['machine'].get('cpu', '?')} · {meta['machine']['cores']} cores · load average "
             f"{meta['loadavg_start']} {ARROW} {meta['loadavg_end']} · run took {meta['duration_s'] / 60:.1f} min "
             f"({parts}) · offload {meta['versions'].get('offload')} ({meta['source']})", "",
             f"Medians of {meta['repeats']} rounds; ratios are to a baseline measured in the same rounds. "
             "Workloads: bench/README.md, \"offload on its own\". Raw runs and samples: extra.json.", "",
             *load_lines(meta.get("machine_load"))]
    if "cpu" in report:
        lines += _md_cpu(report["cpu"])
    if "memory" in report:
        lines += _md_memory(report["memory"])
    if "cost" in report:
        lines += _md_cost(report["cost"])
    lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), ""]
    return "\n".join(lines)


def _md_cpu(cpu: dict[str, Any]) -> list[str]:
    cal, runs = cpu["calibration"], cpu["runs"]
    loads = [r["loadavg"][0] for r in runs]
    lines = ["## 1. CPU-bound scaling", "",
             f"{runs[0]['n']} jobs of {cal['iterations']:,} loop iterations ({cal['job_cpu_ms']} ms of pure-Python "
             f"CPU each, calibrated at the start), one worker, SQLite store, warm executors. 1-min load average "
             f"during the runs: {min(loads):.2f} to {max(loads):.2f}.", "",
             "| concurrency | jobs/s | speed-up vs 1 (per round) | ideal jobs/s | executors on CPU | executors wanting "
             "CPU | CPU ms per job | supervisor | machine busy | steal |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cpu["rows"]:
        rounds = ", ".join(f"{x:.2f}" for x in r["speedups_by_round"])
        lines.append(f"| {r['concurrency']} | {_f(r['jobs_per_s'])} | {r['speedup']:.2f}{TIMES} ({rounds}) | "
                     f"{_f(r['ideal_jobs_per_s'])} | {_f(r['executor_cores'], 2)} | {_f(r['executor_demand'], 2)} | "
                     f"{_f(r['executor_cpu_ms_per_job'])} | {_f(r['supervisor_cores'], 2)} | "
                     f"{_f(r['machine_busy_cores'], 2)} | {_f(r['steal_cores'], 2)} |")
    return [*lines, "", "Cores, as CPU seconds per wall second over the timed drain. Ideal: min(concurrency, cores) / "
            "the executors' CPU per job at concurrency 1. Executors on CPU / wanting CPU: their time on a CPU, and "
            "on a CPU or runnable and waiting for one (/proc/<pid>/schedstat); wanting = concurrency means the "
            "supervisor kept every executor supplied and any shortfall is CPU contention. Machine busy: every "
            "process on the machine, ours and others' (/proc/stat); steal: time the hypervisor gave to other "
            "guests.", "",
            *_md_warnings(runs, lambda r: f"round {r['round']}, concurrency {r['concurrency']}")]


def _md_memory(memory: dict[str, Any]) -> list[str]:
    loads = [r["loadavg"][0] for r in memory["runs"]]
    lines = ["## 2. Worker memory", "",
             "One worker, concurrency 2, no-op jobs enqueued in batches of 10,000 while it drains. RSS (VmRSS, MiB) "
             "summed over the supervisor and its executors: idle = after start-up, before any job; warm = once 10 % "
             "of the jobs ran; peak = highest sample (every 0.5 s while draining; samples taken while a recycled "
             f"executor boots are left out); final = 1 s after the last job. 1-min load average during the runs: "
             f"{min(loads):.2f} to {max(loads):.2f}.", "",
             "| store | worker flags | jobs | idle | warm | peak | final | executors at the end | executor pids seen "
             "| jobs/s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in memory["rows"]:
        lines.append(f"| {r['store']} | {r['flags'] or '(none)'} | {r['n']:,} | {_f(r['idle'])} | {_f(r['warm'])} | "
                     f"{_f(r['peak'])} | {_f(r['final'])} | {r['executors_at_end']:.0f} | "
                     f"{r['executor_pids_seen']:.0f} | {_f(r['jobs_per_s'], 0)} |")
    lines += ["", f"Growth per process (final {MINUS} warm; noise = how far warm moved between rounds, at least "
              "1 MiB; slope = least squares over the samples after the first 20 % of the jobs):", "",
              "| store | worker flags | supervisor idle / warm / final | growth (noise) | slope KiB/10k jobs "
              "| largest executor idle / warm / final | growth (noise) | slope KiB/10k jobs | grew? | supervisor fds |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in memory["rows"]:
        cells = []
        for who in ("supervisor", "executor"):
            m = r[who]
            cells += [f"{_f(m['idle'])} / {_f(m['warm'])} / {_f(m['final'])}",
                      f"{m['growth']:+.1f} ({PLUSMINUS}{m['noise']:.1f})", _f(m["slope_kib_per_10k"], 0)]
        grew = [who for who in ("supervisor", "executor") if r[who]["grew"]]
        lines.append(f"| {r['store']} | {r['flags'] or '(none)'} | {' | '.join(cells)} | "
                     f"{'**' + ', '.join(grew) + '**' if grew else 'no'} | {r['fds_idle']:.0f} {ARROW} "
                     f"{r['fds_final']:.0f} |")
    return [*lines, "", "Executors at the end: more than 2 means the supervisor kept a spare executor after it had "
            "killed one (see the worker warnings below). Executor pids seen: distinct executor processes, sampled "
            "every 0.1 s (2 = never replaced; a lower bound when executors live shorter than that). The "
            "--max-memory-per-child limit is the idle executor RSS of the same round rounded down, so every executor "
            "is over it as soon as it reports its RSS.", "",
            *_md_warnings(memory["runs"], lambda r: f"round {r['round']}, {r['store']}, "
                                                    f"{' '.join(r['flags']) or 'no flags'}")]


def _md_cost(cost: dict[str, Any]) -> list[str]:
    lines = ["## 3. Cost of history", "",
             "Finished jobs already in the store (history) against an empty store of the same engine, the two measured "
             "alternately in the same rounds. Drain: 10,000 no-op jobs put in with one enqueue_many, one warm worker, "
             "concurrency 2, jobs/s from the end of enqueue_many until none is left. Claim: "
             "`store.claim([\"default\"], \"w\", 30, 1, now)` on an empty queue; claim + settle of one job; "
             "`Queue.count()` = `store.count([\"default\"], [\"queued\"])`; pending count = "
             "`store.count(None, [\"queued\", \"started\"])` (the peers harness's completion check). Latencies: "
             "medians of the per-round medians. In brackets: ratio to the empty store (above 1: more jobs/s, or "
             "slower).", "",
             "| store | history | drain jobs/s | enqueue_many 10k (s) | claim (ms) | claim + settle (ms) "
             "| Queue.count() (ms) | pending count (ms) | load |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cost["rows"]:
        ratio = r["ratio"] if r["history"] else {}
        loads = [c["loadavg"][0] for c in cost["cells"]
                 if (c["engine"], c["phase"], c["history"]) == (r["engine"], r["phase"], r["history"])]
        cells = [f"{_f(r[key], digits)}{_x(ratio.get(key))}" for key, digits in (
            ("jobs_per_s", 0), ("enqueue_many_s", 2), ("claim_ms", 3), ("claim_settle_ms", 3), ("queue_count_ms", 2),
            ("pending_count_ms", 2))]
        label = f"{r['history']:,}" if r["history"] else f"0 (vs {r['phase']:,})"
        lines.append(f"| {r['engine']} | {label} | {' | '.join(cells)} | {min(loads):.1f} to {max(loads):.1f} |")
    lines += ["", "History fill (enqueue_many, claim and settle in batches, through the store API):", ""]
    for f in cost["fills"]:
        line = (f"- {f['engine']}: +{f['added']:,} to {f['to']:,} in {f['seconds']:.0f} s "
                f"({f['added'] / max(f['seconds'], 1e-9):,.0f} jobs/s)")
        if "vacuum_s" in f:
            line += (f"; claim just before the final VACUUM ANALYZE {f['claim_ms_before_vacuum']:.3f} ms; "
                     f"VACUUM ANALYZE of both schemas {f['vacuum_s']} s")
        lines.append(line)
    return [*lines, "", *_md_warnings(cost["cells"], lambda c: f"round {c['round']}, {c['engine']}, history "
                                                             f"{c['history']:,} (phase {c['phase']:,})")]


def _md_warnings(runs: list[dict[str, Any]], where: Callable[[dict[str, Any]], str]) -> list[str]:
    """The runs whose worker logged anything at WARNING or above (a clean run logs nothing)."""
    noisy = [r for r in runs if r.get("worker_log")]
    if not any("worker_log" in r for r in runs):
        return []
    if not noisy:
        return ["The worker logged nothing at WARNING or above in any run.", ""]
    lines = [f"**The worker logged warnings or errors in {len(noisy)} of {len(runs)} runs** (first line each; all "
             "in extra.json):", ""]
    lines += [f"- {where(r)}: `{r['worker_log'][0][:300]}`" for r in noisy]
    return [*lines, ""]


# -- main ---------------------------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    import sqlite3

    import redis

    import offload

    versions = {"offload": offload.__version__, "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    client = redis.Redis.from_url(REDIS_URL)
    versions["redis"] = str(client.info("server")["redis_version"])
    client.close()
    with pg_connect("postgres") as conn:
        versions["postgres"] = str(conn.execute("SHOW server_version").fetchone()[0])
        autovacuum = str(conn.execute("SHOW autovacuum").fetchone()[0])
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "src"], capture_output=True,
                           text=True).stdout.strip()
    # src/ is being worked on while benchmarks run: a digest of the code measured tells two runs apart.
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted((REPO / "src").rglob("*.py")))).hexdigest()
    return {"versions": versions, "pg_autovacuum": autovacuum, "src_sha256": digest[:12],
            "source": f"commit {head}" + (f" + uncommitted changes in src/, digest {digest[:12]}" if dirty else "")}


def prepare_services() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    if client.connection_pool.connection_kwargs.get("db", 0) == 0:
        raise SystemExit("refusing to use Redis database 0: set BENCH_EXTRA_REDIS_URL to another database")
    client.flushdb(asynchronous=True)
    client.close()
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def clean_services(workdir: Path) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb(asynchronous=True)  # a million keys: do not block the shared server while they go
    client.close()
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="a few minutes (default)")
    mode.add_argument("--full", action="store_const", const="full", dest="mode", help="the full sizes")
    parser.add_argument("--parts", default="cpu,memory,cost", help="cpu,memory,cost")
    parser.add_argument("--stores", default="sqlite,redis,postgres", help="stores of the cost-of-history part")
    parser.add_argument("--memory-store", default="redis", choices=["sqlite", "redis", "postgres"])
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--output", default=str(RESULTS / "extra"), help="path prefix of the .json and .md")
    parser.add_argument("--rebuild", metavar="JSON", help="recompute the figures and the .md from a results .json")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=N",
                        help="override one size of the mode, e.g. --set drain=2000 (for trying things out)")
    opts = parser.parse_args(argv)
    opts.mode = opts.mode or "quick"
    opts.parts = [p for p in opts.parts.split(",") if p]
    opts.stores = [s for s in opts.stores.split(",") if s]
    return opts


def rebuild(path: Path, prefix: Path) -> None:
    """The figures and tables again from the raw runs of a results file (after a change to how they are made)."""
    report = json.loads(path.read_text())
    if "cpu" in report:
        report["cpu"]["rows"] = _cpu_rows(report["cpu"]["runs"])
    if "memory" in report:
        report["memory"]["runs"] = [judge_samples(run) for run in report["memory"]["runs"]]
        report["memory"]["rows"] = _memory_rows(report["memory"]["runs"])
    if "cost" in report:
        report["cost"]["rows"] = _cost_rows(report["cost"]["cells"])
    prefix.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    prefix.with_suffix(".md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.rebuild:
        rebuild(Path(opts.rebuild), Path(opts.output))
        return 0
    params = dict(MODES[opts.mode])
    for item in opts.set:
        key, _, value = item.partition("=")
        params[key] = [int(v) for v in value.split("/")] if "/" in value else int(value)
    repeats = opts.repeats or params["repeats"]
    sys.path[:0] = [str(BENCH), str(PEERS)]
    from run import machine_info

    machine_load = {"before": other_load(), "busy_limit": BUSY_LIMIT}
    log(f"machine before the run: {describe(machine_load['before'])}")
    workdir = BENCH / ".work" / f"extra-{dt.datetime.now():%Y%m%d-%H%M%S}"
    workdir.mkdir(parents=True)
    began, load_start = time.monotonic(), loadavg()
    report: dict[str, Any] = {}
    durations: dict[str, float] = {}
    log(f"offload extra bench: {opts.mode}, parts {','.join(opts.parts)}, {repeats} rounds, load {load_start}")
    env = environment()
    prepare_services()
    try:
        for part in opts.parts:
            t0 = time.monotonic()
            if part == "cpu":
                report["cpu"] = part_cpu(params, repeats, workdir)
            elif part == "memory":
                report["memory"] = part_memory(params, repeats, workdir, opts.memory_store, opts.stores)
            elif part == "cost":
                report["cost"] = part_cost(params, repeats, workdir, opts.stores)
            durations[part] = round(time.monotonic() - t0, 1)
            log(f"{part} took {durations[part] / 60:.1f} min")
    finally:
        clean_services(workdir)
    report["meta"] = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "mode": opts.mode,
                      "argv": sys.argv[1:] if argv is None else argv, "repeats": repeats, "params": params,
                      "machine": machine_info(), "machine_load": machine_load, "loadavg_start": load_start,
                      "loadavg_end": loadavg(),
                      "duration_s": round(time.monotonic() - began, 1), "part_durations_s": durations, **env}
    prefix = Path(opts.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    prefix.with_suffix(".md").write_text(markdown(report))
    log(f"done in {report['meta']['duration_s'] / 60:.1f} min: {prefix}.json, {prefix}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
