"""The job bodies every system runs, identical everywhere; each ``<system>_jobs.py`` wraps them in that
system's task declaration. Standard library only."""

from __future__ import annotations

import os
import time


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
