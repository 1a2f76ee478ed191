"""Running jobs one at a time in a killable child process: the worker's interface for integrations.

A host that runs jobs its own way (CKAN's worker takes one job at a time and logs and forks as CKAN does) builds
on this instead of the supervisor: a ``JobRunner`` runs each job in an executor child process with a soft then
hard timeout (``JobTimeout`` raised in the job at its limit, the child's process group killed ``timeout_grace``
seconds later), forwards its progress and reports what happened; ``outcome_for`` turns that report into the
outcome the store settles; ``failure_report`` is the report of an exception raised where the job ran.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from offload.jobs import Job
from offload.worker.executor import failure_report
from offload.worker.pool import Child
from offload.worker.settle import outcome_for
from offload.worker.spawn import fork_executor

__all__ = ["TIMEOUT_GRACE", "JobRunner", "failure_report", "outcome_for"]

#: Seconds a job may take to stop after ``JobTimeout`` was raised in it (``offload.jobs.timeout_grace``'s default).
TIMEOUT_GRACE = 5.0

#: ``progress(job_id, progress, meta)``: what a running job reported (either may be None).
ProgressHandler = Callable[[str, "dict[str, Any] | None", "dict[str, Any] | None"], None]
#: ``interrupted(job_id)``: why the running job must stop now (``"canceled"``, ``"shutdown"``...) or None.
InterruptCheck = Callable[[str], "str | None"]


def _report_for(message: tuple[Any, ...], job_id: str) -> dict[str, Any] | None:
    """The report for ``job_id`` in a ``done`` message: ``("done", [(id, report), ...])``."""
    for done_id, report in message[1]:
        if done_id == job_id:
            return dict(report)
    return None


class JobRunner:
    """One executor child process that runs jobs one at a time. After a job times out (stopped by ``JobTimeout``
    or killed), is interrupted, or its process dies, the runner is dead (``alive`` is False): make a new one for
    the next job. A job that timed out may have left child processes or threads behind; they die with it.

    ``timeout_grace``: seconds between ``JobTimeout`` raised in a job at its limit and the kill (0: killed at the
    limit, no exception raised). ``fork``: the child is a fork of this process (which has loaded what its jobs
    need, and must have no other thread running and hold nothing a child must not share; see
    ``spawn.fork_executor``) and leaves with ``os._exit``; ``in_child`` runs first thing in it. Otherwise it is a
    fresh interpreter."""

    def __init__(self, imports: list[str] | None = None, log_level: str = "INFO",
                 timeout_grace: float = TIMEOUT_GRACE, fork: bool = False,
                 in_child: Callable[[], None] | None = None) -> None:
        if timeout_grace < 0:
            raise ValueError(f"timeout_grace must be >= 0 seconds, not {timeout_grace!r}")
        self.timeout_grace = timeout_grace
        spawned = fork_executor(hard_exit=True, in_child=in_child) if fork else None
        self.child = Child(0, spawned=spawned)
        self.child.start({"sys_path": list(sys.path), "imports": list(imports or []), "threads": 1,
                          "log_level": log_level})

    @property
    def alive(self) -> bool:
        return not self.child.dead

    @property
    def pid(self) -> int:
        return self.child.pid

    def stop(self) -> None:
        """Ask the child to exit and wait for it (between jobs)."""
        if not self.child.dead:
            self.child.stop()
            self.child.reap()

    def kill(self) -> str:
        """SIGKILL the child's process group; returns how it ended."""
        self.child.kill()
        return self.child.reap()

    def run(self, job: Job, timeout: float | None, progress: ProgressHandler | None = None,
            interrupted: InterruptCheck | None = None) -> dict[str, Any]:
        """Run ``job`` in the child and wait for its report, checking ``interrupted`` four times a second. A report
        is the executor's (``ok``, and ``result`` or ``error``; a job that stopped at its time limit has an error
        with ``reason`` ``"timeout"``), or ``{"ok": False, "killed": why, "message": ...}`` with ``why`` one of
        ``timeout`` (killed ``timeout_grace`` seconds after its limit), ``crash`` or what ``interrupted`` said."""
        soft = timeout if self.timeout_grace > 0 else None
        deadline = None if timeout is None else time.monotonic() + timeout + self.timeout_grace
        if not self.child.send(("run", [job.spec()._replace(timeout=soft)])):
            return self._crashed()
        while True:
            why = interrupted(job.id) if interrupted is not None else None
            if why is not None:
                self.kill()
                return {"ok": False, "killed": why, "message": f"stopped ({why})"}
            wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if wait <= 0:
                return self._killed_at_limit(timeout)
            try:
                if not self.child.conn.poll(wait):
                    continue
                message = self.child.conn.recv()
            except (EOFError, OSError):
                return self._crashed()
            if message[0] == "done":
                report = _report_for(message, job.id)
                if report is not None:
                    if (report.get("error") or {}).get("reason") == "timeout":
                        self.kill()  # what the stopped job left behind (processes, threads) goes with it
                    return report
            elif message[0] == "progress" and progress is not None:
                try:
                    progress(message[1], message[2], message[3])
                except Exception:
                    pass  # progress is best effort; the job goes on

    def _killed_at_limit(self, timeout: float | None) -> dict[str, Any]:
        cause = self.kill()
        grace = self.timeout_grace
        message = f"the job ran longer than its timeout of {timeout:g} s"
        if grace > 0:
            message += f" and was still running {grace:g} s after JobTimeout was raised in it"
        message += "; its process was killed"
        return {"ok": False, "killed": "timeout", "cause": cause, "grace": grace, "limit": timeout,
                "message": message}

    def _crashed(self) -> dict[str, Any]:
        cause = self.child.reap()
        return {"ok": False, "killed": "crash", "cause": cause, "message": f"the process running the job {cause}"}
