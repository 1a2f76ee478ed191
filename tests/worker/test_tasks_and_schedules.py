"""Named tasks, retries, periodic jobs, cancellation of running jobs (issue: tasks and scheduling)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import offload
from offload import Offload, schedule
from offload.errors import TaskNotFound
from offload.jobs import CANCELED, FAILED, FINISHED
from offload.schedule import Scheduler
from tests import jobfuncs
from tests.taskmods import echo_tasks  # noqa: F401 - registers the tasks send_task needs
from tests.worker.conftest import ROOT, Workers, wait_until
from tests.worker.test_worker import ledger_lines


def test_send_task_by_name_runs_in_a_worker_that_imports_it(workers: Workers) -> None:
    job = workers.app.send_task("tests.echo", args=[1, "a"], kwargs={"k": True}, task_id="echo-1")
    assert job.id == "echo-1" and job.queue == "named" and job.task == "tests.echo" and job.func is None
    plain = workers.app.enqueue(jobfuncs.add, [1, 1], queue="named")
    proc = workers.start("named", "--burst", "--import", "tests.taskmods.echo_tasks")
    assert proc.wait(30) == 0
    assert workers.job("echo-1").result == {"args": [1, "a"], "kwargs": {"k": True}}
    assert workers.job(plain.id).result == 2, "both styles on one queue"


def test_send_task_with_countdown_and_eta(workers: Workers) -> None:
    later = workers.app.send_task("tests.echo", countdown=60)
    assert later.state == "scheduled" and later.run_at >= later.created_at + 59
    eta = workers.app.send_task("tests.echo", eta=time.time() + 120)
    assert eta.state == "scheduled"


def test_unknown_task_name_fails_at_send_and_in_the_worker(workers: Workers) -> None:
    with pytest.raises(TaskNotFound, match=r"no task named 'tests\.nope'"):
        workers.app.send_task("tests.nope")
    assert workers.app.store.count() == 0
    job = workers.app.build_job(None, task="tests.nope")
    workers.app.store.enqueue(job, time.time())
    after = workers.app.enqueue(jobfuncs.add, [1, 2])
    proc = workers.start("--burst")
    assert proc.wait(30) == 0
    failed = workers.job(job.id)
    assert failed.state == FAILED and failed.error["type"] == "offload.errors.TaskNotFound"
    assert failed.attempts == 1
    assert workers.job(after.id).state == FINISHED


def test_task_retry_inside_the_job(workers: Workers, tmp_path: Path) -> None:
    job = workers.app.send_task("tests.flaky", args=[str(tmp_path / "marker")])
    proc = workers.start("--import", "tests.taskmods.echo_tasks")
    done = workers.wait_state(job.id, FINISHED)
    assert done.result == "ok after retry" and done.attempts == 2
    assert done.errors[0]["type"] == "OSError" and done.errors[0]["reason"] == "retry"
    assert done.started_at - done.errors[0]["at"] >= 0.2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_exceptions_marked_non_retryable_fail_at_once(workers: Workers) -> None:
    job = workers.app.send_task("tests.invalid", max_attempts=5)
    workers.start("--burst", "--import", "tests.taskmods.echo_tasks").wait(30)
    failed = workers.job(job.id)
    assert failed.state == FAILED and failed.attempts == 1 and failed.error["retryable"] is False


def test_retry_exception_from_a_plain_function(workers: Workers) -> None:
    job = workers.app.enqueue("tests.worker.test_tasks_and_schedules:retry_once", max_attempts=2)
    workers.start()
    done = workers.wait_state(job.id, FAILED)
    assert done.attempts == 2 and done.errors[0]["reason"] == "retry"


def retry_once() -> None:
    raise offload.Retry(countdown=0.1)


def test_tasks_command_lists_tasks_and_their_origin(workers: Workers, tmp_path: Path) -> None:
    dist = tmp_path / "site" / "offload_test_ext-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: offload-test-ext\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[offload.tasks]\ntestext = tests.taskmods.echo_tasks:entry_point_modules\n")
    env = workers.env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env["PYTHONPATH"]])
    out = subprocess.run([sys.executable, "-m", "offload", "--store", workers.url, "tasks", "--import",
                          "tests.taskmods.echo_tasks"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "tests.echo  ->  tests.taskmods.echo_tasks:echo" in out.stdout and "queue=named" in out.stdout
    assert "tests.from_entry_point" in out.stdout and "entry point testext" in out.stdout
    job = workers.app.build_job(None, ["ep"], task="tests.from_entry_point")
    workers.app.store.enqueue(job, time.time())
    proc = subprocess.Popen([sys.executable, "-m", "offload", "--store", workers.url, "--site-id", workers.site,
                             "worker", "--burst"], env=env, cwd=ROOT)
    assert proc.wait(30) == 0
    assert workers.job(job.id).result == "hello ep"


def test_cancel_a_running_job_from_the_cli_stops_it_within_a_second(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    job = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 60])
    after = workers.app.enqueue(jobfuncs.add, [3, 4])
    workers.start()
    wait_until(lambda: ledger_lines(ledger))
    child_pid = int(ledger_lines(ledger)[0][2])
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "offload", "--store", workers.url, "--site-id", workers.site,
                          "cancel", job.id], env=workers.env(), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == f"Cancelled job {job.id}\n"
    from tests.worker.test_worker import pid_alive

    wait_until(lambda: not pid_alive(child_pid), timeout=5, interval=0.01)
    assert time.monotonic() - started < 1.5  # the CLI's own start-up included
    assert workers.job(job.id).state == CANCELED
    assert workers.wait_state(after.id, FINISHED).result == 7


# -- periodic jobs ---------------------------------------------------------------------------------------------
def test_interval_and_cron_slots() -> None:
    every = schedule.Schedule("s", every=15 * 60, func="tests.jobfuncs:noop")
    now = 1_800_000_123.0
    assert every.latest_slot(now) % 900 == 0 and every.latest_slot(now) <= now < every.next_slot(now)
    cron = schedule.Schedule("c", cron="0 3 * * *", func="tests.jobfuncs:noop", timezone="Europe/Berlin")
    slot = cron.latest_slot(now)
    import datetime as dt
    from zoneinfo import ZoneInfo

    local = dt.datetime.fromtimestamp(slot, ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 0) and slot <= now < cron.next_slot(now)
    assert cron.latest_slot(cron.next_slot(now)) == cron.next_slot(now), "a slot exactly now is due"
    for bad in [dict(cron="61 * * * *"), dict(every=0.5), dict(cron="* * * * *", every=5), dict()]:
        with pytest.raises(ValueError):
            schedule.Schedule("bad", func="tests.jobfuncs:noop", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time zone"):
        schedule.Schedule("tz", cron="* * * * *", func="tests.jobfuncs:noop", timezone="Mars/Olympus")


def test_missed_slots_run_once_and_new_schedules_wait_for_their_slot() -> None:
    app = Offload(store="memory://", site_id="sched")
    every = schedule.Schedule("every-minute", every=60, func="tests.jobfuncs:noop")
    nightly = schedule.Schedule("nightly", cron="0 3 * * *", func="tests.jobfuncs:noop")
    now = 1_800_000_030.0
    # The store last ran "every-minute" a day ago: 1,440 slots were missed while everything was down.
    app.store.enqueue_periodic("every-minute", now - 86400, app.build_job("tests.jobfuncs:noop"), now - 86400)
    app.store.clear()
    scheduler = Scheduler(app, {"every-minute": every, "nightly": nightly})
    next_tick = scheduler.tick(now)
    assert app.store.count() == 1, "one catch-up run, not one per missed slot; nightly waits for 03:00"
    assert app.store.list()[0].meta["schedule"] == "every-minute"
    assert next_tick == every.next_slot(now)
    scheduler.tick(now + 10)
    assert app.store.count() == 1
    scheduler.tick(next_tick)
    assert app.store.count() == 2


def test_several_schedulers_enqueue_each_slot_once(workers: Workers, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ini = tmp_path / "offload.ini"
    ini.write_text(
        "[offload]\n"
        "[offload.schedule.tick]\nevery = 1\nfunc = tests.jobfuncs:ledger\n"
        f'args = ["{ledger}", "tick"]\n'
    )
    env = workers.env()
    procs = [
        subprocess.Popen([sys.executable, "-m", "offload", "-c", str(ini), "--store", workers.url, "--site-id",
                          workers.site, "worker"], env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
        for _ in range(3)
    ]
    try:
        wait_until(lambda: len(workers.app.list_jobs(states=[FINISHED], limit=1000)) >= 4, timeout=30)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    jobs = workers.app.list_jobs(states=None, limit=1000)
    slots = Counter(job.meta["slot"] for job in jobs)
    assert len(jobs) >= 4 and set(slots.values()) == {1}, slots
    ordered = sorted(slots)
    assert all(b - a == 1.0 for a, b in itertools.pairwise(ordered)), "consecutive slots, none skipped"
    runs = workers.app.store.schedule_runs()
    assert runs["tick"].last_slot == ordered[-1]
    out = subprocess.run([sys.executable, "-m", "offload", "-c", str(ini), "--store", workers.url, "--site-id",
                          workers.site, "schedules"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("tick  every 1 s  -> tests.jobfuncs:ledger")


def test_a_disabled_schedule_enqueues_nothing_and_catches_nothing_up_when_enabled() -> None:
    app = Offload(store="memory://", site_id="sched-off")
    every = schedule.Schedule("every-minute", every=60, func="tests.jobfuncs:noop")
    scheduler = Scheduler(app, {"every-minute": every})
    now = time.time() // 60 * 60 + 1  # just after a slot
    scheduler.tick(now)
    assert app.store.count() == 1
    schedule.disable(app, "every-minute", "a test")
    assert schedule.disabled(app) == {"every-minute"}
    scheduler.tick(now + 60)
    assert app.store.count() == 1, "disabled: its slot is skipped"
    assert schedule.enable(app, "every-minute", now=now + 90) and not schedule.enable(app, "every-minute")
    scheduler.tick(now + 100)
    assert app.store.count() == 1, "the slot missed while disabled is not caught up"
    scheduler.tick(now + 120)
    assert app.store.count() == 2, "runs again from its next slot"
    with pytest.raises(ValueError, match="invalid schedule name"):
        schedule.disable(app, "no spaces")
