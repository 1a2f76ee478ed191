"""The CKAN worker's throughput on stock CKAN 2.12 (RQ) and on offload, in the same run on the same machine:

    .venv/bin/python bench/ckan_worker.py [--jobs 100] [--rounds 3]

Prepares a CKAN site on fresh databases (as tests/ckan does; needs the CKAN venv, PostgreSQL and Redis), then
runs ``bench/ckan_worker_side.py`` in the CKAN venv: each round drains the same number of no-op jobs with
``Worker(queue).work(burst=True)`` on RQ, on offload with a fork per job (the default), and on offload with one
fork for all jobs. Reports median jobs/s and ratios to RQ in ``bench/results/ckan-worker.{json,md}``, with the
machine's state (``bench/machine.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe, other_load  # noqa: E402
from tests.ckan import ckan_suite  # noqa: E402
from tests.ckan.conftest import CKAN_PYTHON, RUN_ID, _admin_db  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    solr = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ckan" / "solr_standin.py"), "18999"],
                            stdout=subprocess.DEVNULL)
    jobs_db = f"bench_ckan_jobs_{RUN_ID}"
    _admin_db(f'CREATE DATABASE "{jobs_db}"')
    suite = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            suite = ckan_suite.prepare(Path(tmp), 18999, "bench",
                                       {"ckan.offload.store": ckan_suite._db_url(jobs_db) + "?schema=offload_jobs"})
            suite.databases.append(jobs_db)
            raw = Path(tmp) / "raw.json"
            before = other_load()
            subprocess.run([str(CKAN_PYTHON), str(ROOT / "bench" / "ckan_worker_side.py"), str(suite.ini),
                            str(options.jobs), str(options.rounds), str(raw)], check=True, cwd=ROOT / "bench",
                           env={**suite.env, "PYTHONPATH": str(ROOT / "bench")})
            data = json.loads(raw.read_text())
    finally:
        solr.terminate()
        if suite is not None:
            suite.close()
        else:
            _admin_db(f'DROP DATABASE IF EXISTS "{jobs_db}" WITH (FORCE)')
    rates = {mode: statistics.median(data["jobs"] / s for s in seconds) for mode, seconds in data["seconds"].items()}
    report = {"jobs": data["jobs"], "rounds": data["rounds"], "seconds": data["seconds"], "median_jobs_per_s": rates,
              "ratio_to_rq": {mode: rate / rates["rq"] for mode, rate in rates.items()}, "machine": before}
    out = ROOT / "bench" / "results" / "ckan-worker"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# CKAN worker: {data['jobs']} no-op jobs drained by `Worker(queue).work(burst=True)`, "
             f"median of {data['rounds']} rounds", "", "| worker | jobs/s (median) | ratio to RQ |", "|---|---|---|"]
    lines += [f"| {mode} | {rate:.1f} | {rate / rates['rq']:.2f} |" for mode, rate in rates.items()]
    lines += ["", f"Machine before the run: {describe(before)}"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
