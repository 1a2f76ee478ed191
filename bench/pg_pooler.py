"""Pickup latency of the PostgreSQL store behind PgBouncer (transaction pooling), with and without a listen URL.

    .venv/bin/python bench/pg_pooler.py                 # 3 rounds, ~6 minutes
    .venv/bin/python bench/pg_pooler.py --rounds 1 --busy 50 --idle 10

Starts a private PostgreSQL and PgBouncer (Debian's package; transaction pooling, pool size 4) on free loopback
ports, from tests/ha/servers.py, and measures with the latency workload's own pieces (bench/peers/_harness.py:
the same FIFO stamps and worker process control as bench/run.py) how long a job waits between its enqueue and
its start, for one worker (``offload worker --concurrency 2``) on three store URLs:

- ``direct``: straight to PostgreSQL (LISTEN/NOTIFY), the reference;
- ``pgbouncer``: through PgBouncer with ``pooler=transaction``: idle workers poll (1 ms within a second of the
  last work found, doubling to 50 ms);
- ``pgbouncer+listen``: through PgBouncer with ``pooler=transaction&listen_url=<direct URL>``: the worker
  LISTENs on a direct connection, everything else goes through PgBouncer.

Two pickup regimes per URL: **busy** (the next job 0-20 ms after the last one started, as bench/run.py's
latency workload) and **idle** (1.5-2.5 s apart, so a polling worker has backed off to its slowest poll).
Rounds alternate the URLs, so a slow spell of the shared machine hits each alike; figures are medians over the
rounds of each round's p50 and p99. Writes bench/results/pg-pooler.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH / "peers")]

import _harness  # noqa: E402
from machine import describe, other_load  # noqa: E402
from tests.ha.servers import PgBouncer  # noqa: E402

SITE = "bench"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def worker_argv(url: str) -> list[str]:
    return [str(Path(sys.executable).with_name("offload")), "--store", url, "--site-id", SITE, "worker", "default",
            "--concurrency", "2", "--log-level", "warning", "--without-scheduler"]


def measure(url: str, workdir: Path, samples: int, gap: tuple[float, float]) -> dict[str, Any]:
    """Start one worker on ``url``, enqueue ``samples`` stamp jobs ``gap`` seconds apart, each after the last
    started; the pickup latencies (ms)."""
    import psycopg

    from offload import Offload

    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS offload CASCADE")
    app = Offload(store=url, site_id=SITE)
    app.store  # noqa: B018 - migrated before the worker starts
    workdir.mkdir(parents=True, exist_ok=True)
    fifo = _harness._FifoReader(str(workdir / "stamps.fifo"))
    worker = _harness.WorkerProcess(worker_argv(url), {}, str(workdir / "worker.log"))
    rng = random.Random(1234)
    ms: list[float] = []
    try:
        app.enqueue("offload_jobs:stamp", [fifo.path, "warmup"])
        fifo.wait_for("warmup", 60)
        for i in range(samples):
            time.sleep(rng.uniform(*gap))
            enqueued = time.time()
            app.enqueue("offload_jobs:stamp", [fifo.path, str(i)])
            ms.append((fifo.wait_for(str(i), 30) - enqueued) * 1000)
    finally:
        worker.stop()
        fifo.close()
        app.close()
    return {"n": len(ms), "p50_ms": _percentile(ms, 0.5), "p99_ms": _percentile(ms, 0.99), "max_ms": max(ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=100, help="busy samples per URL and round")
    parser.add_argument("--idle", type=int, default=20, help="idle samples per URL and round")
    parser.add_argument("--output", default=str(BENCH / "results" / "pg-pooler"))
    opts = parser.parse_args(argv)
    bouncer = PgBouncer(pool_mode="transaction", default_pool_size=4)
    bouncer.start()
    direct = bouncer.backend.url
    urls = {
        "direct": f"{direct}?schema=offload",
        "pgbouncer": f"{bouncer.url}?schema=offload&pooler=transaction",
        "pgbouncer+listen": f"{bouncer.url}?schema=offload&pooler=transaction&listen_url={quote(direct, safe='')}",
    }
    regimes = {"busy": ((0.0, 0.02), opts.busy), "idle": ((1.5, 2.5), opts.idle)}
    work = BENCH / ".work" / f"pg-pooler-{dt.datetime.now():%Y%m%d-%H%M%S}"
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {u: {r: [] for r in regimes} for u in urls}
    load = {"before": other_load(), "rounds": []}
    began = time.monotonic()
    try:
        for round_no in range(1, opts.rounds + 1):
            load["rounds"].append(other_load())
            print(f"round {round_no}: machine {describe(load['rounds'][-1])}", flush=True)
            for name, url in urls.items():
                for regime, (gap, samples) in regimes.items():
                    result = measure(url, work / f"r{round_no}-{name}-{regime}", samples, gap)
                    runs[name][regime].append(result)
                    print(f"  {name:17} {regime:5} p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms"
                          f"  ({result['n']} samples)", flush=True)
    finally:
        bouncer.cleanup()
    summary = {name: {regime: {key: statistics.median(r[key] for r in results) for key in ("p50_ms", "p99_ms")}
                      for regime, results in by_regime.items()} for name, by_regime in runs.items()}
    report = {"meta": {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "rounds": opts.rounds, "samples": {"busy": opts.busy, "idle": opts.idle},
                       "pgbouncer": ".".join(map(str, bouncer.version)), "load": load,
                       "duration_s": round(time.monotonic() - began, 1), "python": sys.version.split()[0],
                       "offload_source": _harness_source()},
              "summary": summary, "runs": runs}
    out = Path(opts.output)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


def _harness_source() -> str:
    import subprocess

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip()


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [f"# PostgreSQL pickup latency through PgBouncer ({meta['date']}, offload {meta['offload_source']})", "",
             f"PgBouncer {meta['pgbouncer']} in transaction pooling before a private PostgreSQL; one worker "
             f"(`--concurrency 2`); medians of {meta['rounds']} rounds of each round's p50/p99 "
             f"({meta['samples']['busy']} busy samples 0-20 ms apart, {meta['samples']['idle']} idle samples "
             "1.5-2.5 s apart, per URL and round). bench/pg_pooler.py.", "",
             "| store URL | busy p50 (ms) | busy p99 (ms) | idle p50 (ms) | idle p99 (ms) |", "|---|---|---|---|---|"]
    for name, by_regime in report["summary"].items():
        busy, idle = by_regime["busy"], by_regime["idle"]
        lines.append(f"| {name} | {busy['p50_ms']:.1f} | {busy['p99_ms']:.1f} | {idle['p50_ms']:.1f} | "
                     f"{idle['p99_ms']:.1f} |")
    lines += ["", f"Machine before the run: {describe(meta['load']['before'])}. Duration {meta['duration_s']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.pop("OFFLOAD_STORE", None)
    sys.exit(main())
