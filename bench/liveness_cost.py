"""What dead-worker detection costs the store server: CPU per liveness check, against CPU per job in the same run.

    .venv/bin/python bench/liveness_cost.py                 # Redis and PostgreSQL, 16 registered workers
    .venv/bin/python bench/liveness_cost.py --workers 64 --checks 5000

Every supervisor makes one liveness check a second (worker/liveness.py): the heartbeat-and-reap exchange
(``reap_dead_workers``), and every fifth second a registry read (``list_workers``, every entry of the site).
This script registers ``--workers`` workers on a private server (tests/servers.py), then measures, in turns, the
server's CPU time (the Redis and PostgreSQL processes, from /proc) for ``--checks`` checks and for draining
``--jobs`` no-op jobs claimed and settled in batches of 16 (a worker's batch). It reports the medians of
``--repeats`` rounds: microseconds of server CPU per check and per job, and what ``--workers`` workers' checks
cost each second, in jobs' worth. Writes ``bench/results/liveness-cost.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.stores.conftest import make_job  # noqa: E402

from offload.jobs import Outcome, WorkerInfo  # noqa: E402
from offload.stores import Store, open_store  # noqa: E402
from offload.worker.liveness import HEARTBEAT, REGISTRY_EVERY  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU of ``root_pid`` and its children (a postmaster's backends), from /proc."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root_pid or int(fields[1]) == root_pid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def server(engine: str) -> tuple[Any, int]:
    from tests import servers

    if engine == "redis":
        found: Any = servers.RedisServer()
        found.start()
        return found, found.proc.pid
    found = servers.PostgresServer()
    found.start()
    with open(found.data / "postmaster.pid") as f:
        return found, int(f.readline())


def register(store: Store, workers: int) -> None:
    now = time.time()
    for n in range(workers):
        store.register_worker(WorkerInfo(f"host-{n}.{1000 + n}.ab", f"host-{n}", 1000 + n, ["default"], 2, now, now,
                                         jobs=[uuid.uuid4().hex, uuid.uuid4().hex], host_id=f"boot-{n}/pid:[1]",
                                         pid_start=12345))


def checks(store: Store, n: int) -> None:
    for i in range(n):
        now = time.time()
        if i % round(REGISTRY_EVERY / HEARTBEAT) == 0:
            store.list_workers(0.0)
        store.reap_dead_workers("host-0.1000.ab", now, now - 9.0, [])


def jobs(store: Store, n: int) -> None:
    store.enqueue_many([make_job() for _ in range(n)], time.time())
    while True:
        claimed = store.claim(["default"], "host-0.1000.ab", 30.0, 16, time.time())
        if not claimed:
            return
        now = time.time()
        store.settle([Outcome(j.id, j.lease_token or "", "finish", result_json="null", ended_at=now)
                      for j in claimed], now)


def measure(root_pid: int, fn: Any, *args: Any) -> float:
    before = cpu_seconds(root_pid)
    fn(*args)
    return cpu_seconds(root_pid) - before


def run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    srv, pid = server(engine)
    try:
        url = srv.url if engine == "redis" else f"{srv.url}?schema=liveness_cost"
        store = open_store(url, "cost")
        store.open()
        register(store, args.workers)
        jobs(store, 500)  # warm-up: plans, scripts
        checks(store, 200)
        per_check, per_job = [], []
        for _ in range(args.repeats):
            per_check.append(measure(pid, checks, store, args.checks) / args.checks * 1e6)
            per_job.append(measure(pid, jobs, store, args.jobs) / args.jobs * 1e6)
        store.close()
    finally:
        srv.cleanup()
    check_us, job_us = statistics.median(per_check), statistics.median(per_job)
    return {"engine": engine, "workers": args.workers, "check_us": round(check_us, 1), "job_us": round(job_us, 1),
            "checks_us": [round(x, 1) for x in per_check], "jobs_us": [round(x, 1) for x in per_job],
            "per_second_us": round(check_us * args.workers, 1),
            "jobs_worth_per_second": round(check_us * args.workers / job_us, 1) if job_us else None}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Liveness cost: server CPU of dead-worker detection", "",
        f"Run {report['started']}: `{report['command']}`; load {report['load']} before. Medians of "
        f"{report['repeats']} rounds; server CPU from /proc (10 ms ticks), so small figures are coarse.", "",
        "| store | registered workers | server CPU per check (us) | server CPU per job (us) | all workers' checks "
        "per second (us of CPU) | in jobs' worth per second |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['check_us']} | {r['job_us']} | {r['per_second_us']} "
                     f"| {r['jobs_worth_per_second']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="redis,postgresql")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--checks", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "liveness-cost"))
    args = parser.parse_args()
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv),
              "load": os.getloadavg(), "repeats": args.repeats,
              "results": [run_engine(e, args) for e in args.engines.split(",") if e]}
    Path(f"{args.output}.json").write_text(json.dumps(report, indent=1))
    Path(f"{args.output}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
