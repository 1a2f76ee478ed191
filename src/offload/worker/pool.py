"""Executor child processes as the supervisor sees them: spawn, feed, kill, and explain a death."""

from __future__ import annotations

import os
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from offload.jobs import Job
from offload.worker.slot import SLOT_RUNNING, read_slot
from offload.worker.spawn import Spawned, spawn_executor
from offload.worker.wire import Wire


@dataclass
class Assigned:
    """A claimed job handed to a child: ``started`` is set once it is (known to be) running."""

    job: Job
    started: float | None = None  # monotonic
    started_wall: float | None = None
    deadline: float | None = None  # monotonic
    seq: int = 0  # its place among the jobs sent to the child, from 1 (what the child's slot names)


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


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree (Linux, from /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])  # after "pid (comm) state"
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


class Child:
    """One executor process in its own session (so its whole process group can be killed).

    The process starts booting (interpreter, imports) as soon as the object exists; it waits for ``start``
    (its configuration) before it loads job modules and takes jobs, so a supervisor can spawn its executors
    first thing and finish its own setup while they boot."""

    def __init__(self, index: int, threads: int = 1, spawned: Spawned | None = None) -> None:
        """``spawned``: an executor started already (``spawn.prestart``); by default one is started now."""
        self.index = index
        self.threads = threads
        spawned = spawned or spawn_executor()
        self.proc, self.slot = spawned.proc, spawned.slot
        sock = spawned.sock
        self.sent = 0
        self.conn = Wire(sock)
        self.pid = self.proc.pid
        self.assigned: OrderedDict[str, Assigned] = OrderedDict()
        self.configured = False  # sent its configuration (start)
        self.ready = False
        self.rss = 0.0
        self.jobs_done = 0
        self.retiring = False
        self.tainted = False  # a job timed out in it: replaced (and its leftovers killed) once it holds nothing
        self.isolating = False  # runs suspects of a crash one at a time (see Supervisor.suspects), nothing else
        self.dead = False
        self.spawned = time.monotonic()

    def start(self, init: dict[str, Any]) -> bool:
        """Send the executor its configuration (``sys_path``, ``imports``, ``threads``, ``log_level``,
        ``config``); jobs sent after this run once it has loaded the job modules."""
        self.configured = True
        return self.send(init)

    def fileno(self) -> int:
        return self.conn.fileno()

    @property
    def running(self) -> list[Assigned]:
        return [a for a in self.assigned.values() if a.started is not None]

    def assign(self, job: Job) -> Assigned:
        self.sent += 1
        entry = Assigned(job, seq=self.sent)
        self.assigned[job.id] = entry
        return entry

    def position(self) -> tuple[int, bool, float]:
        """What a single-threaded child last wrote in its slot: the seq of the job it is on, whether that job
        is still running (False: it ran to its end, its report may not be sent yet) and when it started."""
        fields = read_slot(self.slot)
        if fields is None or fields[2] <= 0.0:
            return 0, False, 0.0  # nothing consistent written yet: no job known to be running
        seq, state, started = fields
        return seq, state == SLOT_RUNNING, started

    def running_now(self) -> list[Assigned]:
        """The job this child is running, by its own account (single-threaded children; see ``position``)."""
        seq, running, _ = self.position()
        entry = next((a for a in self.assigned.values() if a.seq == seq), None)
        return [entry] if running and entry is not None else []

    def send(self, message: Any) -> bool:
        """Post ``message`` (never blocks; the supervisor flushes the rest when the socket is writable)."""
        try:
            self.conn.post(message)
            return True
        except (OSError, EOFError):
            return False

    def flush(self) -> None:
        try:
            self.conn.flush()
        except OSError:
            pass  # it died: its socket reports the end, and the supervisor handles that

    def run(self, jobs: list[Job], soft_timeouts: bool = True) -> bool:
        """Send ``jobs`` to run; with ``soft_timeouts`` the executor raises ``JobTimeout`` in each at its limit."""
        if soft_timeouts:
            return self.send(("run", [job.spec() for job in jobs]))
        return self.send(("run", [job.spec()._replace(timeout=None) for job in jobs]))

    def kill(self) -> None:
        """SIGKILL the child's whole process group (the job's own children included), and the descendants that
        left the group (a subprocess started in a new session, as daemonising tools do)."""
        strays = _descendants(self.pid)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass

    def reap(self) -> str:
        """Wait for the (dead or killed) child and say how it ended; leftovers of its group are killed."""
        import subprocess  # here: a worker whose executors were forked needs it only now

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
