"""Threaded executors (``--threads``): jobs running beside one that crashed, timed out or was canceled lose no
attempt, the log says what happened to them, and a poison job is still found and failed after its attempts."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from offload.jobs import CANCELED, FAILED, FINISHED, STARTED
from tests.worker import timeout_jobs
from tests.worker.conftest import Workers, wait_until

NO_DELAY = {"delay": 0, "jitter": False}


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_JOBS_TIMEOUT_GRACE", "1")


def runs(path: Path) -> dict[str, list[tuple[int, str]]]:
    """job id -> [(attempt, "start" | "end"), ...] as the job bodies noted them."""
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line in path.read_text().splitlines() if path.exists() else []:
        job_id, attempt, what = line.split()
        found[job_id].append((int(attempt), what))
    return found


def test_siblings_of_a_crash_run_again_alone_without_losing_an_attempt(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    # One attempt each: before, the crash charged an ExecutorDied attempt to both, and they failed for good.
    siblings = [workers.app.enqueue(timeout_jobs.record_attempt, [str(notes), 1.5], max_attempts=1,
                                    title=f"sibling {i}") for i in range(2)]
    poison = workers.app.enqueue(timeout_jobs.crash_after, [0.5], max_attempts=2, retry=NO_DELAY, title="poison")
    proc = workers.start("-n", "1", "--threads", "3")
    wait_until(lambda: all(workers.job(j.id).state in (FINISHED, FAILED) for j in [*siblings, poison]), 60)
    for sibling in siblings:
        done = workers.job(sibling.id)
        assert done.state == FINISHED and done.attempts == 1 and done.errors == []
        assert runs(notes)[sibling.id] == [(1, "start"), (1, "start"), (1, "end")], "ran again, same attempt"
    failed = workers.job(poison.id)
    assert failed.state == FAILED and failed.attempts == 2
    assert [e["reason"] for e in failed.errors] == ["crash", "crash"]
    assert "exited with code 3" in failed.error["message"]
    log = workers.log(proc)
    for sibling in siblings:
        assert (f'Job {sibling.id} ("sibling {sibling.title[-1]}") on queue "default" was running beside 2 other '
                "job(s) in executor 0 when it exited with code 3; which job caused it is not known: it runs again "
                "alone, its attempt not counted") in log
    assert proc.poll() is None


def test_a_poison_job_among_many_siblings_is_failed_after_its_attempts(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    siblings = [workers.app.enqueue(timeout_jobs.record_attempt, [str(notes), 0.4], max_attempts=1)
                for _ in range(8)]
    poison = workers.app.enqueue(timeout_jobs.crash_after, [0.1], max_attempts=3, retry=NO_DELAY)
    siblings += [workers.app.enqueue(timeout_jobs.record_attempt, [str(notes), 0.4], max_attempts=1)
                 for _ in range(8)]
    workers.start("-n", "2", "--threads", "4")
    wait_until(lambda: all(workers.job(j.id).state in (FINISHED, FAILED) for j in [*siblings, poison]), 90)
    assert all(workers.job(j.id).state == FINISHED for j in siblings)
    failed = workers.job(poison.id)
    assert failed.state == FAILED and failed.attempts == 3
    assert all(e["reason"] == "crash" for e in failed.errors)


def test_siblings_of_a_timeout_are_put_back_without_losing_an_attempt(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    # Blocked in C: the soft timeout cannot reach its thread, so the executor is killed at limit + grace.
    stuck = workers.app.enqueue(timeout_jobs.sleep_in_c, [str(tmp_path / "stuck"), 60], timeout=1, max_attempts=1,
                                title="stuck")
    siblings = [workers.app.enqueue(timeout_jobs.record_attempt, [str(notes), 4], max_attempts=1, title="sibling")
                for _ in range(2)]
    proc = workers.start("-n", "1", "--threads", "3")
    done = workers.wait_state(stuck.id, FAILED, timeout=30)
    assert done.error["timeout"] == "hard"
    for sibling in siblings:
        finished = workers.wait_state(sibling.id, FINISHED, timeout=30)
        assert finished.attempts == 1 and finished.errors == []
        assert runs(notes)[sibling.id][:2] == [(1, "start"), (1, "start")]
    log = workers.log(proc)
    for sibling in siblings:
        assert (f'Job {sibling.id} ("sibling") on queue "default" was stopped (its executor was killed for the '
                f"timeout of job {stuck.id}); back on its queue, its attempt not counted") in log


def test_siblings_of_a_canceled_job_are_put_back(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    victim = workers.app.enqueue(timeout_jobs.sleep_in_c, [str(tmp_path / "victim"), 60], title="victim")
    siblings = [workers.app.enqueue(timeout_jobs.record_attempt, [str(notes), 3], max_attempts=1, title="sibling")
                for _ in range(2)]
    proc = workers.start("-n", "1", "--threads", "3")
    wait_until(lambda: len(runs(notes)) == 2 and workers.job(victim.id).state == STARTED)
    workers.app.cancel(victim.id)
    for sibling in siblings:
        finished = workers.wait_state(sibling.id, FINISHED, timeout=30)
        assert finished.attempts == 1 and finished.errors == []
    assert workers.job(victim.id).state == CANCELED
    assert f"its executor was stopped to cancel job {victim.id}" in workers.log(proc)


def test_a_threaded_worker_stopped_while_suspects_wait_gives_them_back(workers: Workers, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    siblings = [workers.app.enqueue(timeout_jobs.record_attempt, [str(notes), 5], max_attempts=1)
                for _ in range(2)]
    workers.app.enqueue(timeout_jobs.crash_after, [0.5], max_attempts=1)
    proc = workers.start("-n", "1", "--threads", "3")
    wait_until(lambda: "runs again alone" in workers.log(proc), 30)
    proc.send_signal(__import__("signal").SIGTERM)
    assert proc.wait(30) == 0
    # The one running alone finished in the grace period; the other went back to its queue, attempt not counted.
    states = sorted((workers.job(j.id).state, workers.job(j.id).attempts) for j in siblings)
    assert states in ([("finished", 1), ("queued", 0)], [("queued", 0), ("queued", 0)]), states
    assert os.path.exists(notes)
