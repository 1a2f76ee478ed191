"""The Redis store on one server and on a three-master Redis Cluster, side by side in one run.

Three sites of 3,000 no-op jobs each, one worker per site (``--burst``, 2 executors), all three at once; on the
cluster, the three sites are chosen so that each lives on its own master. Prints, per round, the jobs/s of the
whole drain and the CPU seconds each server (or shard) used during it (``/proc/<pid>/stat``). Servers are private
(free loopback ports, tests/servers.py and tests/ha/servers.py)::

    .venv/bin/python bench/redis_cluster.py [--jobs 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import clean_env  # noqa: E402
from tests.ha.servers import RedisCluster  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

from offload import Offload  # noqa: E402


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(url_for: Callable[[str], str], pids: list[int], sites: list[str], jobs: int) -> tuple[float, list[float]]:
    for site in sites:
        app = Offload(store=url_for(site), site_id=site)
        app.enqueue_many([{"fn": "tests.jobfuncs:noop"} for _ in range(jobs)], queue="default")
        app.close()
    before = {pid: cpu_seconds(pid) for pid in pids}
    began = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "offload", "--store", url_for(site), "--site-id", site,
                                 "worker", "default", "--burst", "--without-scheduler", "-n", "2",
                                 "--log-level", "warning"],
                                env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
               for site in sites]
    for worker in workers:
        if worker.wait(600) != 0:
            raise SystemExit(f"a worker exited with {worker.returncode}")
    wall = time.perf_counter() - began
    return len(sites) * jobs / wall, [round(cpu_seconds(pid) - before[pid], 2) for pid in pids]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    cluster, single = RedisCluster(), RedisServer()
    cluster.start()
    single.start()
    try:
        sites = sites_on_each_master(cluster)
        nodes = ",".join(f"{host}:{port}" for host, port in cluster.addrs)
        shard_pids = [node.proc.pid for node in cluster.nodes if node.proc is not None]
        assert single.proc is not None
        for n in range(opts.rounds):
            one = drain(lambda site: single.url, [single.proc.pid], [f"{s}r{n}" for s in sites], opts.jobs)
            spread = drain(lambda site: f"redis+cluster://{nodes}", shard_pids, sites, opts.jobs)
            print(f"round {n + 1}: one server {one[0]:,.0f} jobs/s, server CPU {one[1]} s | "
                  f"cluster {spread[0]:,.0f} jobs/s, shard CPU {spread[1]} s", flush=True)
    finally:
        cluster.cleanup()
        single.cleanup()


if __name__ == "__main__":
    main()
