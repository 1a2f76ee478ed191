"""The fault battery's scenarios. Each runs against one engine at a given size and returns a result dict:

``scenario``, ``engine``, ``jobs``, ``executions``, ``lost``, ``duplicates``, ``in_flight_on_killed``,
``recovery_p50``/``recovery_p99`` (seconds, where the scenario has a recovery), ``verdict`` (``pass`` or
``fail``), ``reasons`` (what failed, empty on a pass) and scenario-specific figures. The pytest tests in this
directory call them with small sizes; ``bench/faults.py`` with the sizes of the issue.

Every check is computed from the ledger (tests/faults/ledger.py) the job bodies write, not from offload's view;
the store is only asked what a user would ask it (final states, error messages).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.faults import ledger
from tests.faults.harness import (
    Producer,
    Servers,
    WorkerSet,
    children_of,
    new_site,
    open_app,
    pid_alive,
    wait_until,
)

RECORD = "tests.faults.jobs:record"


def _verdict(result: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    result["reasons"] = reasons
    result["verdict"] = "fail" if reasons else "pass"
    return result


def _enqueue_records(app: Any, ledger_path: Path, n: int, seconds: float = 0.0, queue: str = "faults",
                     max_attempts: int = 20, chunk: int = 1000) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, chunk):
        calls = [(RECORD, [str(ledger_path), seconds]) for _ in range(min(chunk, n - start))]
        ids += [job.id for job in app.enqueue_many(calls, queue=queue, max_attempts=max_attempts)]
    return ids


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


# -- 1. kill storm -------------------------------------------------------------------------------------------
def kill_storm(engine: str, servers: Servers, workdir: Path, *, jobs: int, workers: int = 4, concurrency: int = 2,
               kill_every: float = 2.0, lease: float | None = 5.0, max_kills: int | None = None,
               job_seconds: float = 0.0, seed: int | None = None, timeout: float | None = None,
               recovery_mark: float | None = None) -> dict[str, Any]:
    """SIGKILL a random worker every ``kill_every`` s (and start a new one) until every job has run. ``lease``
    None: the default settings (no --lease); ``recovery_mark``: the p99 kill-to-re-run bound (lease + 5 s)."""
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    url, site = servers.url(engine, workdir), new_site()
    app = open_app(url, site)
    path = ledger.create(workdir / "ledger.db")
    acknowledged = set(_enqueue_records(app, path, jobs, job_seconds))
    tuning = [] if lease is None else ["--lease", str(lease)]
    ws = WorkerSet(url, site, workdir, options=["-n", str(concurrency), *tuning, "--log-level", "WARNING"])
    lease = 30.0 if lease is None else lease  # offload.worker.lease's default
    recovery_mark = lease + 5.0 if recovery_mark is None else recovery_mark
    timeout = timeout if timeout is not None else max(120.0, jobs / 50)
    reasons: list[str] = []
    unexpected: list[str] = []
    started, t_wall = time.monotonic(), time.time()
    for _ in range(workers):
        ws.start()
    next_kill = started + kill_every
    drained_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now - started > timeout:
                reasons.append(f"not drained within {timeout:g} s")
                break
            for w in ws.workers:
                if not w.alive() and w.pid not in {k.pid for k in ws.kills} and w.log_path.name not in unexpected:
                    unexpected.append(w.log_path.name)
                    reasons.append(f"worker {w.pid} exited by itself (code {w.proc.returncode}): "
                                   f"{_tail(w.log(), 5)}")
                    ws.start()
            if now >= next_kill and (max_kills is None or len(ws.kills) < max_kills):
                victim = rng.choice(ws.running)
                ws.kill(victim)
                ws.start()
                next_kill += kill_every
            if ledger.count_done(path) >= jobs and app.store.count(states=["finished"]) >= jobs:
                drained_at = time.monotonic()
                break
            time.sleep(0.1)
        counts = app.store.counts()
        codes = ws.stop_all()
    finally:
        ws.kill_all()
        app.close()
    executions = ledger.read(path)
    summary = ledger.delivery_summary(executions, acknowledged, ws.kills)
    result: dict[str, Any] = {
        "scenario": "kill storm",
        "engine": engine,
        "seed": seed,
        "workers": workers,
        "concurrency": concurrency,
        "lease": lease,
        "kills": len(ws.kills),
        "kill_log": [(k.pid, round(k.since - t_wall, 2), round(k.at - t_wall, 2)) for k in ws.kills],
        "t_wall": t_wall,
        "drain_seconds": None if drained_at is None else round(drained_at - started, 2),
        "final_counts": counts,
        **{k: v for k, v in summary.items() if k != "recovery"},
        "recovery": [round(r, 3) for r in summary["recovery"]],  # type: ignore[attr-defined]
        "timeline": _timeline(executions, t_wall),
    }
    if summary["lost"]:
        reasons.append(f"{summary['lost']} acknowledged job(s) never completed: {summary['lost_ids'][:5]}")
    if summary["unexplained_duplicates"]:
        reasons.append(f"{summary['unexplained_duplicates']} duplicate(s) not explained by a kill: "
                       f"{summary['unexplained_ids'][:5]}")
    if summary["duplicates"] > summary["in_flight_on_killed"]:  # type: ignore[operator]
        reasons.append(f"duplicates {summary['duplicates']} > in flight on killed {summary['in_flight_on_killed']}")
    pending = {state: n for queue in counts.values() for state, n in queue.items() if state != "finished"}
    if pending:
        reasons.append(f"jobs left unfinished in the store: {pending}")
    p99 = summary["recovery_p99"]
    if p99 is not None and p99 > recovery_mark:  # type: ignore[operator]
        reasons.append(f"recovery p99 {p99:.2f} s > {recovery_mark:g} s")
    result["exit_codes"] = codes
    return _verdict(result, reasons)


def _timeline(executions: list[ledger.Execution], t0: float, step: float = 0.5) -> list[tuple[float, int]]:
    """(seconds since the workers started, jobs run to their end so far), every ``step`` seconds."""
    ends = sorted(e.ended - t0 for e in executions if e.ended is not None)
    points: list[tuple[float, int]] = []
    t, done = 0.0, 0
    while ends and t <= ends[-1] + step:
        while done < len(ends) and ends[done] <= t:
            done += 1
        points.append((round(t, 2), done))
        t += step
    return points


# -- 2. store restart ----------------------------------------------------------------------------------------
RESTART_MODES = {"sqlite": ("kill-all",), "redis": ("aof", "no-persistence"), "postgresql": ("immediate",)}
#: appendfsync everysec: Redis may lose the writes of the last second (two in the worst case) on a crash.
AOF_WINDOW = 2.0


def _first_run_after(executions: list[ledger.Execution], supervisors: set[int], t: float) -> float | None:
    starts = [e.started for e in executions if e.ppid in supervisors and e.started >= t]
    return min(starts) - t if starts else None


def _kill_everything(ws: WorkerSet, producer: Producer) -> float:
    """SIGKILL the producer, every supervisor and every executor at once; returns when it was done."""
    pids = [producer.proc.pid]
    for w in ws.running:
        pids += [w.pid, *children_of(w.pid)]
    at = time.time()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    producer.proc.wait(30)
    for w in ws.workers:
        w.proc.wait(30)
    wait_until(lambda: not any(pid_alive(p) for p in pids), 30, what="every process gone")
    return at


def store_restart(engine: str, servers: Servers, workdir: Path, *, mode: str, produce: float = 3.0,
                  down: float = 3.0, after: float = 3.0, workers: int = 2, concurrency: int = 2, lease: float = 5.0,
                  job_seconds: float = 0.005, backlog: int = 1000, drain_timeout: float = 60.0) -> dict[str, Any]:
    """Take the store away while a producer enqueues and workers run, bring it back, count what was lost.

    ``redis``: SIGKILL the server (``aof``: appendonly, appendfsync everysec; ``no-persistence``: nothing kept).
    ``postgresql``: ``pg_ctl stop -m immediate`` (no shutdown checkpoint: crash recovery at start).
    ``sqlite``: SIGKILL every process that has the file open (producer, supervisors, executors) at once, check
    ``PRAGMA integrity_check``, start them again.
    Just before the fault ``backlog`` jobs are enqueued at once, so the store holds waiting work when it goes.
    """
    if mode not in RESTART_MODES[engine]:
        raise ValueError(f"{engine} has no restart mode {mode!r}")
    server: Any = None
    if engine == "redis":
        server = servers.fresh_redis(appendonly=mode == "aof")
        url = f"{server.url}?prefix=restart"
    elif engine == "postgresql":
        server = servers.fresh_postgres()
        url = f"{server.url}?schema=restart"
    else:
        url = f"sqlite:///{workdir}/offload.db"
    site = new_site()
    path = ledger.create(workdir / "ledger.db")
    options = ["-n", str(concurrency), "--lease", str(lease)]
    ws = WorkerSet(url, site, workdir, options=options)
    first_workers = [ws.start() for _ in range(workers)]
    producer = Producer.start(url, site, workdir, path, batch=10, every=0.02, seconds=job_seconds)
    producers = [producer]
    reasons: list[str] = []
    result: dict[str, Any] = {"scenario": "store restart", "engine": engine, "mode": mode, "down_seconds": down}
    try:
        wait_until(lambda: ledger.count_done(path) >= 20, 60, what="jobs flowing before the fault")
        time.sleep(produce)  # the fault schedule: some seconds of steady traffic, then the fault
        app = open_app(url, site)
        pending = {job: time.time() for job in _enqueue_records(app, path, backlog, job_seconds)}
        app.close()  # nothing of this process keeps the store open through the fault
        if engine == "sqlite":
            t_kill = _kill_everything(ws, producer)
            db = workdir / "offload.db"
            conn = sqlite3.connect(str(db))
            try:
                integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
            result["integrity_check"] = integrity
            if integrity != "ok":
                reasons.append(f"PRAGMA integrity_check: {integrity}")
            t_back = time.time()
            later_workers = [ws.start() for _ in range(workers)]
            producers.append(Producer.start(url, site, workdir, path, batch=10, every=0.02, seconds=job_seconds))
        else:
            t_kill = time.time()
            if engine == "redis":
                server.kill()
            else:
                server.stop("immediate")
            time.sleep(down)  # the fault schedule: the store stays away this long
            server.start()
            t_back = time.time()
            later_workers = first_workers
        time.sleep(after)
        for p in producers:
            p.stop()
        acked = dict(pending)
        for p in producers:
            acked.update(p.acknowledged())
        after_back = {job for job, t in acked.items() if t >= t_back}
        must_run = set(after_back) if mode == "no-persistence" else set(acked)

        def drained() -> bool:
            done = {e.job for e in ledger.read(path) if e.ended is not None}
            return must_run <= done

        try:
            wait_until(drained, drain_timeout, interval=0.25, what="every acknowledged job run")
        except TimeoutError as exc:
            reasons.append(str(exc))
        dead = [w.pid for w in later_workers if not w.alive()]
        if dead:
            reasons.append(f"worker(s) {dead} exited during the outage")
        ws.stop_all()
    finally:
        for p in producers:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)
        ws.kill_all()
        if server is not None:
            servers.release(server)
    executions = ledger.read(path)
    summary = ledger.delivery_summary(executions, set(acked), [])
    done = {e.job for e in executions if e.ended is not None}
    lost_ids = set(acked) - done
    in_window = {job for job in lost_ids if t_kill - AOF_WINDOW <= acked[job] <= t_kill}
    resumes = [_first_run_after(executions, {w.pid}, t_back) for w in later_workers]
    result.update({
        "jobs": len(acked),
        "executions": len(executions),
        "lost": len(lost_ids),
        "lost_before_fault": len({j for j in lost_ids if acked[j] < t_back}),
        "lost_after_recovery": len(lost_ids & after_back),
        "lost_in_fsync_window": len(in_window) if mode == "aof" else None,
        "duplicates": summary["duplicates"],
        "resume_seconds": [None if r is None else round(r, 2) for r in resumes],
        "recovery_p50": ledger.percentile([r for r in resumes if r is not None], 0.5),
        "recovery_p99": ledger.percentile([r for r in resumes if r is not None], 0.99),
    })
    if mode == "no-persistence":
        result["documented_loss"] = True  # a Redis without persistence forgets every job at a restart
        if lost_ids & after_back:
            reasons.append(f"{len(lost_ids & after_back)} job(s) acknowledged after the restart never ran")
    else:
        beyond = lost_ids - in_window if mode == "aof" else lost_ids
        if beyond:
            reasons.append(f"{len(beyond)} acknowledged job(s) lost: {sorted(beyond)[:5]}")
    for r in resumes:
        if r is None or r > 10.0:
            reasons.append(f"a worker resumed {'never' if r is None else f'after {r:.1f} s'} (limit 10 s)")
            break
    return _verdict(result, reasons)


# -- 3. poison jobs ------------------------------------------------------------------------------------------
#: name -> (job body, what the recorded error must say, whether the body takes its executor down)
POISONS: dict[str, tuple[str, str, bool]] = {
    "os._exit": ("tests.faults.jobs:exit_hard", "exited with code 3", True),
    "self-SIGKILL": ("tests.faults.jobs:kill_self", "killed by SIGKILL", True),
    "segfault": ("tests.faults.jobs:segfault", "killed by SIGSEGV", True),
    "SystemExit": ("tests.faults.jobs:system_exit", "SystemExit", False),
    "KeyboardInterrupt": ("tests.faults.jobs:keyboard_interrupt", "KeyboardInterrupt", False),
    "BaseException subclass": ("tests.faults.jobs:base_exception", "PoisonError", False),
    "memory blow-up": ("tests.faults.jobs:memory_blowup", "MemoryError", False),
}
POISON_RETRY = {"backoff": "fixed", "delay": 2.0, "jitter": False}  # longer than a boot: a spare is ready


def _healthy_throughput(executions: list[ledger.Execution], ids: set[str]) -> float:
    runs = [e for e in executions if e.job in ids and e.ended is not None]
    if len(runs) < 2:
        return 0.0
    span = max(e.ended for e in runs if e.ended is not None) - min(e.started for e in runs)
    return len({e.job for e in runs}) / span if span > 0 else 0.0


def _drain(app: Any, path: Path, healthy: set[str], others: set[str], timeout: float) -> None:
    def done() -> bool:
        finished = {e.job for e in ledger.read(path) if e.ended is not None}
        return healthy <= finished and all(app.get_job(j).state in ("failed", "finished") for j in others)

    wait_until(done, timeout, interval=0.25, what="healthy jobs run and poison jobs failed")


def poison(engine: str, servers: Servers, workdir: Path, *, healthy: int = 2000, job_seconds: float = 0.01,
           workers: int = 2, concurrency: int = 2, attempts: int = 3, address_space_mib: int = 1024,
           timeout: float = 120.0, throughput_mark: float = 0.8, replacement_mark: float = 1.0) -> dict[str, Any]:
    """Poison jobs of every kind among healthy jobs in one queue, against a clean run of the healthy jobs.

    Workers run under an address-space rlimit (``address_space_mib``), so the memory blow-up meets it. The marks
    are the issue's (healthy throughput within 20% of the clean run, executors replaced within 1 s).
    """
    url = servers.url(engine, workdir)
    reasons: list[str] = []
    options = ["-n", str(concurrency), "--lease", "10"]
    # The clean run: the same healthy jobs, no poison.
    clean_site, clean_path = new_site(), ledger.create(workdir / "clean.db")
    app = open_app(url, clean_site)
    clean_ids = set(_enqueue_records(app, clean_path, healthy, job_seconds))
    ws = WorkerSet(url, clean_site, workdir / "clean", options=options, address_space_mib=address_space_mib)
    ws.workdir.mkdir()
    try:
        for _ in range(workers):
            ws.start()
        _drain(app, clean_path, clean_ids, set(), timeout)
        ws.stop_all()
    finally:
        ws.kill_all()
        app.close()
    clean_tp = _healthy_throughput(ledger.read(clean_path), clean_ids)
    # The poison run: the same healthy jobs with the poison spread evenly among them.
    site, path = new_site(), ledger.create(workdir / "ledger.db")
    app = open_app(url, site)
    calls: list[dict[str, Any]] = [{"fn": RECORD, "args": [str(path), job_seconds], "max_attempts": 20}
                                   for _ in range(healthy)]
    # Spread from 5% to 45% of the queue: after the workers' own start, and early enough that the retries too
    # meet healthy jobs still waiting.
    start, step = int(healthy * 0.05), int(healthy * 0.4) // len(POISONS)
    for i, (name, (fn, _, _)) in enumerate(POISONS.items()):
        calls.insert(start + i * step + i, {"fn": fn, "args": [str(path)], "max_attempts": attempts,
                                          "retry": POISON_RETRY, "title": name})
    jobs = app.enqueue_many(calls, queue="faults")
    poison_ids = {job.title: job.id for job in jobs if job.title in POISONS}
    healthy_ids = {job.id for job in jobs if job.title not in POISONS}
    ws = WorkerSet(url, site, workdir, options=options, address_space_mib=address_space_mib)
    try:
        for _ in range(workers):
            ws.start()
        try:
            _drain(app, path, healthy_ids, set(poison_ids.values()), timeout)
        except TimeoutError as exc:
            reasons.append(str(exc))
        dead = [w.pid for w in ws.workers if not w.alive()]
        if dead:
            reasons.append(f"worker(s) {dead} died: {_tail(ws.workers[0].log(), 5)}")
        final = {name: app.get_job(job_id) for name, job_id in poison_ids.items()}
        ws.stop_all()
    finally:
        ws.kill_all()
        app.close()
    executions = ledger.read(path)
    runs = ledger.by_job(executions)
    poisons: dict[str, Any] = {}
    replacements: list[float] = []
    last_healthy = max((e.started for e in executions if e.job in healthy_ids), default=0.0)
    for name, (_, expected, crashes) in POISONS.items():
        job = final[name]
        mine = runs.get(job.id, [])
        cause = f"{(job.error or {}).get('type')}: {(job.error or {}).get('message')}"
        poisons[name] = {"executions": len(mine), "state": job.state, "error": cause}
        if len(mine) > attempts:
            reasons.append(f"{name}: ran {len(mine)} times, budget {attempts}")
        if job.state != "failed" or expected not in cause:
            reasons.append(f"{name}: ended {job.state} with {cause!r}, expected a failure naming {expected!r}")
        if crashes:  # measured while healthy jobs were still waiting for the new executor
            replacements += [_replacement_delay(executions, run) for run in mine if run.started < last_healthy - 2]
    poison_tp = _healthy_throughput(executions, healthy_ids)
    ratio = poison_tp / clean_tp if clean_tp else 0.0
    if ratio < throughput_mark:
        reasons.append(f"healthy throughput {poison_tp:.0f}/s is {ratio:.0%} of the clean run's {clean_tp:.0f}/s "
                       f"(mark {throughput_mark:.0%})")
    slow = [r for r in replacements if r > replacement_mark]
    if slow:
        reasons.append(f"{len(slow)} crashed executor(s) replaced after more than {replacement_mark:g} s (max "
                       f"{max(slow):.2f} s)")
    result = {
        "scenario": "poison jobs",
        "engine": engine,
        "jobs": healthy + len(POISONS),
        "executions": len(executions),
        "lost": len(healthy_ids - {e.job for e in executions if e.ended is not None}),
        "duplicates": sum(1 for j in healthy_ids if sum(r.ended is not None for r in runs.get(j, [])) > 1),
        "poisons": poisons,
        "clean_throughput": round(clean_tp, 1),
        "poisoned_throughput": round(poison_tp, 1),
        "throughput_ratio": round(ratio, 3),
        "replacement_seconds": [round(r, 3) for r in replacements],
        "recovery_p50": ledger.percentile(replacements, 0.5),
        "recovery_p99": ledger.percentile(replacements, 0.99),
    }
    return _verdict(result, reasons)


def _replacement_delay(executions: list[ledger.Execution], crashed: ledger.Execution) -> float:
    """From a crashing execution's start to the first job started by a new executor of the same worker."""
    seen = {e.pid for e in executions if e.ppid == crashed.ppid and e.started <= crashed.started}
    later = [e.started for e in executions
             if e.ppid == crashed.ppid and e.pid not in seen and e.started > crashed.started]
    return min(later) - crashed.started if later else float("inf")


