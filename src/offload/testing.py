"""Testing support for applications that enqueue jobs.

Installed as a pytest plugin (entry point ``pytest11``), so with offload installed these fixtures exist:

- ``offload_app``: an ``Offload`` on a fresh SQLite store in the test's temporary directory, also installed
  as the default site, so application code calling ``offload.enqueue`` writes there.
- ``offload_sync``: the same, in synchronous mode: every enqueue runs the job at once, in the test's process,
  through the same JSON encoding a worker would see (so a bad argument fails the same way); an exception
  in the job reaches the caller of ``enqueue``.
- ``run_jobs``: a function that runs every queued job of the default site now, in this process, and returns
  them in their final state: ``run_jobs()`` or ``run_jobs(queues=["mail"])``.

Outside pytest, ``run_pending(app)`` does what ``run_jobs`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from offload import default
from offload.app import Offload
from offload.jobs import Job
from offload.worker.executor import run_job
from offload.worker.settle import outcome_for_report

__all__ = ["offload_app", "offload_sync", "run_jobs", "run_pending"]


def run_pending(app: Offload, queues: Sequence[str] | None = None, max_jobs: int = 100_000) -> list[Job]:
    """Run the queued jobs of ``queues`` (default: every queue of the site) here and now, one by one, until
    none is left; jobs enqueued by those jobs run too. Retries that are scheduled for later do not."""
    store = app.store
    ran: list[str] = []
    while len(ran) < max_jobs:
        names = list(queues) if queues else sorted(store.counts())
        if not names:
            break
        claimed = store.claim(names, "inline", 3600.0, 1, time.time())
        if not claimed:
            break
        job = claimed[0]
        spec = job.spec()

        def progress(job_id: str, data: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
            store.set_progress(job_id, data, meta)

        report = run_job(spec, progress)
        store.settle([outcome_for_report(job, report, time.time())], time.time())
        ran.append(job.id)
    return [store.get(job_id) or Job(job_id, "?") for job_id in ran]


def _temporary_app(tmp_path: Path, sync: bool) -> Iterator[Offload]:
    app = Offload(store=f"sqlite:///{tmp_path / 'offload-test.db'}", site_id="test", jobs__sync=sync)
    previous = default.swap(app)
    try:
        yield app
    finally:
        default.swap(previous)
        app.close()


@pytest.fixture
def offload_app(tmp_path: Path) -> Iterator[Offload]:
    """A temporary SQLite-backed site, installed as the default for ``offload.enqueue``."""
    yield from _temporary_app(tmp_path, sync=False)


@pytest.fixture
def offload_sync(tmp_path: Path) -> Iterator[Offload]:
    """Synchronous mode: jobs run inline at enqueue."""
    yield from _temporary_app(tmp_path, sync=True)


@pytest.fixture
def run_jobs(offload_app: Offload) -> Callable[..., list[Job]]:
    """``run_jobs(queues=None)`` runs every queued job of the temporary site now and returns them."""

    def run(queues: Sequence[str] | None = None) -> list[Job]:
        return run_pending(offload_app, queues)

    return run
