"""Paused queues and snoozed jobs with real worker processes (issue 22), on SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import jobfuncs
from tests.conftest import engine_url
from tests.worker.conftest import Workers, wait_until

JOBS = 12


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(engine_url(request.param, tmp_path), f"f{uuid.uuid4().hex[:10]}", tmp_path)
    yield w
    w.stop_all()


def ledger_tags(path: Path) -> list[str]:
    return [line.split()[3] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_paused_queue_runs_nothing_while_another_drains_then_drains_on_resume(fleet: Workers, tmp_path: Path
                                                                               ) -> None:
    ledger = tmp_path / "ledger.txt"
    for _ in range(3):
        fleet.start("held", "free", "-n", "2")
    wait_until(lambda: len(fleet.app.store.list_workers(0)) == 3, what="3 workers registered")
    assert fleet.app.pause("held") is True  # the workers are up and idle, waiting on both queues
    held = fleet.app.enqueue_many([(jobfuncs.ledger, [str(ledger), "held"]) for _ in range(JOBS)], queue="held")
    free = fleet.app.enqueue_many([(jobfuncs.ledger, [str(ledger), "free"]) for _ in range(JOBS)], queue="free")
    wait_until(lambda: fleet.app.store.count(["free"], ["finished"]) == JOBS, what="the free queue drained")
    assert ledger_tags(ledger) == ["free"] * JOBS  # the ledger the jobs write: not one held job ran
    assert fleet.app.store.count(["held"], ["queued"]) == JOBS
    assert all(fleet.job(j.id).started_at is None for j in held)
    assert fleet.app.resume("held") is True
    wait_until(lambda: fleet.app.store.count(["held"], ["finished"]) == JOBS, timeout=30, what="held drained")
    assert sorted(ledger_tags(ledger)) == ["free"] * JOBS + ["held"] * JOBS
    ended = max(fleet.job(j.id).ended_at or 0 for j in free)
    assert min(fleet.job(j.id).started_at or 0 for j in held) >= ended
    assert all(p.poll() is None for p in fleet.procs)


def test_busy_workers_obey_a_pause_within_a_second(fleet: Workers) -> None:
    for _ in range(3):
        fleet.start("held", "-n", "2")
    jobs = fleet.app.enqueue_many([(jobfuncs.noop, [i]) for i in range(1500)], queue="held")
    wait_until(lambda: fleet.app.store.count(["held"], ["finished"]) >= 50, what="the workers busy")
    fleet.app.pause("held")
    paused_at = time.time()
    # Nothing to await here: the claim is what must not happen. Watch for two seconds, then look at every job.
    time.sleep(2.0)
    started = [j.started_at for j in fleet.app.list_jobs(["held"], ["started", "finished"], limit=2000)]
    assert started and max(s for s in started if s is not None) <= paused_at + 1.0
    waiting = fleet.app.store.count(["held"], ["queued"])
    assert waiting > 0, "the queue drained before the pause: nothing was shown"
    fleet.app.resume("held")
    wait_until(lambda: fleet.app.store.count(["held"], ["finished"]) == len(jobs), timeout=60, what="drained")


def test_a_snoozing_job_runs_again_later_without_using_its_attempts(fleet: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "snooze.txt"
    fleet.start("default", "-n", "2")
    job = fleet.app.enqueue(jobfuncs.snooze_times, [str(ledger), 3, 0.2], max_attempts=1)
    done = fleet.wait_state(job.id, "finished", "failed", timeout=30)
    assert done.state == "finished" and done.result == 1  # still on its first (and only) attempt
    assert done.attempts == 1 and done.errors == [] and done.error is None
    lines = ledger.read_text().splitlines()
    assert len(lines) == 4 and {line.split()[0] for line in lines} == {job.id}
    assert done.started_at is not None and done.started_at - done.created_at >= 3 * 0.2


def test_a_worker_runs_a_backlog_by_priority_then_in_order(fleet: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "order.txt"
    priorities = [5, 0, 9, 5, 0, 3, 9, 0, 1, 3]
    for i, priority in enumerate(priorities):
        fleet.app.enqueue(jobfuncs.ledger, [str(ledger), str(i)], queue="p", priority=priority)
    fleet.start("p", "-n", "1")
    wait_until(lambda: fleet.app.store.count(["p"], ["finished"]) == len(priorities), what="the backlog ran")
    expected = [str(i) for i in sorted(range(len(priorities)), key=lambda i: (priorities[i], i))]
    assert ledger_tags(ledger) == expected
