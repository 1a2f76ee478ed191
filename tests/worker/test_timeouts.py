"""Soft then hard timeouts, on real workers: at its limit a job gets ``JobTimeout`` raised in it and may clean up;
a job still running ``offload.jobs.timeout_grace`` seconds later is killed with its process group."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from offload import JobTimeout, Offload
from offload.context import timeout_exception, use_timeout_exception
from offload.jobs import FAILED, FINISHED, Job
from offload.worker.runner import JobRunner, outcome_for
from tests.worker import timeout_jobs
from tests.worker.conftest import Workers, wait_until
from tests.worker.test_worker import pid_alive

GRACE = 1.0
LIMIT = 1.0


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_JOBS_TIMEOUT_GRACE", str(GRACE))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def pids(pidfile: Path) -> list[int]:
    return [int(p) for p in lines(pidfile)]


def ran_for(job: Job) -> float:
    assert job.started_at is not None and job.ended_at is not None
    return job.ended_at - job.started_at


def test_a_finally_block_runs_when_the_job_reaches_its_limit(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    job = workers.app.enqueue(timeout_jobs.cleanup_in_finally, [str(notes), 30], timeout=LIMIT, max_attempts=1)
    after = workers.app.enqueue(timeout_jobs.record_attempt, [str(tmp_path / "after"), 0])
    proc = workers.start()
    done = workers.wait_state(job.id, FAILED)
    assert lines(notes) == ["started", "cleaned up"]
    assert done.error["reason"] == "timeout" and done.error["timeout"] == "soft"
    assert done.error["type"] == "offload.errors.JobTimeout"
    assert done.error["message"] == ("the job ran longer than its timeout of 1 s: JobTimeout was raised in it and "
                                     "it stopped (soft timeout)")
    assert "the job reached its time limit of 1 s" in done.error["traceback"]
    assert LIMIT <= ran_for(done) < LIMIT + GRACE, "stopped at the limit, not killed after the grace"
    assert workers.wait_state(after.id, FINISHED).result == "done"
    assert proc.poll() is None
    assert f"is replaced after job {job.id} stopped at its time limit" in workers.log(proc)


def test_libc_sleep_is_interrupted_by_the_soft_timeout(workers: Workers, tmp_path: Path) -> None:
    # A signal interrupts sleep(3) even when called through ctypes: the exception reaches the job at the limit.
    notes = tmp_path / "notes"
    job = workers.app.enqueue(timeout_jobs.libc_sleep_with_finally, [str(notes), 30], timeout=LIMIT, max_attempts=1)
    workers.start()
    done = workers.wait_state(job.id, FAILED)
    assert lines(notes) == ["started", "cleaned up"]
    assert done.error["timeout"] == "soft" and ran_for(done) < LIMIT + GRACE


def test_a_job_that_catches_the_exception_and_returns_has_finished(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    job = workers.app.enqueue(timeout_jobs.catch_timeout_and_return, [str(notes), 30], timeout=LIMIT)
    workers.start()
    done = workers.wait_state(job.id, FINISHED)
    assert done.result == "stopped early, cleaned up"
    assert lines(notes) == ["caught JobTimeout: the job reached its time limit of 1 s"]


@pytest.mark.parametrize("fn", [timeout_jobs.ignore_timeout, timeout_jobs.block_alarm_and_sleep_in_c])
def test_a_job_that_does_not_stop_is_killed_at_limit_plus_grace_with_its_grandchildren(
        workers: Workers, tmp_path: Path, fn: object) -> None:
    notes, pidfile = tmp_path / "notes", tmp_path / "pids"
    job = workers.app.enqueue(fn, [str(notes), str(pidfile), 60], timeout=LIMIT, max_attempts=1)
    after = workers.app.enqueue(timeout_jobs.record_attempt, [str(tmp_path / "after"), 0])
    proc = workers.start()
    wait_until(lambda: pids(pidfile))
    grandchild = pids(pidfile)[0]
    done = workers.wait_state(job.id, FAILED, timeout=30)
    assert done.error["reason"] == "timeout" and done.error["timeout"] == "hard"
    assert done.error["message"] == ("the job ran longer than its timeout of 1 s and was still running 1 s after "
                                     "JobTimeout was raised in it; its process group was killed")
    assert LIMIT + GRACE <= ran_for(done) < LIMIT + GRACE + 2.0
    wait_until(lambda: not pid_alive(grandchild), timeout=5, what="the grandchild gone")
    if fn is timeout_jobs.ignore_timeout:
        assert "ignored JobTimeout" in lines(notes)
    assert workers.wait_state(after.id, FINISHED).result == "done"
    assert proc.poll() is None


def test_grace_zero_kills_at_the_limit_without_an_exception(workers: Workers, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_JOBS_TIMEOUT_GRACE", "0")
    notes = tmp_path / "notes"
    job = workers.app.enqueue(timeout_jobs.cleanup_in_finally, [str(notes), 30], timeout=LIMIT, max_attempts=1)
    workers.start()
    done = workers.wait_state(job.id, FAILED)
    assert lines(notes) == ["started"], "no exception: killed at the limit"
    assert done.error["timeout"] == "hard" and "ran longer than its timeout of 1 s" in done.error["message"]


def test_under_threads_the_job_thread_gets_the_exception(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    job = workers.app.enqueue(timeout_jobs.cleanup_in_finally_busy, [str(notes), 30], timeout=LIMIT, max_attempts=1)
    workers.start("--threads", "2")
    done = workers.wait_state(job.id, FAILED)
    assert lines(notes) == ["started", "cleaned up"]
    assert done.error["timeout"] == "soft" and done.error["type"] == "offload.errors.JobTimeout"
    assert ran_for(done) < LIMIT + GRACE


def test_under_threads_a_thread_blocked_in_c_is_killed_at_limit_plus_grace(workers: Workers, tmp_path: Path) -> None:
    # The asynchronous exception waits for the thread to run Python code again: libc sleep never lets it.
    job = workers.app.enqueue(timeout_jobs.sleep_in_c, [str(tmp_path / "notes"), 60], timeout=LIMIT, max_attempts=1)
    workers.start("--threads", "2")
    done = workers.wait_state(job.id, FAILED, timeout=30)
    assert done.error["timeout"] == "hard"
    assert LIMIT + GRACE <= ran_for(done) < LIMIT + GRACE + 2.0


@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_integration_chooses_the_exception_class(workers: Workers, tmp_path: Path, threads: str) -> None:
    notes = tmp_path / "notes"
    job = workers.app.enqueue(timeout_jobs.report_exception_class, [str(notes), 30], timeout=LIMIT, max_attempts=1)
    workers.start("--import", "tests.worker.custom_timeout", "--threads", threads)
    done = workers.wait_state(job.id, FAILED)
    assert lines(notes) == ["tests.worker.timeout_jobs.CustomTimeout|True|the job reached its time limit of 1 s"]
    assert done.error["type"] == "tests.worker.timeout_jobs.CustomTimeout"


def test_use_timeout_exception_takes_only_subclasses_of_job_timeout() -> None:
    with pytest.raises(TypeError, match=r"needs a subclass of offload\.JobTimeout"):
        use_timeout_exception(TimeoutError)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        use_timeout_exception("JobTimeout")  # type: ignore[arg-type]
    assert timeout_exception() is JobTimeout


# -- JobRunner: the interface the CKAN worker builds on --------------------------------------------------------------
def _record(fn: str, args: list[object], timeout: float) -> Job:
    from offload import codec

    return Job(id=f"runner-{time.monotonic_ns()}", queue="q", func=fn, payload=codec.encode_payload(args, {}),
               attempts=1, max_attempts=1, timeout=timeout)


def test_job_runner_soft_timeout_runs_finally_and_leaves_the_runner_dead(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    runner = JobRunner(timeout_grace=GRACE)
    record = _record("tests.worker.timeout_jobs:cleanup_in_finally", [str(notes), 30], LIMIT)
    report = runner.run(record, LIMIT)
    assert report["ok"] is False and report["error"]["reason"] == "timeout" and report["error"]["timeout"] == "soft"
    assert lines(notes) == ["started", "cleaned up"]
    assert not runner.alive, "what a timed-out job left behind goes with its process"
    outcome = outcome_for(record, report, time.time())
    assert outcome.kind == "fail" and outcome.error is not None and outcome.error["reason"] == "timeout"


def test_job_runner_kills_at_limit_plus_grace(tmp_path: Path) -> None:
    notes, pidfile = tmp_path / "notes", tmp_path / "pids"
    runner = JobRunner(timeout_grace=GRACE)
    record = _record("tests.worker.timeout_jobs:ignore_timeout", [str(notes), str(pidfile), 60], LIMIT)
    started = time.monotonic()
    report = runner.run(record, LIMIT)
    elapsed = time.monotonic() - started
    assert report["killed"] == "timeout" and LIMIT + GRACE <= elapsed < LIMIT + GRACE + 2.0
    assert "ran longer than its timeout of 1 s and was still running 1 s after JobTimeout" in report["message"]
    wait_until(lambda: not pid_alive(pids(pidfile)[0]), timeout=5, what="the grandchild gone")
    outcome = outcome_for(record, report, time.time())
    assert outcome.error is not None and outcome.error["timeout"] == "hard"
    assert outcome.error["message"].startswith("the job ran longer than its timeout of 1 s and was still running")


def test_job_runner_refuses_a_negative_grace() -> None:
    with pytest.raises(ValueError, match="timeout_grace must be >= 0"):
        JobRunner(timeout_grace=-1)


def test_the_grace_setting_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offload.errors import ConfigError

    monkeypatch.delenv("OFFLOAD_JOBS_TIMEOUT_GRACE")
    with pytest.raises(ConfigError, match=r"offload\.jobs\.timeout_grace must be >= 0"):
        Offload(store=f"sqlite:///{tmp_path}/x.db", jobs__timeout_grace="-1")
    assert Offload(store=f"sqlite:///{tmp_path}/x.db").config["offload.jobs.timeout_grace"] == 5.0
