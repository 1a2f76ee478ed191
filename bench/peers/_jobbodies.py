"""The job bodies every system runs, identical everywhere; each ``<system>_jobs.py`` wraps them in that
system's task declaration. Standard library only."""

from __future__ import annotations

import os
import threading
import time

# The scale workload's record file, opened once per process (a forked child reopens it: see record()).
_record_fd: int | None = None
_record_pid = 0
_record_prefix = b""


def noop() -> None:
    return None


def sleep() -> None:
    time.sleep(0.01)


def stamp(fifo: str, sample: str) -> None:
    """Report when the job body started: one short line to a FIFO the producer is reading."""
    started = time.time()
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, f"{sample} {started!r}\n".encode())
    finally:
        os.close(fd)


def mark(path: str) -> None:
    """Append one line to ``path`` (one O_APPEND write: safe from concurrent workers)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"x\n")
    finally:
        os.close(fd)


def record() -> None:
    """The scale workload's no-op: note when it started and ended, nothing else. One line per job,
    ``"<slot> <pid> <thread> <start_ns> <end_ns>"`` (CLOCK_MONOTONIC, the same clock in every process), written
    with one O_APPEND write to ``$BENCH_SCALE_RECORDS``; ``$BENCH_SCALE_SLOT`` is the worker process it runs
    under (set by the harness, inherited by every child a worker forks). The file is opened on the first job of
    each process, before ``start``; the write comes after ``end``, so it falls in the gap to the next job,
    equally for every system."""
    global _record_fd, _record_pid, _record_prefix
    pid = os.getpid()
    if _record_pid != pid:
        _record_fd = os.open(os.environ["BENCH_SCALE_RECORDS"], os.O_WRONLY | os.O_APPEND)
        _record_pid = pid
        _record_prefix = f"{os.environ.get('BENCH_SCALE_SLOT', '?')} {pid} ".encode()
    start = time.monotonic_ns()
    end = time.monotonic_ns()
    assert _record_fd is not None
    os.write(_record_fd, b"%s%d %d %d\n" % (_record_prefix, threading.get_ident(), start, end))
