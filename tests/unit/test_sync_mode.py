"""Synchronous mode (``offload.jobs.sync``, the ``offload_sync`` fixture) on SQLite, Redis and PostgreSQL: ``async
def`` jobs are awaited, Celery-era retries run at once (as Celery's eager mode), and task status is kept in the
store although the job itself never is."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import offload
from offload import Offload
from offload.retry import MaxRetriesExceededError
from tests.conftest import engine_url
from tests.taskmods import celery_tasks


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def sync_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Offload]:
    app = Offload(store=engine_url(request.param, tmp_path), site_id=f"s{uuid.uuid4().hex[:10]}", jobs__sync=True)
    yield app
    app.close()


def test_async_jobs_are_awaited(sync_app: Offload) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail the test
        job = sync_app.enqueue(celery_tasks.async_double, [21], task_status=("dataset", "d1", "double"))
    assert job.state == "finished" and job.result == {"double": 42, "job": job.id}
    assert sync_app.store.get(job.id) is None  # inline jobs are not stored...
    status = sync_app.task_status("dataset", "d1", "double")  # ...their status is
    assert status is not None and status["state"] == "finished" and status["job_id"] == job.id
    with pytest.raises(LookupError, match="async failure"):
        sync_app.enqueue(celery_tasks.async_fail, ["async failure"], task_status=("dataset", "d1", "double"))
    failed = sync_app.task_status("dataset", "d1", "double")
    assert failed is not None and failed["state"] == "failed" and failed["error"]["type"] == "LookupError"
    assert "async failure" in failed["error"]["message"] and "Traceback" in failed["error"]["traceback"]


def test_async_job_enqueued_from_a_running_event_loop(sync_app: Offload) -> None:
    async def handler() -> offload.Job:
        return sync_app.enqueue(celery_tasks.async_double, [5])

    job = asyncio.run(handler())
    assert job.result == {"double": 10, "job": job.id}


def test_celery_retry_runs_again_at_once_with_the_new_arguments(sync_app: Offload, tmp_path: Path) -> None:
    marker = str(tmp_path / "m")
    job = sync_app.send_task("celery_tasks.echofunction", args=["Hi", marker, 2], task_status=("t", "1", "echo"))
    assert job.state == "finished" and job.result == "Hi!!??" and job.attempts == 3 and job.max_attempts == 11
    assert [e["type"] for e in job.errors] == ["OSError", "OSError"]
    status = sync_app.task_status("t", "1", "echo")
    assert status is not None and status["state"] == "finished" and status["attempts"] == 3


def test_retries_used_up_in_sync_mode_raise_what_the_worker_records(sync_app: Offload, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="still missing"):
        sync_app.send_task("celery_tasks.always_fails", args=[str(tmp_path / "a"), True])
    with pytest.raises(MaxRetriesExceededError, match="2 retries used"):
        sync_app.send_task("celery_tasks.always_fails", args=[str(tmp_path / "b"), False],
                           task_status=("t", "2", "fails"))
    assert len((tmp_path / "b").read_text().splitlines()) == 3
    status = sync_app.task_status("t", "2", "fails")
    assert status is not None and status["state"] == "failed" and status["attempts"] == 3
    assert status["max_attempts"] == 3 and status["error"]["type"] == "offload.retry.MaxRetriesExceededError"


def test_offload_sync_fixture_awaits_async_jobs(offload_sync: Offload) -> None:
    job = offload.enqueue(celery_tasks.async_double, [1])
    assert job.result == {"double": 2, "job": job.id}
