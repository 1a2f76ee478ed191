"""What priorities, paused queues and concurrency limits cost a claim (issue 22), on each store, against plain
FIFO in the same run.

    .venv/bin/python bench/flow_claim.py            # about a minute
    .venv/bin/python bench/flow_claim.py --jobs 2000 --rounds 7

One process, the store API directly: each case enqueues ``--jobs`` jobs, then claims them one at a time (limit 1,
as a worker with one free slot does) and settles each as finished, timing every claim. Cases:

- ``fifo``: every job at priority 0 (the baseline: what every job was before priorities);
- ``low``: every job at priority 5 (on Redis the claim first finds the priority 0 list empty);
- ``mixed``: priorities 0-9 at random;
- ``paused-other``: priority 0, the claim naming a paused queue first (it is skipped);
- ``limit-loose``: priority 0, the queue with a concurrency limit of 1,000,000 (configured, never binding);
- ``limit-tight``: priority 0, the queue with a concurrency limit of 1: every claim takes the one free slot,
  which the settle before it gave back (binding: on PostgreSQL the claim takes the queue's advisory lock).

Rounds interleave the cases, so a slow spell of the shared machine hits each of them. Figures: the median claim
time of each round, then the median over rounds, and its ratio to ``fifo``'s. Writes
bench/results/flow-claim.{json,md}. Touches Redis database 11 (its own key prefix, deleted at the end), the
PostgreSQL schema ``bench_flow`` of database ``test`` (dropped at the end) and a SQLite file under bench/.work/.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from pathlib import Path

from offload.jobs import Job, Outcome, new_id
from offload.stores import Store, open_store

BENCH = Path(__file__).resolve().parent
CASES = ("fifo", "low", "mixed", "paused-other", "limit-loose", "limit-tight")


def urls(work: Path, run: str) -> dict[str, str]:
    return {
        "sqlite": f"sqlite:///{work / 'flow.db'}",
        "redis": f"redis://127.0.0.1:6379/11?prefix=benchflow{run}",
        "postgres": "postgresql://postgres@127.0.0.1:5432/test?schema=bench_flow",
    }


def one_case(store: Store, case: str, jobs: int) -> float:
    """The median time of one claim, in microseconds, over ``jobs`` claims."""
    now = time.time()
    rng = random.Random(7)
    prio = {"low": lambda: 5, "mixed": lambda: rng.randrange(10)}.get(case, lambda: 0)
    store.enqueue_many([Job(id=new_id(), queue="default", func="x:y", created_at=now, priority=prio())
                        for _ in range(jobs)], now)
    queues = ["held", "default"] if case == "paused-other" else ["default"]
    if case == "paused-other":
        store.pause("held", now)
    if case.startswith("limit-"):
        store.set_limit("default", 1 if case == "limit-tight" else 1_000_000)
    times: list[float] = []
    for _ in range(jobs):
        t0 = time.perf_counter()
        [job] = store.claim(queues, "w", 30.0, 1, time.time())
        times.append(time.perf_counter() - t0)
        store.settle([Outcome(job.id, job.lease_token or "", "finish", result_json="null")], time.time())
    store.resume("held")
    store.set_limit("default", None)
    store.purge(time.time() + 1)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stores", default="sqlite,redis,postgres")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    work = BENCH / ".work" / f"flow-{run}"
    work.mkdir(parents=True)
    results: dict[str, dict[str, list[float]]] = {}
    for name in args.stores.split(","):
        store = open_store(urls(work, run)[name], "flow")
        per_case: dict[str, list[float]] = {case: [] for case in CASES}
        for r in range(args.rounds):
            for case in CASES if r % 2 == 0 else CASES[::-1]:
                per_case[case].append(one_case(store, case, args.jobs))
        results[name] = per_case
        cleanup(store, name)
    write(results, args)


def cleanup(store: Store, name: str) -> None:
    if name == "redis":
        import redis

        client = redis.Redis.from_url(store.url.split("?")[0])
        for key in client.scan_iter(match=f"{store.key_prefix}:*"):  # type: ignore[attr-defined]
            client.delete(key)
    elif name == "postgres":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS bench_flow CASCADE")
    store.close()


def write(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    lines = ["# Claim time with priorities, paused queues and concurrency limits (bench/flow_claim.py)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.jobs} claims of one job per case and "
             f"round, {args.rounds} rounds; median claim time (µs) per round, median over rounds; ratio to fifo "
             "in the same run.", "", "| store | " + " | ".join(CASES) + " |", "|---|" + "---:|" * len(CASES)]
    for name, per_case in results.items():
        base = statistics.median(per_case["fifo"])
        cells = [f"{statistics.median(v):.0f} ({statistics.median(v) / base:.3f})" for v in per_case.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out = BENCH / "results" / "flow-claim"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "claim_us": results}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
