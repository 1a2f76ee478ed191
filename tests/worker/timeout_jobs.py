"""Job functions for the soft/hard timeout and threads-mode tests: each writes what it saw to files the test reads."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

from offload import JobTimeout, current_job


def _note(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def _grandchild(pidfile: str) -> None:
    """Start a process that would outlive the job, and write its pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    _note(pidfile, str(proc.pid))


def cleanup_in_finally(path: str, seconds: float) -> str:
    """Sleeps past its limit; its finally block writes the file (the point of a soft timeout)."""
    try:
        _note(path, "started")
        time.sleep(seconds)
        return "slept"
    finally:
        _note(path, "cleaned up")


def cleanup_in_finally_busy(path: str, seconds: float) -> str:
    """As ``cleanup_in_finally``, in short sleeps: a thread gets an asynchronous exception between two of them
    (not during one: ``time.sleep`` waits in C)."""
    try:
        _note(path, "started")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return "slept"
    finally:
        _note(path, "cleaned up")


def libc_sleep_with_finally(path: str, seconds: int) -> None:
    """Blocked in C (libc sleep through ctypes): SIGALRM interrupts the call, the exception follows."""
    try:
        _note(path, "started")
        ctypes.CDLL(None).sleep(int(seconds))
    finally:
        _note(path, "cleaned up")


def catch_timeout_and_return(path: str, seconds: float) -> str:
    try:
        time.sleep(seconds)
    except JobTimeout as exc:
        _note(path, f"caught {type(exc).__name__}: {exc}")
        return "stopped early, cleaned up"
    return "slept"


def ignore_timeout(path: str, pidfile: str, seconds: float) -> None:
    """Catches JobTimeout and keeps going, with a grandchild running: killed at limit + grace."""
    _grandchild(pidfile)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except JobTimeout:
            _note(path, "ignored JobTimeout")


def block_alarm_and_sleep_in_c(path: str, pidfile: str, seconds: int) -> None:
    """Blocks SIGALRM, then sleeps in C, with a grandchild running: no exception can reach it; killed at limit +
    grace."""
    _grandchild(pidfile)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    _note(path, "blocked SIGALRM")
    ctypes.CDLL(None).sleep(int(seconds))


def sleep_in_c(path: str, seconds: int) -> None:
    """libc sleep(3) in whatever thread runs it (under --threads, a pool thread the async exception cannot reach
    while it is in C)."""
    _note(path, "started")
    ctypes.CDLL(None).sleep(int(seconds))


def record_attempt(path: str, seconds: float) -> str:
    """Note the attempt this run is, sleep, note the end."""
    job = current_job()
    assert job is not None
    _note(path, f"{job.id} {job.attempt} start")
    time.sleep(seconds)
    _note(path, f"{job.id} {job.attempt} end")
    return "done"


def crash_after(seconds: float, code: int = 3) -> None:
    time.sleep(seconds)
    os._exit(code)


class CustomTimeout(JobTimeout):
    """What an integration registers (CKAN: also a subclass of rq's JobTimeoutException)."""


def report_exception_class(path: str, seconds: float) -> None:
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
    except JobTimeout as exc:
        _note(path, f"{type(exc).__module__}.{type(exc).__qualname__}|{isinstance(exc, CustomTimeout)}|{exc}")
        raise

