"""A producer process for the store-restart scenarios: enqueues ledger jobs in batches through outages.

``python -m tests.faults.producer --store URL --site-id S --ledger L --acks FILE --stop-file F --batch N
--every S [--seconds S] [--limit N]``. Job ids are chosen here, so a batch whose reply was lost is sent again
with the same ids (the store answers with the existing jobs): retrying never adds a job twice. An id is
appended to the acks file (``<id> <time>``) only after the store acknowledged its batch; this file is what
"acknowledged" means for the loss check. Stops when the stop file appears (or after ``limit`` jobs) and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from offload import Offload
from offload.jobs import new_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faults-producer")
    parser.add_argument("--store", required=True)
    parser.add_argument("--site-id", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--acks", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--every", type=float, default=0.02)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--limit", type=int, default=0)
    opts = parser.parse_args(argv)
    app = Offload(store=opts.store, site_id=opts.site_id)
    acks = os.open(opts.acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    stop = Path(opts.stop_file)
    sent = failures = 0
    while not stop.exists() and not (opts.limit and sent >= opts.limit):
        ids = [new_id() for _ in range(opts.batch)]
        calls = [{"fn": "tests.faults.jobs:record", "args": [opts.ledger, opts.seconds], "job_id": job_id,
                  "max_attempts": 20} for job_id in ids]
        while True:
            try:
                app.enqueue_many(calls, queue="faults")
                break
            except Exception as exc:  # an outage (of any engine's flavour): the same ids until it is over
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    print(f"enqueue failed ({failures}): {exc}", file=sys.stderr, flush=True)
                time.sleep(0.05)
                if stop.exists():
                    os.close(acks)
                    return 0
        acked = time.time()
        os.write(acks, "".join(f"{job_id} {acked:.6f}\n" for job_id in ids).encode())
        sent += len(ids)
        time.sleep(opts.every)
    os.close(acks)
    print(f"producer done: {sent} job(s) acknowledged, {failures} failed call(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
