"""Starting executor processes.

Two ways, one executor: ``spawn_executor`` starts a fresh interpreter (``python -m offload.worker.executor``);
``fork_executor`` forks the calling process. Forking is only safe in a process that has no other thread and
holds no connection, which is what the ``offload`` command is in its first milliseconds: it loads the
executor's modules once and forks a worker's first executors from there (``prestart``), before it loads the
command line, the store driver or anything else. Those executors are ready in about a millisecond each instead
of an interpreter's boot (~80 ms of CPU each, which on a small machine competed with the supervisor's own
start), and they share the modules' memory with the supervisor until either writes to it. Every executor
started later (a replacement for one that crashed, was killed at a timeout or was recycled) is spawned: by then
the supervisor has threads and store connections that a fork would copy in an unknown state.

Kept apart from ``pool`` and ``executor`` so that it imports little.
"""

from __future__ import annotations

import mmap
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

from offload.worker.slot import SLOT

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable


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


class Forked:
    """A forked executor's process, with the part of ``subprocess.Popen``'s interface the pool uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode  # reaped elsewhere: its exit status is gone
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code (negative: the signal that ended it); ``subprocess.TimeoutExpired`` after ``timeout``."""
        if timeout is None:
            if self.returncode is None:
                try:
                    self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
                except ChildProcessError:
                    pass
            return self.returncode
        end = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            left = end - time.monotonic()
            if left <= 0:
                import subprocess

                raise subprocess.TimeoutExpired(f"executor {self.pid}", timeout)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


class Spawned:
    """A booting executor: its process, the supervisor's end of its socket, and its slot."""

    __slots__ = ("proc", "slot", "sock")

    def __init__(self, proc: subprocess.Popen[bytes] | Forked, sock: socket.socket, slot: mmap.mmap) -> None:
        self.proc = proc
        self.sock = sock
        self.slot = slot


def spawn_executor() -> Spawned:
    """Start ``python -m offload.worker.executor`` in its own session. It boots, then waits on the socket for
    its configuration (see ``pool.Child.start``)."""
    import subprocess

    parent_end, child_end = socket.socketpair()
    slot_fd = _slot_fd()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offload.worker.executor", "--fd", str(child_end.fileno()), "--slot",
             str(slot_fd), "--parent", str(os.getpid())],
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


def fork_executor(hard_exit: bool = False, in_child: Callable[[], None] | None = None) -> Spawned:
    """Fork an executor from this process, which must have no other thread and hold no connection (see the
    module's note). The child does what a spawned executor does, in its own session with stdin on /dev/null;
    when it is done it leaves by raising ``SystemExit`` from here, so it ends as an interpreter does (threads
    joined, ``atexit`` handlers run, output flushed): callers must let that pass.

    ``hard_exit``: the child leaves with ``os._exit`` instead (its output flushed), so that nothing of the parent's
    runs in it on the way out (the parent's ``finally`` blocks and ``atexit`` handlers, which may talk to the
    parent's connections): for a parent that forks in the middle of its own work (CKAN's worker, as RQ's does).
    ``in_child`` runs first thing in the child (resetting the parent's signal handlers, say)."""
    from offload.worker import executor

    parent_end, child_end = socket.socketpair()
    slot_fd = _slot_fd()
    parent = os.getpid()
    try:
        pid = os.fork()
    except BaseException:
        parent_end.close()
        child_end.close()
        os.close(slot_fd)
        raise
    if pid == 0:  # the executor
        code: int | str | None = 0
        try:
            if in_child is not None:
                in_child()
            parent_end.close()
            for sibling in _prestarted:  # the supervisor's ends of the executors forked before this one
                sibling.sock.close()
                sibling.slot.close()
            _prestarted.clear()
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            executor.run(child_end.detach(), slot_fd, parent)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        if hard_exit:
            _leave(code)
        raise SystemExit(code)
    child_end.close()
    try:
        slot = mmap.mmap(slot_fd, SLOT.size)
    finally:
        os.close(slot_fd)
    return Spawned(Forked(pid), parent_end, slot)


def _leave(code: int | str | None) -> None:
    """End a forked child now, as ``SystemExit(code)`` would end an interpreter, but without unwinding into the
    parent's code."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)


# Executors this process started ahead of need (see ``prestart``), not yet taken.
_prestarted: list[Spawned] = []


def prestart(count: int) -> None:
    """Fork ``count`` executors now, for a worker this process is about to run (see the module's note);
    ``take_prestarted`` hands them over. Any not taken exit on their own when this process does (their socket
    closes). In each executor this raises ``SystemExit`` when the executor is done."""
    for _ in range(count):
        _prestarted.append(fork_executor())


def take_prestarted(count: int) -> list[Spawned]:
    """Up to ``count`` executors from ``prestart``; the rest are stopped."""
    taken, rest = _prestarted[:count], _prestarted[count:]
    _prestarted.clear()
    for spawned in rest:
        spawned.sock.close()  # it sees the end of its socket and exits
        spawned.proc.wait()
    return taken