# -- 4. timeouts ---------------------------------------------------------------------------------------------
#: name -> (job body, its arguments after the ledger; "{pidfile}" is replaced by a file for grandchild pids)
OVERRUNS: dict[str, tuple[str, list[Any]]] = {
    "ignores SIGTERM": ("tests.faults.jobs:ignore_sigterm", [60]),
    "blocked in C (libc sleep)": ("tests.faults.jobs:sleep_in_c", [60]),
    "time.sleep": ("tests.faults.jobs:time_sleep", [60]),
    "blocking socket read": ("tests.faults.jobs:blocking_read", []),
    "spawned grandchildren": ("tests.faults.jobs:spawn_grandchildren", ["{pidfile}", 60]),
    "grandchild in a new session": ("tests.faults.jobs:spawn_grandchildren", ["{pidfile}", 60, True]),
}


def timeouts(engine: str, servers: Servers, workdir: Path, *, timeout: float = 1.0, next_mark: float = 1.0
             ) -> dict[str, Any]:
    """Jobs that overrun their time limit in every way we know, each followed by a healthy job, on one worker
    with one executor: each must be killed (group and grandchildren) and the next job start promptly."""
    url, site = servers.url(engine, workdir), new_site()
    app = open_app(url, site)
    path = ledger.create(workdir / "ledger.db")
    calls: list[dict[str, Any]] = []
    pidfiles: dict[str, Path] = {}
    for i, (name, (fn, args)) in enumerate(OVERRUNS.items()):
        pidfiles[name] = workdir / f"grandchildren-{i}.pid"
        real = [str(pidfiles[name]) if a == "{pidfile}" else a for a in args]
        calls.append({"fn": fn, "args": [str(path), *real], "timeout": timeout, "max_attempts": 1, "title": name})
        calls.append({"fn": RECORD, "args": [str(path)], "title": f"after {name}"})
    jobs = app.enqueue_many(calls, queue="faults")
    ws = WorkerSet(url, site, workdir, options=["-n", "1"])
    reasons: list[str] = []
    try:
        worker = ws.start()
        try:
            wait_until(lambda: all(app.get_job(j.id).state in ("finished", "failed") for j in jobs),
                       len(OVERRUNS) * (timeout + 10) + 20, interval=0.2, what="every job done")
        except TimeoutError as exc:
            reasons.append(str(exc))
        final = {j.title: app.get_job(j.id) for j in jobs}
        if not worker.alive():
            reasons.append(f"the worker died: {_tail(worker.log(), 5)}")
        ws.stop_all()
    finally:
        ws.kill_all()
        app.close()
    runs = ledger.by_job(ledger.read(path))
    overruns: dict[str, Any] = {}
    kills: list[float] = []
    nexts: list[float] = []
    for name in OVERRUNS:
        job, after = final[name], final[f"after {name}"]
        mine, following = runs.get(job.id, []), runs.get(after.id, [])
        row: dict[str, Any] = {"state": job.state, "reason": (job.error or {}).get("reason")}
        if not mine or job.ended_at is None:
            reasons.append(f"{name}: never ran or never ended ({job.state})")
            overruns[name] = row
            continue
        killed_after = job.ended_at - mine[0].started
        row["killed_after"] = round(killed_after, 2)
        kills.append(killed_after)
        if job.state != "failed" or row["reason"] != "timeout":
            reasons.append(f"{name}: ended {job.state} ({row['reason']}), expected failed by timeout")
        if killed_after > timeout + 2.0:
            reasons.append(f"{name}: killed {killed_after:.2f} s after it started (limit {timeout + 2.0:g} s)")
        if pid_alive(mine[0].pid):
            reasons.append(f"{name}: its executor {mine[0].pid} is still alive")
        if pidfiles[name].exists():
            pids = [int(p) for p in pidfiles[name].read_text().split()]
            try:
                wait_until(lambda pids=pids: not any(pid_alive(p) for p in pids), 5.0)  # type: ignore[misc]
                row["grandchildren"] = "gone"
            except TimeoutError:
                alive = [p for p in pids if pid_alive(p)]
                row["grandchildren"] = f"{len(alive)} left"
                reasons.append(f"{name}: grandchildren {alive} outlived the kill")
                for p in alive:
                    os.kill(p, signal.SIGKILL)
        if following:
            delay = following[0].started - job.ended_at
            row["next_started_after"] = round(delay, 2)
            nexts.append(delay)
            if delay > next_mark:
                reasons.append(f"{name}: the next job started {delay:.2f} s after the kill (limit {next_mark:g} s)")
        else:
            reasons.append(f"{name}: the job after it never ran")
        overruns[name] = row
    result = {
        "scenario": "timeouts",
        "engine": engine,
        "jobs": len(jobs),
        "executions": sum(len(r) for r in runs.values()),
        "lost": sum(1 for j in jobs if j.title.startswith("after ") and not runs.get(j.id)),
        "duplicates": sum(1 for r in runs.values() if len(r) > 1),
        "timeout": timeout,
        "overruns": overruns,
        "kill_p99": ledger.percentile(kills, 0.99),
        "recovery_p50": ledger.percentile(nexts, 0.5),
        "recovery_p99": ledger.percentile(nexts, 0.99),
    }
    return _verdict(result, reasons)


