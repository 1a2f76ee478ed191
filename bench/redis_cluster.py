"""The Redis store on one server and on a three-master Redis Cluster, side by side in one run.

Two workloads, each drained by three workers (``--burst``, 2 executors each), all at once:

- ``sites``: three sites of ``--jobs`` no-op jobs on queue ``default``, a worker per site; on the cluster the
  three sites are chosen so that each lives on its own master.
- ``queues``: one site, ``--jobs`` no-op jobs on each of three queues, three workers each serving all three
  queues. Every key of a site shares the site's hash tag, so on the cluster the whole site lives on one
  master: this is the figure a layout that spreads a site's queues over the shards has to improve.

Prints, per round, the jobs/s of the whole drain and the CPU seconds each server (or shard) used during it
(``/proc/<pid>/stat``; shards busiest first, as the site may land on another master each round), then the
medians. Servers are private (free loopback ports, tests/servers.py and tests/ha/servers.py)::

    .venv/bin/python bench/redis_cluster.py [--jobs 3000] [--rounds 3] [--workload sites|queues|both]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import clean_env  # noqa: E402
from tests.ha.servers import RedisCluster  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

from offload import Offload  # noqa: E402

QUEUES = ("q0", "q1", "q2")
#: A workload: (site, the queues its jobs go to, the queues each of its workers serves, workers).
Load = tuple[str, Sequence[str], Sequence[str], int]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(url: str, pids: list[int], loads: Sequence[Load], jobs: int) -> tuple[float, list[float]]:
    """Enqueue ``jobs`` per queue of each load, then run every load's workers at once until all are done: the
    jobs/s of the drain and the CPU seconds of each server process during it, busiest first."""
    total = 0
    for site, queues, _, _ in loads:
        app = Offload(store=url, site_id=site)
        for queue in queues:
            app.enqueue_many([{"fn": "tests.jobfuncs:noop"} for _ in range(jobs)], queue=queue)
            total += jobs
        app.close()
    before = {pid: cpu_seconds(pid) for pid in pids}
    began = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "offload", "--store", url, "--site-id", site, "worker",
                                 *served, "--burst", "--without-scheduler", "-n", "2", "--log-level", "warning"],
                                env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
               for site, _, served, count in loads for _ in range(count)]
    for worker in workers:
        if worker.wait(600) != 0:
            raise SystemExit(f"a worker exited with {worker.returncode}")
    wall = time.perf_counter() - began
    return total / wall, sorted((round(cpu_seconds(pid) - before[pid], 2) for pid in pids), reverse=True)


def sites_on_each_master(cluster: RedisCluster) -> list[str]:
    client = cluster.cluster_client()
    sites: dict[str, str] = {}
    try:
        for n in range(10_000):
            owner = client.get_node_from_key(f"offload:{{c{n}}}:").name
            if owner not in sites.values():
                sites[f"c{n}"] = owner
            if len(sites) == len(cluster.nodes):
                return list(sites)
    finally:
        client.close()
    raise SystemExit("no site id found for every master")


def workloads(kind: str, sites: list[str], round_no: int) -> tuple[list[Load], list[Load]]:
    """The loads of one round on the single server and on the cluster (fresh site ids on the server, so that
    rounds do not share keys; on the cluster the sites must stay on the masters they were chosen for)."""
    if kind == "sites":
        return ([(f"{s}r{round_no}", ["default"], ["default"], 1) for s in sites],
                [(s, ["default"], ["default"], 1) for s in sites])
    return ([(f"one-r{round_no}", QUEUES, QUEUES, 3)], [(f"spread-r{round_no}", QUEUES, QUEUES, 3)])


def report(kind: str, rows: list[tuple[tuple[float, list[float]], tuple[float, list[float]]]]) -> None:
    one_rate = statistics.median(one[0] for one, _ in rows)
    spread_rate = statistics.median(spread[0] for _, spread in rows)
    one_cpu = [statistics.median(one[1][i] for one, _ in rows) for i in range(len(rows[0][0][1]))]
    shard_cpu = [statistics.median(spread[1][i] for _, spread in rows) for i in range(len(rows[0][1][1]))]
    print(f"{kind} (median of {len(rows)}): one server {one_rate:,.0f} jobs/s, server CPU {one_cpu} s | "
          f"cluster {spread_rate:,.0f} jobs/s ({spread_rate / one_rate:.2f}x), shard CPU {shard_cpu} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", choices=["sites", "queues", "both"], default="both")
    opts = parser.parse_args()
    kinds = ["sites", "queues"] if opts.workload == "both" else [opts.workload]
    cluster, single = RedisCluster(), RedisServer()
    cluster.start()
    single.start()
    try:
        sites = sites_on_each_master(cluster)
        cluster_url = "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in cluster.addrs)
        shard_pids = [node.proc.pid for node in cluster.nodes if node.proc is not None]
        assert single.proc is not None
        for kind in kinds:
            rows = []
            for n in range(opts.rounds):
                on_one, on_cluster = workloads(kind, sites, n)
                one = drain(single.url, [single.proc.pid], on_one, opts.jobs)
                spread = drain(cluster_url, shard_pids, on_cluster, opts.jobs)
                print(f"{kind} round {n + 1}: one server {one[0]:,.0f} jobs/s, server CPU {one[1]} s | "
                      f"cluster {spread[0]:,.0f} jobs/s, shard CPU {spread[1]} s", flush=True)
                rows.append((one, spread))
            report(kind, rows)
    finally:
        cluster.cleanup()
        single.cleanup()


if __name__ == "__main__":
    main()
