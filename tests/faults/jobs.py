"""Job bodies of the fault battery: each writes its execution to the ledger (tests/faults/ledger.py) first.

The ledger path is always the first argument. Poison and timeout bodies record their start before they
misbehave, so the ledger shows how many times each one actually ran.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from offload import current_job
from tests.faults import ledger as _ledger


def _start(path: str, tag: str = "") -> int:
    job = current_job()
    if job is None:
        raise RuntimeError("fault battery jobs run in a worker")
    return _ledger.start(path, job.id, job.attempt, tag)


def record(path: str, seconds: float = 0.0, tag: str = "") -> int:
    """The healthy job: record the start, work ``seconds`` (sleeping), record the end; returns the pid."""
    row = _start(path, tag)
    if seconds:
        time.sleep(seconds)
    _ledger.end(path, row)
    return os.getpid()


# -- poison: each ends its own process or raises what a job should never raise -----------------------------
class PoisonError(BaseException):
    """A BaseException subclass that is neither Exception, SystemExit nor KeyboardInterrupt."""


def exit_hard(path: str) -> None:
    _start(path, "poison")
    os._exit(3)


def kill_self(path: str) -> None:
    _start(path, "poison")
    os.kill(os.getpid(), signal.SIGKILL)


def segfault(path: str) -> None:
    _start(path, "poison")
    ctypes.string_at(0)


def system_exit(path: str) -> None:
    _start(path, "poison")
    raise SystemExit(5)


def keyboard_interrupt(path: str) -> None:
    _start(path, "poison")
    raise KeyboardInterrupt


def base_exception(path: str) -> None:
    _start(path, "poison")
    raise PoisonError("a BaseException subclass escaped the job")


def memory_blowup(path: str, chunk_mib: int = 64) -> None:
    """Allocate until the address-space rlimit the worker runs under says no (MemoryError)."""
    _start(path, "poison")
    hoard = []
    while True:
        hoard.append(bytearray(chunk_mib * 1048576))


# -- timeouts: bodies that ignore, or cannot even see, a polite request to stop -----------------------------
def ignore_sigterm(path: str, seconds: float) -> None:
    _start(path, "timeout")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def sleep_in_c(path: str, seconds: int) -> None:
    """libc sleep(3): blocked in C, Python's signal handlers never get a chance to run."""
    _start(path, "timeout")
    libc = ctypes.CDLL(None)
    libc.sleep(int(seconds))


def time_sleep(path: str, seconds: float) -> None:
    _start(path, "timeout")
    time.sleep(seconds)


def blocking_read(path: str) -> None:
    """A read on a socket nobody will ever write to."""
    _start(path, "timeout")
    left, right = socket.socketpair()
    left.recv(1)
    right.close()


def spawn_grandchildren(path: str, pidfile: str, seconds: float, new_session: bool = False) -> None:
    """Start two grandchildren, one of which starts a great-grandchild, write their pids, then sleep.

    With ``new_session`` one grandchild calls setsid(), leaving the executor's process group the way a
    daemonising tool would.
    """
    _start(path, "timeout")
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(600)\n")
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    great = int(first.stdout.readline())
    second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                              start_new_session=new_session)
    Path(pidfile).write_text(f"{first.pid} {great} {second.pid}\n")
    time.sleep(seconds)