# -- 5. fencing ----------------------------------------------------------------------------------------------
def fencing(engine: str, servers: Servers, workdir: Path, *, lease: float = 2.0, work: float = 4.0) -> dict[str, Any]:
    """SIGSTOP a worker's supervisor past its lease while its job runs; another worker takes the job over;
    SIGCONT the first: its late result must be rejected and logged, the store keep the second outcome."""
    url, site = servers.url(engine, workdir), new_site()
    app = open_app(url, site)
    path = ledger.create(workdir / "ledger.db")
    job = app.enqueue(RECORD, [str(path), work], queue="faults", max_attempts=3)
    ws = WorkerSet(url, site, workdir, options=["-n", "1", "--lease", str(lease)])
    reasons: list[str] = []
    result: dict[str, Any] = {"scenario": "fencing", "engine": engine, "jobs": 1, "lease": lease}
    try:
        first = ws.start()
        wait_until(lambda: ledger.read(path), 30, what="the job started")
        first.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        second = ws.start()
        try:
            done = wait_until(lambda: (j := app.get_job(job.id)).state == "finished" and j, 60, interval=0.1,
                              what="the job finished by the second worker")
            stored = (done.worker, done.result, done.attempts)
            first.proc.send_signal(signal.SIGCONT)
            resumed_at = time.time()
            marker = f"Result of job {job.id} discarded"
            wait_until(lambda: marker in first.log(), 30, what="the late result rejected and logged")
            result["rejected_after_resume"] = round(time.time() - resumed_at, 2)
            after = app.get_job(job.id)
        except TimeoutError as exc:
            first.proc.send_signal(signal.SIGCONT)
            reasons.append(str(exc))
            stored, after = None, app.get_job(job.id)
        alive = first.alive() and second.alive()
        ws.stop_all()
    finally:
        ws.kill_all()
        app.close()
    runs = [e for e in ledger.read(path) if e.job == job.id]
    result.update({
        "executions": len(runs),
        "lost": 0 if any(e.ended is not None for e in runs) else 1,
        "duplicates": max(0, sum(e.ended is not None for e in runs) - 1),
        "stopped_seconds": round(time.time() - stopped_at, 1),
        "store_outcome": {"state": after.state, "attempts": after.attempts, "result": after.result,
                          "worker": after.worker},
    })
    if len(runs) != 2 or any(e.ended is None for e in runs):
        reasons.append(f"the ledger shows {len(runs)} execution(s), expected two complete ones")
    elif runs[0].ppid != first.pid or runs[1].ppid != second.pid:
        reasons.append("the executions were not one per worker")
    elif after.state != "finished" or after.result != runs[1].pid or str(second.pid) not in (after.worker or ""):
        reasons.append(f"the store kept {result['store_outcome']}, expected the second worker's result")
    if stored is not None and stored != (after.worker, after.result, after.attempts):
        reasons.append("the late settle changed the stored outcome")
    if not alive:
        reasons.append("a worker died")
    return _verdict(result, reasons)


