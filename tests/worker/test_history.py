"""Metrics history written by real workers: what a worker counted is in the store after it exits, and the next
worker's counts add to it."""

from __future__ import annotations

import time

import pytest

from offload import history
from tests import jobfuncs
from tests.worker.conftest import Workers

ALL_ENGINES = ["sqlite", "redis", "postgresql"]


@pytest.mark.parametrize("workers", ALL_ENGINES, indirect=True)
def test_counts_survive_a_worker_restart(workers: Workers) -> None:
    start = time.time()
    for run in range(2):
        workers.app.enqueue_many([(jobfuncs.sleep, [0.01])] * 5, queue="hist")
        workers.app.enqueue(jobfuncs.fail, ["kaput"], queue="hist", max_attempts=1)
        proc = workers.start("hist", "--burst")
        assert proc.wait(60) == 0, workers.log(proc)
        now = time.time()
        totals = history.Bucket()
        for _, bucket in history.series(workers.app.store, "hist", "minute", start, now):
            totals.merge(bucket.to_dict())
        assert (totals.finished, totals.failed) == (5 * (run + 1), run + 1), f"after run {run + 1}"
        assert totals.waits == 6 * (run + 1) and totals.percentile(0.5) is not None
        assert totals.percentile(0.5) >= 0.01
        hours = history.Bucket()
        for _, bucket in history.series(workers.app.store, "hist", "hour", start, now):
            hours.merge(bucket.to_dict())
        assert (hours.finished, hours.failed) == (totals.finished, totals.failed)
