"""Executor child processes as the supervisor sees them: spawn, feed, kill, and explain a death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from offload.jobs import Job
from offload.worker.executor import JobSpec


@dataclass
class Assigned:
    """A claimed job handed to a child: ``started`` is set once it is (known to be) running."""

    job: Job
    started: float | None = None  # monotonic
    started_wall: float | None = None
    deadline: float | None = None  # monotonic


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


class Child:
    """One executor process in its own session (so its whole process group can be killed)."""

    def __init__(self, index: int, init: dict[str, Any]) -> None:
        self.index = index
        self.threads = int(init.get("threads", 1))
        parent_end, child_end = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "offload.worker.executor", "--fd", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        finally:
            child_end.close()
        self.conn = Connection(parent_end.detach())
        self.conn.send(init)
        self.pid = self.proc.pid
        self.assigned: OrderedDict[str, Assigned] = OrderedDict()
        self.ready = False
        self.rss = 0.0
        self.jobs_done = 0
        self.retiring = False
        self.dead = False
        self.spawned = time.monotonic()

    def fileno(self) -> int:
        return self.conn.fileno()

    @property
    def running(self) -> list[Assigned]:
        return [a for a in self.assigned.values() if a.started is not None]

    def send(self, message: tuple[Any, ...]) -> bool:
        try:
            self.conn.send(message)
            return True
        except (OSError, EOFError):
            return False

    def run(self, jobs: list[Job]) -> bool:
        specs = [
            JobSpec(j.id, j.func, j.task, j.payload, j.attempts, j.max_attempts, j.queue, j.title, j.meta)
            for j in jobs
        ]
        return self.send(("run", specs))

    def kill(self) -> None:
        """SIGKILL the child's whole process group (the job's own children included)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass

    def reap(self) -> str:
        """Wait for the (dead or killed) child and say how it ended; leftovers of its group are killed."""
        self.dead = True
        try:
            returncode: int | None = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self.proc.wait()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # grandchildren that outlived the child
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.conn.close()
        except OSError:
            pass
        return describe_exit(returncode)

    def stop(self) -> None:
        self.send(("stop",))