# -- 6. graceful shutdown ------------------------------------------------------------------------------------
def graceful(engine: str, servers: Servers, workdir: Path, *, work: float = 3.0, grace: float = 10.0) -> dict[str, Any]:
    """SIGTERM during a job: it finishes within the grace period and the worker exits 0; a second SIGTERM (or
    the end of the grace period) puts it back on its queue; no job is left ``started``."""
    url, site = servers.url(engine, workdir), new_site()
    app = open_app(url, site)
    path = ledger.create(workdir / "ledger.db")
    reasons: list[str] = []
    cases: dict[str, Any] = {}
    jobs = 0
    try:
        for case, signals, grace_s, seconds in (("one SIGTERM", 1, grace, work), ("two SIGTERMs", 2, 60.0, 60.0),
                                                ("grace period over", 1, 1.0, 60.0)):
            job = app.enqueue(RECORD, [str(path), seconds], queue="faults", title=case)
            behind = app.enqueue(RECORD, [str(path)], queue="faults", title=f"behind {case}")
            jobs += 2
            ws = WorkerSet(url, site, workdir / case.replace(" ", "-"), options=["-n", "1", "--grace", str(grace_s)])
            ws.workdir.mkdir()
            try:
                worker = ws.start()
                wait_until(lambda job=job: any(e.job == job.id for e in ledger.read(path)), 30,  # type: ignore[misc]
                           what=f"{case}: the job started")
                worker.proc.send_signal(signal.SIGTERM)
                termed = time.monotonic()
                if signals == 2:
                    wait_until(lambda w=worker: "warm shutdown" in w.log(), 10)  # type: ignore[misc]
                    worker.proc.send_signal(signal.SIGTERM)
                code = worker.proc.wait(grace_s + 30)
                took = time.monotonic() - termed
            finally:
                ws.kill_all()
            state, attempts = app.get_job(job.id).state, app.get_job(job.id).attempts
            runs = [e for e in ledger.read(path) if e.job == job.id]
            started = app.store.count(states=["started"])
            cases[case] = {"exit_code": code, "exit_seconds": round(took, 2), "state": state, "attempts": attempts,
                           "behind": app.get_job(behind.id).state, "started_left": started}
            want = ("finished", 1) if signals == 1 and seconds < grace_s else ("queued", 0)
            if code != 0:
                reasons.append(f"{case}: the worker exited {code}")
            if (state, attempts) != want:
                reasons.append(f"{case}: the job is {state} with {attempts} attempt(s), expected {want}")
            if want[0] == "finished" and (len(runs) != 1 or runs[0].ended is None or took > grace_s):
                reasons.append(f"{case}: the job did not run once to its end within the grace period")
            if app.get_job(behind.id).state != "queued":
                reasons.append(f"{case}: a job was taken during the warm shutdown")
            if started:
                reasons.append(f"{case}: {started} job(s) left started")
            if took > min(grace_s, seconds) + 5.0:
                reasons.append(f"{case}: the worker took {took:.1f} s to exit")
            app.clear(["faults"])
    finally:
        app.close()
    executions = ledger.read(path)
    result = {"scenario": "graceful shutdown", "engine": engine, "jobs": jobs, "executions": len(executions),
              "lost": 0, "duplicates": 0, "cases": cases}
    return _verdict(result, reasons)


