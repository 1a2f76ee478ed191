"""How a worker's executors start: the first ones forked by the ``offload`` command before it loads anything
else, later ones (replacements for a crashed, timed-out or recycled executor) spawned as fresh interpreters.
Both must look and end the same to a job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offload.jobs import FAILED, FINISHED
from tests import jobfuncs
from tests.worker.conftest import Workers


@pytest.mark.parametrize("workers", ["sqlite", "redis"], indirect=True)
def test_the_first_executor_is_forked_and_its_replacement_spawned(workers: Workers) -> None:
    first = workers.app.enqueue(jobfuncs.process_facts)
    second = workers.app.enqueue(jobfuncs.process_facts)
    proc = workers.start("--burst", "--max-jobs-per-child", "1")
    assert proc.wait(60) == 0, workers.log(proc)
    forked, spawned = (workers.job(job.id) for job in (first, second))
    assert forked.state == spawned.state == FINISHED, (forked.error, spawned.error)
    a, b = forked.result, spawned.result
    assert a["pid"] != b["pid"]
    # Forked: the worker's own command line; spawned: the executor module, told its supervisor's PID.
    assert "worker" in a["cmdline"] and "offload.worker.executor" not in a["cmdline"]
    assert "offload.worker.executor" in b["cmdline"]
    assert b["cmdline"][b["cmdline"].index("--parent") + 1] == str(proc.pid)
    for facts in (a, b):
        assert facts["ppid"] == proc.pid
        assert facts["sid"] == facts["pid"], "each executor leads its own session (its job's group is killable)"
        assert facts["stdin"] == "/dev/null"
        # The store's driver (redis-py, hiredis) loads in the supervisor only, after the first executors forked.
        assert facts["drivers"] == [], facts["drivers"]


def test_a_forked_executor_ends_as_an_interpreter_does(workers: Workers, tmp_path: Path) -> None:
    # It leaves through SystemExit, not os._exit: a job's atexit handlers run when the worker stops.
    written = tmp_path / "atexit.txt"
    job = workers.app.enqueue(jobfuncs.at_exit_write, [str(written)])
    proc = workers.start("--burst")
    assert proc.wait(60) == 0, workers.log(proc)
    done = workers.job(job.id)
    assert done.state == FINISHED, done.error
    assert written.read_text() == str(done.result)


def _can_be_pid_1() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_be_pid_1(), reason="needs root and unshare to run a worker as PID 1")
def test_a_worker_that_is_pid_1_keeps_its_executors(workers: Workers) -> None:
    # Regression: an executor took a parent of PID 1 to mean its supervisor had died before it started, and
    # left at once; in a container the supervisor is often PID 1, and no job ever ran.
    before = workers.app.enqueue(jobfuncs.process_facts)
    crash = workers.app.enqueue(jobfuncs.exit_hard, [3], max_attempts=1)
    after = workers.app.enqueue(jobfuncs.process_facts)
    run = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "offload", "--store", workers.url,
         "--site-id", workers.site, "worker", "--burst"],
        env=workers.env(), capture_output=True, text=True, timeout=30, cwd=workers.tmp,
    )
    assert run.returncode == 0, run.stderr
    assert "(PID 1) started" in run.stderr
    assert workers.job(crash.id).state == FAILED
    forked, spawned = workers.job(before.id), workers.job(after.id)
    assert forked.state == spawned.state == FINISHED, (forked.error, spawned.error, run.stderr)
    assert forked.result["ppid"] == spawned.result["ppid"] == 1
    assert "offload.worker.executor" in spawned.result["cmdline"]
