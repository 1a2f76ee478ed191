"""Run in the CKAN venv by bench/ckan_worker.py: ``python ckan_worker_side.py INI JOBS ROUNDS OUT``.

Times ``Worker(queue).work(burst=True)`` draining JOBS no-op jobs enqueued with ``ckan.lib.jobs.enqueue``, for:
``rq`` (stock CKAN 2.12: RQ forks a work horse per job, which runs ``load_environment(config)``), ``offload-fork``
(offload, a fork of the worker per job: ``ckan.offload.worker.max_jobs_per_child = 1``, the default) and
``offload-reuse`` (one fork for all the jobs: ``max_jobs_per_child = 0``). Modes alternate within each round.
Writes the raw seconds per round as JSON.
"""

from __future__ import annotations

import json
import sys
import time


def noop() -> None:
    return None


def main() -> None:
    ini, count, rounds, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    from ckan.cli import load_config
    from ckan.config.environment import load_environment

    load_environment(load_config(ini))
    import ckan.lib.jobs as jobs

    from offload.app import Offload
    from offload.contrib.ckan import plugin
    from offload.contrib.ckan.site import site_app

    sys.modules.setdefault("ckan_worker_side", sys.modules[__name__])
    results: dict[str, list[float]] = {"rq": [], "offload-fork": [], "offload-reuse": []}
    for _ in range(rounds):
        for mode in results:
            if mode == "rq":
                plugin.uninstall()
            else:
                plugin.install()
            queue = f"bench-{mode}"
            for _ in range(count):
                jobs.enqueue("ckan_worker_side:noop" if mode != "rq" else noop, queue=queue)
            worker = jobs.Worker([queue])
            if mode != "rq":
                base = site_app()
                worker._app = Offload(store=base.store, site_id=base.site_id,
                                      worker__max_jobs_per_child=1 if mode == "offload-fork" else 0)
            started = time.perf_counter()
            worker.work(burst=True)
            results[mode].append(time.perf_counter() - started)
            print(mode, f"{results[mode][-1]:.2f} s", flush=True)
    plugin.install()
    with open(out, "w") as f:
        json.dump({"jobs": count, "rounds": rounds, "seconds": results}, f)


if __name__ == "__main__":
    main()