# -- 8. corrupted and foreign records ------------------------------------------------------------------------
class _Exploit:
    """Unpickling this creates a directory: the proof that something unpickled a payload."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.marker,)


#: name -> what the recorded error must mention. Each is written per engine by ``_corrupt``.
CORRUPTIONS: dict[str, str] = {
    "payload is not JSON": "JSON",
    "meta is not JSON (PostgreSQL: not an object)": "meta",
    "errors is not JSON (PostgreSQL: not an array)": "errors",
    "spec is not JSON (Redis)": "spec",
    "function cannot be imported": "cannot import",
    "payload is a crafted pickle": "",
}


def _corrupt(app: Any, engine: str, job_id: str, name: str, marker: str) -> bool:
    """Damage a stored job with the engine's own client; False when ``name`` does not apply to ``engine``."""
    pickled = pickle.dumps(_Exploit(marker))
    store = app.store
    values: dict[str, dict[str, tuple[str, Any]]] = {
        "sqlite": {"payload is not JSON": ("payload", '[["unterminated'),
                   "meta is not JSON (PostgreSQL: not an object)": ("meta", "{bad"),
                   "errors is not JSON (PostgreSQL: not an array)": ("errors", "{bad"),
                   "function cannot be imported": ("func", "tests.faults.nowhere:fn"),
                   "payload is a crafted pickle": ("payload", pickled)},
        "redis": {"payload is not JSON": ("payload", '[["unterminated'),
                  "meta is not JSON (PostgreSQL: not an object)": ("meta", "{bad"),
                  "errors is not JSON (PostgreSQL: not an array)": ("errors", "{bad"),
                  "spec is not JSON (Redis)": ("spec", "{bad"),
                  "function cannot be imported": ("func", "tests.faults.nowhere:fn"),
                  "payload is a crafted pickle": ("payload", pickled)},
        "postgresql": {"payload is not JSON": ("payload", '[["unterminated'),
                       "meta is not JSON (PostgreSQL: not an object)": ("meta", '"a string"'),
                       "errors is not JSON (PostgreSQL: not an array)": ("errors", '{"not": "an array"}'),
                       "function cannot be imported": ("func", "tests.faults.nowhere:fn"),
                       "payload is a crafted pickle": ("payload", base64.b64encode(pickled).decode())},
    }
    if name not in values[engine]:
        return False
    column, value = values[engine][name]
    if engine == "sqlite":
        conn = sqlite3.connect(str(store.path))
        with conn:
            conn.execute(f"UPDATE jobs SET {column}=? WHERE site=? AND id=?", (value, store.site_id, job_id))
        conn.close()
    elif engine == "redis":
        import redis

        client = redis.Redis.from_url(store.url.split("?")[0])
        key = f"{store.base}j:{job_id}"
        if column == "func":
            spec = json.loads(client.hget(key, "spec"))
            spec[1] = value
            value = json.dumps(spec)
            column = "spec"
        client.hset(key, column, value)
        client.close()
    else:
        import psycopg

        with psycopg.connect(store.url.split("?")[0], autocommit=True) as conn:
            conn.execute(f'UPDATE "{store.schema}".jobs SET {column} = %s WHERE site = %s AND id = %s',
                         (value, store.site_id, job_id))
    return True


