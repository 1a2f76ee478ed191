"""Starting executor processes.

Kept apart from ``pool`` and ``executor`` so that it imports little: the ``offload`` command starts a worker's
executors with it before it loads the command line, the store driver or anything else (an executor's
interpreter boot is the longest part of a worker's start; the rest of the start overlaps with it).
"""

from __future__ import annotations

import mmap
import os
import socket
import subprocess
import sys

from offload.worker.slot import SLOT


def _slot_fd() -> int:
    """A file in memory, one ``SLOT`` long, that a child and its supervisor both map."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("offload-executor-slot")
    else:
        import tempfile

        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    os.ftruncate(fd, SLOT.size)
    return fd


class Spawned:
    """A booting executor: its process, the supervisor's end of its socket, and its slot."""

    __slots__ = ("proc", "slot", "sock")

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket, slot: mmap.mmap) -> None:
        self.proc = proc
        self.sock = sock
        self.slot = slot


def spawn_executor() -> Spawned:
    """Start ``python -m offload.worker.executor`` in its own session. It boots, then waits on the socket for
    its configuration (see ``pool.Child.start``)."""
    parent_end, child_end = socket.socketpair()
    slot_fd = _slot_fd()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offload.worker.executor", "--fd", str(child_end.fileno()), "--slot",
             str(slot_fd)],
            pass_fds=(child_end.fileno(), slot_fd),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        slot = mmap.mmap(slot_fd, SLOT.size)
    except BaseException:
        parent_end.close()
        raise
    finally:
        child_end.close()
        os.close(slot_fd)
    return Spawned(proc, parent_end, slot)


# Executors this process started ahead of need (see ``prestart``), not yet taken.
_prestarted: list[Spawned] = []


def prestart(count: int) -> None:
    """Start ``count`` executors now, for a worker this process is about to run; ``take_prestarted`` hands them
    over. Any not taken exit on their own when this process does (their socket closes)."""
    _prestarted.extend(spawn_executor() for _ in range(count))


def take_prestarted(count: int) -> list[Spawned]:
    """Up to ``count`` executors from ``prestart``; the rest are stopped."""
    taken, rest = _prestarted[:count], _prestarted[count:]
    _prestarted.clear()
    for spawned in rest:
        spawned.sock.close()  # it sees the end of its socket and exits
        spawned.proc.wait()
    return taken
