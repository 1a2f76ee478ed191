"""Celery-era retry as CKAN's old docs show it (``echo.retry(args=(message,), exc=e, countdown=120,
max_retries=10)``, or ``eta=``), run by real workers on SQLite, Redis and PostgreSQL; ``offload show`` reports the
attempts consistently (never more attempts than the budget)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload.jobs import FAILED, FINISHED, SCHEDULED
from tests.conftest import engine_url
from tests.taskmods import celery_tasks  # noqa: F401 - registers the tasks send_task looks up
from tests.worker.conftest import ROOT, Workers

IMPORT = ("--import", "tests.taskmods.celery_tasks")


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(engine_url(request.param, tmp_path), f"w{uuid.uuid4().hex[:10]}", tmp_path)
    yield w
    w.stop_all()


def show(workers: Workers, job_id: str) -> str:
    out = subprocess.run([sys.executable, "-m", "offload", "--store", workers.url, "--site-id", workers.site, "show",
                          job_id], env=workers.env(), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def attempts_line(text: str) -> tuple[int, int]:
    match = re.search(r"^Attempts: (\d+) of (\d+)$", text, re.M)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def burst(workers: Workers) -> None:
    proc = workers.start("--burst", *IMPORT)
    assert proc.wait(60) == 0, workers.log(proc)


def test_retry_as_the_celery_docs_show_it(workers: Workers, tmp_path: Path) -> None:
    marker = str(tmp_path / "echo.marker")
    job = workers.app.send_task("celery_tasks.echofunction", args=["Hello World", marker, 1],
                                task_id=str(uuid.uuid4()))
    assert job.max_attempts == 3  # offload's default budget, before the task asks for more
    before = time.time()
    burst(workers)

    waiting = workers.job(job.id)
    assert waiting.state == SCHEDULED and waiting.attempts == 1
    assert before + 119 <= waiting.run_at <= time.time() + 121  # countdown=120
    # The new call's arguments replace the old ones; max_retries=10 is the budget now (11 attempts in all).
    assert waiting.args == ["Hello World!", marker, 1] and waiting.kwargs == {"suffix": "?"}
    assert waiting.max_attempts == 11
    assert waiting.errors[0]["type"] == "OSError" and waiting.errors[0]["reason"] == "retry"
    text = show(workers, job.id)
    assert attempts_line(text) == (1, 11)
    assert "Hello World!" in text and "Runs at:" in text

    workers.app.retry(job.id)  # run the scheduled retry now instead of waiting two minutes
    burst(workers)
    done = workers.job(job.id)
    assert done.state == FINISHED and done.result == "Hello World!?" and done.attempts == 2
    assert attempts_line(show(workers, job.id)) == (2, 11)


def test_retry_at_an_eta(workers: Workers, tmp_path: Path) -> None:
    marker = str(tmp_path / "eta.marker")
    job = workers.app.send_task("celery_tasks.at_eta", args=[marker, 0.5])
    proc = workers.start(*IMPORT)
    done = workers.wait_state(job.id, FINISHED, timeout=30)
    assert done.result == "ran at eta" and done.attempts == 2
    assert done.started_at - done.errors[0]["at"] >= 0.4  # it waited for the eta
    assert len(Path(marker).read_text().splitlines()) == 2
    proc.terminate()
    assert proc.wait(30) == 0


@pytest.mark.parametrize("with_exc", [True, False])
def test_retries_used_up_fail_with_the_exception_or_max_retries_exceeded(workers: Workers, tmp_path: Path,
                                                                         with_exc: bool) -> None:
    marker = str(tmp_path / "fails.marker")
    job = workers.app.send_task("celery_tasks.always_fails", args=[marker, with_exc])
    assert job.max_attempts == 3  # max_retries=2 on the task
    burst(workers)
    failed = workers.job(job.id)
    assert failed.state == FAILED and failed.attempts == 3 and failed.max_attempts == 3
    assert len(Path(marker).read_text().splitlines()) == 3
    expected = "KeyError" if with_exc else "offload.retry.MaxRetriesExceededError"
    assert failed.error["type"] == expected
    if not with_exc:
        assert "2 retries used" in failed.error["message"]
    text = show(workers, job.id)
    assert attempts_line(text) == (3, 3)
    assert f"Error:    {expected}" in text


def test_more_retries_than_the_default_budget_never_shows_more_attempts_than_allowed(workers: Workers,
                                                                                      tmp_path: Path) -> None:
    """The default budget is 3 attempts; the task asks for max_retries=10 and succeeds on attempt 5: the record
    says 5 of 11, not "5 of 3"."""
    marker = str(tmp_path / "keeps.marker")
    job = workers.app.send_task("celery_tasks.keeps_retrying", args=[marker, 5])
    burst(workers)
    done = workers.job(job.id)
    assert done.state == FINISHED and done.result == 5 and done.attempts == 5
    assert done.max_attempts == 11 and len(done.errors) == 4
    assert attempts_line(show(workers, job.id)) == (5, 11)