def corrupt_records(engine: str, servers: Servers, workdir: Path, *, healthy: int = 20) -> dict[str, Any]:
    """Jobs whose stored record was damaged (or written by something else) among healthy jobs: each must fail
    with an error naming the problem, never run (no ledger row, no unpickling), and the worker go on."""
    url, site = servers.url(engine, workdir), new_site()
    app = open_app(url, site)
    path = ledger.create(workdir / "ledger.db")
    marker = str(workdir / "unpickled")
    damaged: dict[str, str] = {}
    for name in CORRUPTIONS:
        job = app.enqueue(RECORD, [str(path)], queue="faults", max_attempts=3, title=name)
        if _corrupt(app, engine, job.id, name, marker):
            damaged[name] = job.id
        else:
            app.store.delete(job.id)
    good = [j.id for j in app.enqueue_many([(RECORD, [str(path)])] * healthy, queue="faults")]
    ws = WorkerSet(url, site, workdir, options=["-n", "1"])
    reasons: list[str] = []
    records: dict[str, Any] = {}
    try:
        worker = ws.start()

        def settled() -> bool:
            done = {e.job for e in ledger.read(path) if e.ended is not None}
            return set(good) <= done and all(app.store.get(j).state == "failed" for j in damaged.values())

        try:
            wait_until(settled, 60, interval=0.2, what="healthy jobs run and damaged ones failed")
        except TimeoutError as exc:
            reasons.append(str(exc))
        for name, job_id in damaged.items():
            job = app.store.get(job_id)
            error = job.error or {}
            records[name] = {"state": job.state, "attempts": job.attempts,
                             "error": f"{error.get('type')}: {error.get('message')}"}
        if not worker.alive():
            reasons.append(f"the worker died: {_tail(worker.log(), 5)}")
        ws.stop_all()
    finally:
        ws.kill_all()
        app.close()
    runs = ledger.by_job(ledger.read(path))
    for name, job_id in damaged.items():
        row = records[name]
        if runs.get(job_id):
            reasons.append(f"{name}: the job ran ({len(runs[job_id])} execution(s))")
        if row["state"] != "failed" or row["attempts"] != 1:
            reasons.append(f"{name}: {row['state']} after {row['attempts']} attempt(s), expected failed at once")
        if CORRUPTIONS[name].lower() not in row["error"].lower() or row["error"] == "None: None":
            reasons.append(f"{name}: unclear error {row['error']!r}")
    if Path(marker).exists():
        reasons.append("a crafted pickle payload was unpickled")
    result = {
        "scenario": "corrupted records",
        "engine": engine,
        "jobs": len(damaged) + healthy,
        "executions": sum(len(r) for r in runs.values()),
        "lost": sum(1 for j in good if not runs.get(j)),
        "duplicates": sum(1 for j in good if len(runs.get(j, [])) > 1),
        "records": records,
    }
    return _verdict(result, reasons)
