"""Concurrency limits with real worker processes (issue 22): four workers, each able to run several jobs, never
run more of a limited queue (or of one limit key) at once than its limit, counted from a ledger the job bodies
write (SQLite, Redis, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import jobfuncs
from tests.conftest import engine_url
from tests.worker.conftest import Workers, wait_until


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(engine_url(request.param, tmp_path), f"l{uuid.uuid4().hex[:10]}", tmp_path)
    yield w
    w.stop_all()


def spans(path: Path) -> list[tuple[str, float, float]]:
    rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return [(tag, float(start), float(end)) for tag, start, end, _ in rows]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of ``(start, end)`` intervals that overlap at one moment (an end before a start at the
    same time)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_four_workers_never_run_more_than_the_limit_of_a_queue(fleet: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "spans.txt"
    fleet.app.limit("lim", 2)
    jobs = fleet.app.enqueue_many([(jobfuncs.span, [str(ledger), "lim", 0.15]) for _ in range(24)], queue="lim")
    free = fleet.app.enqueue_many([(jobfuncs.span, [str(ledger), "free", 0.15]) for _ in range(12)], queue="free")
    for _ in range(4):
        fleet.start("lim", "free", "-n", "3")
    wait_until(lambda: fleet.app.store.count(["lim", "free"], ["finished"]) == len(jobs) + len(free), timeout=60,
               what="both queues drained")
    ran = spans(ledger)
    limited = [(start, end) for tag, start, end in ran if tag == "lim"]
    assert len(limited) == len(jobs)
    assert most_at_once(limited) == 2, "at most 2 at once, and the limit was reached"
    assert most_at_once([(start, end) for tag, start, end in ran if tag == "free"]) > 2, "the other queue is free"
    assert all(p.poll() is None for p in fleet.procs)


def test_a_key_limit_of_one_never_runs_two_jobs_of_a_key_at_once(fleet: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "keys.txt"
    fleet.app.limit("harvest", key_concurrency=1)
    keys = ["source-1", "source-2", "source-3"]
    jobs = [fleet.app.enqueue(jobfuncs.span, [str(ledger), key, 0.1], queue="harvest", limit_key=key)
            for key in keys * 9]
    for _ in range(4):
        fleet.start("harvest", "-n", "3")
    wait_until(lambda: fleet.app.store.count(["harvest"], ["finished"]) == len(jobs), timeout=60,
               what="the queue drained")
    ran = spans(ledger)
    assert len(ran) == len(jobs)
    for key in keys:
        assert most_at_once([(start, end) for tag, start, end in ran if tag == key]) == 1, key
    assert most_at_once([(start, end) for _, start, end in ran]) > 1, "different keys ran side by side"
    assert all(p.poll() is None for p in fleet.procs)
