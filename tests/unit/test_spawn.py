"""``spawn.Forked``: the part of ``subprocess.Popen`` the pool uses, for an executor forked from the launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from offload.worker.spawn import Forked


def _fork(then: str) -> Forked:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        if then == "exit 3":
            os._exit(3)
        time.sleep(60)
        os._exit(0)
    return Forked(pid)


def test_wait_reports_the_exit_code() -> None:
    child = _fork("exit 3")
    assert child.wait() == 3
    assert child.poll() == 3 and child.returncode == 3


def test_wait_with_a_timeout_raises_as_popen_does_then_kill_ends_it() -> None:
    child = _fork("sleep")
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.05)
    child.kill()
    assert child.wait(timeout=5) == -signal.SIGKILL
    child.kill()  # a second kill of a reaped child is a no-op, not an error about someone else's PID
