"""The worker as users run it: real supervisor and executor processes, real signals, a real store."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from offload.jobs import FAILED, FINISHED, QUEUED, STARTED, Outcome
from tests import jobfuncs
from tests.worker.conftest import Workers, wait_until

ALL_ENGINES = ["sqlite", "redis", "postgresql"]


def ledger_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
        return "Z" not in state.split()[1]  # a zombie has already exited
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False


@pytest.mark.parametrize("workers", ALL_ENGINES, indirect=True)
def test_two_workers_run_every_job_exactly_once(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    n = 1000
    jobs = workers.app.enqueue_many([(jobfuncs.ledger, [str(ledger)]) for _ in range(n)])
    first = workers.start("--burst", "-n", "2")
    second = workers.start("--burst", "-n", "2")
    assert first.wait(120) == 0 and second.wait(120) == 0
    executions = Counter(line[0] for line in ledger_lines(ledger))
    assert set(executions) == {job.id for job in jobs}, "every job ran"
    assert max(executions.values()) == 1, "no job ran twice"
    assert workers.app.store.count(states=[FINISHED]) == n
    pids = {line[2] for line in ledger_lines(ledger)}
    assert len(pids) >= 2, "the work was shared between executors"


def test_burst_worker_exits_zero_on_empty_queues(workers: Workers) -> None:
    proc = workers.start("--burst")
    assert proc.wait(30) == 0
    assert "burst mode done" in workers.log(proc)


def test_lifecycle_is_logged_with_id_title_and_queue(workers: Workers) -> None:
    ok = workers.app.enqueue(jobfuncs.add, [1, 2], title="Add numbers", queue="maths")
    bad = workers.app.enqueue(jobfuncs.fail, ["kaput"], title="Break", queue="maths", max_attempts=1)
    proc = workers.start("maths", "--burst", "--log-level", "info")  # a burst run logs each job only when asked
    assert proc.wait(30) == 0
    log = workers.log(proc)
    assert 'started on queue(s) "maths"' in log
    assert f'Job {ok.id} ("Add numbers") on queue "maths" started' in log
    assert f'Job {ok.id} ("Add numbers") on queue "maths" finished in' in log
    assert f'ERROR [offload] Job {bad.id} ("Break") on queue "maths" failed: ValueError: kaput' in log
    assert "Traceback (most recent call last)" in log
    assert "stopped: 1 job(s) finished, 1 failed" in log
    assert workers.job(ok.id).result == 3


def test_queues_are_served_in_the_order_given(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    low = [workers.app.enqueue(jobfuncs.ledger, [str(ledger), "low"], queue="low") for _ in range(3)]
    high = [workers.app.enqueue(jobfuncs.ledger, [str(ledger), "high"], queue="high") for _ in range(3)]
    proc = workers.start("high", "low", "--burst")
    assert proc.wait(30) == 0
    order = [line[0] for line in ledger_lines(ledger)]
    assert order == [j.id for j in high] + [j.id for j in low]


def test_a_job_past_its_timeout_is_killed_and_the_worker_goes_on(workers: Workers) -> None:
    slow = workers.app.enqueue(jobfuncs.sleep, [30], timeout=1, max_attempts=1)
    after = workers.app.enqueue(jobfuncs.add, [2, 2])
    proc = workers.start()
    job = workers.wait_state(slow.id, FAILED, timeout=15)
    # time.sleep is interrupted by the soft timeout: the job stops at its limit (tests/worker/test_timeouts.py)
    assert job.error["reason"] == "timeout" and job.error["type"] == "offload.errors.JobTimeout"
    assert job.ended_at - job.started_at < 2.0
    assert workers.wait_state(after.id, FINISHED).result == 4
    assert proc.poll() is None


def test_a_timed_out_job_takes_its_grandchildren_with_it(workers: Workers, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    job = workers.app.enqueue(jobfuncs.spawn_grandchild, [str(pidfile), 30], timeout=1, max_attempts=1)
    workers.start()
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    grandchild = int(pidfile.read_text())
    assert pid_alive(grandchild)
    assert workers.wait_state(job.id, FAILED).error["reason"] == "timeout"
    wait_until(lambda: not pid_alive(grandchild), timeout=5)


def test_a_job_that_exits_its_process_fails_with_the_cause(workers: Workers) -> None:
    crash = workers.app.enqueue(jobfuncs.exit_hard, [3], max_attempts=1)
    killed = workers.app.enqueue(jobfuncs.kill_self, max_attempts=1)
    after = workers.app.enqueue(jobfuncs.add, [1, 1])
    proc = workers.start()
    assert "exited with code 3" in workers.wait_state(crash.id, FAILED).error["message"]
    error = workers.wait_state(killed.id, FAILED).error
    assert error["reason"] == "crash" and "SIGKILL" in error["message"]
    assert workers.wait_state(after.id, FINISHED).result == 2
    assert proc.poll() is None


def test_a_crashing_job_is_retried_within_its_attempts_then_fails(workers: Workers) -> None:
    crash = workers.app.enqueue(jobfuncs.exit_hard, [9], max_attempts=2, retry={"delay": 0, "jitter": False})
    workers.start()
    job = workers.wait_state(crash.id, FAILED)
    assert job.attempts == 2 and len(job.errors) == 2
    assert all(e["reason"] == "crash" for e in job.errors)


def test_system_exit_in_a_job_is_a_failure_not_a_worker_exit(workers: Workers) -> None:
    job = workers.app.enqueue(jobfuncs.raise_system_exit, max_attempts=1)
    after = workers.app.enqueue(jobfuncs.add, [1, 2])
    proc = workers.start()
    assert workers.wait_state(job.id, FAILED).error["type"] == "SystemExit"
    assert workers.wait_state(after.id, FINISHED).result == 3
    assert proc.poll() is None


@pytest.mark.parametrize("workers", ALL_ENGINES, indirect=True)
def test_sigkilled_worker_job_runs_again_elsewhere_and_late_settle_is_rejected(
    workers: Workers, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    job = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 1.5])
    first = workers.start("--lease", "2")
    wait_until(lambda: ledger_lines(ledger))
    stale = workers.job(job.id)
    assert stale.state == STARTED and stale.lease_token
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = workers.start("--lease", "2")
    done = workers.wait_state(job.id, FINISHED, timeout=30)
    assert done.attempts == 2 and done.worker != stale.worker
    assert done.errors and done.errors[0]["reason"] == "abandoned"
    starts = [line for line in ledger_lines(ledger) if line[3] == "start"]
    assert len(starts) == 2 and starts[0][2] != starts[1][2]
    late = Outcome(job.id, stale.lease_token, "finish", result_json='"late"', ended_at=time.time())
    assert workers.app.store.settle([late], time.time()) == [False]
    assert workers.job(job.id).result == "slept"
    assert second.poll() is None


def test_warm_shutdown_lets_the_running_job_finish(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    job = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 1.0])
    waiting = workers.app.enqueue(jobfuncs.add, [1, 1])
    proc = workers.start()
    wait_until(lambda: ledger_lines(ledger))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert workers.job(job.id).state == FINISHED
    assert workers.job(waiting.id).state == QUEUED, "no new job is taken during a warm shutdown"
    assert "warm shutdown" in workers.log(proc)


def test_second_signal_stops_now_and_requeues_the_job(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    job = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 30])
    proc = workers.start()
    wait_until(lambda: ledger_lines(ledger))
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "warm shutdown" in workers.log(proc))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    requeued = workers.job(job.id)
    assert requeued.state == QUEUED and requeued.attempts == 0
    assert workers.app.store.count(states=[STARTED]) == 0


def test_grace_period_over_requeues_the_job(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    job = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 30])
    proc = workers.start("--grace", "0.5")
    wait_until(lambda: ledger_lines(ledger))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert workers.job(job.id).state == QUEUED
    assert "Grace period" in workers.log(proc)


def test_progress_reaches_the_store(workers: Workers) -> None:
    job = workers.app.enqueue(jobfuncs.progress, [5])
    workers.start("--burst").wait(30)
    done = workers.job(job.id)
    assert done.state == FINISHED and done.progress == {"done": 5, "total": 5, "message": "steps"}


def test_unimportable_function_fails_the_job_not_the_worker(workers: Workers) -> None:
    job = workers.app.enqueue("tests.jobfuncs:does_not_exist")
    after = workers.app.enqueue(jobfuncs.add, [5, 5])
    proc = workers.start("--burst")
    assert proc.wait(30) == 0
    failed = workers.job(job.id)
    assert failed.state == FAILED and failed.attempts == 1, "not retried: it would fail the same way"
    assert "has no attribute 'does_not_exist'" in failed.error["message"]
    assert workers.job(after.id).result == 10


def test_retry_with_backoff_then_success(workers: Workers, tmp_path: Path) -> None:
    job = workers.app.enqueue(jobfuncs.fail, ["flaky"], max_attempts=3,
                              retry={"backoff": "fixed", "delay": 0.2, "jitter": False})
    workers.start()
    failed = workers.wait_state(job.id, FAILED)
    assert failed.attempts == 3 and [e["attempt"] for e in failed.errors] == [1, 2, 3]
    gaps = [b["at"] - a["at"] for a, b in zip(failed.errors, failed.errors[1:], strict=False)]
    assert all(g >= 0.2 for g in gaps)


def test_executors_are_recycled_after_max_jobs(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    workers.app.enqueue_many([(jobfuncs.ledger, [str(ledger)]) for _ in range(9)])
    proc = workers.start("--burst", "--max-jobs-per-child", "3")
    assert proc.wait(60) == 0
    pids = Counter(line[2] for line in ledger_lines(ledger))
    assert len(pids) == 3 and set(pids.values()) == {3}


def test_supervisor_death_takes_the_executors_with_it(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 60])
    proc = workers.start()
    wait_until(lambda: ledger_lines(ledger))
    child_pid = int(ledger_lines(ledger)[0][2])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: not pid_alive(child_pid), timeout=5)
    assert os.getpid() != child_pid


def test_a_single_threaded_executor_runs_jobs_in_its_main_thread(workers: Workers) -> None:
    # Regression: a job must be able to install a signal handler (Python allows that in the main thread only),
    # as it could in a script; jobs once ran in a second thread of the executor.
    job = workers.app.enqueue(jobfuncs.set_signal_handler)
    proc = workers.start("--burst")
    assert proc.wait(30) == 0
    done = workers.job(job.id)
    assert done.state == FINISHED, done.error
    assert done.result == "MainThread"


def test_large_arguments_and_results_in_flight_both_ways_do_not_stall_the_worker(workers: Workers) -> None:
    # Each message is larger than a socket's buffer and several are prefetched: the supervisor must never
    # block writing to an executor that is itself blocked writing its results back.
    size = 2 * 1024 * 1024
    jobs = workers.app.enqueue_many([(jobfuncs.big, ["x" * size, size]) for _ in range(12)])
    proc = workers.start("--burst", "-n", "2")
    assert proc.wait(120) == 0
    for job in jobs:
        done = workers.job(job.id)
        assert done.state == FINISHED, done.error
        assert len(done.result) == size


def test_a_worker_whose_executor_count_comes_from_the_configuration_starts_them_all(
        workers: Workers, tmp_path: Path) -> None:
    # The command starts as many executors as its command line says (1 here) before it reads the
    # configuration, which asks for 2: the worker starts the second once it knows.
    ledger = tmp_path / "ledger.txt"
    workers.app.enqueue_many([(jobfuncs.ledger_then_sleep, [str(ledger), 0.2]) for _ in range(4)])
    config = tmp_path / "offload.ini"
    config.write_text("[offload]\noffload.worker.concurrency = 2\n")
    proc = workers.start("--burst", config=config)
    assert proc.wait(60) == 0
    assert len({line[2] for line in ledger_lines(ledger)}) == 2, "both executors ran jobs"


def test_a_result_discarded_by_fencing_is_not_counted_in_the_stop_line(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    job = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 2.0])
    proc = workers.start("--lease", "1")
    wait_until(lambda: ledger_lines(ledger))
    proc.send_signal(signal.SIGSTOP)  # the supervisor only: its executor runs on, in its own session
    try:
        wait_until(lambda: workers.app.store.requeue_expired(time.time()), timeout=10, what="the lease expired")
        workers.app.cancel(job.id)  # so that nobody runs it again
        wait_until(lambda: len(ledger_lines(ledger)) == 2, what="the job ran to its end")
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_until(lambda: f"Result of job {job.id} discarded" in workers.log(proc))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "stopped: 0 job(s) finished, 0 failed, 1 result(s) discarded (lease lost)" in workers.log(proc)
    assert workers.job(job.id).state == "canceled"
