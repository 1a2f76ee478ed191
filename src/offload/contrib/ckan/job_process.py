"""The job process of a CKAN worker: a fork of the worker's own process, as RQ's work horse is.

The worker forks it once CKAN's environment is loaded, right after the database-safety steps CKAN's worker takes
before a fork (the SQLAlchemy session removed, the engine disposed, ``IForkObserver.before_fork()`` called), so
the job sees exactly the worker's configuration and plugins, including what was changed in memory after the ini
file was read. It is an offload executor (``offload.worker.runner.JobRunner``): a job that overruns its timeout
has its process group killed, a job that crashes it is recorded with the cause, and the next job gets a new fork
made the same way. By default every job gets its own fork (``ckan.offload.worker.max_jobs_per_child = 1``), as
with RQ; a larger value lets one fork run that many jobs.

The worker sends the child a stand-in job spec whose function is ``run_in_job_process`` and whose argument is the
real job's record; there it calls the worker's own ``perform_job`` (the very object, inherited through the fork,
so overrides on any class work). A failure is raised again with its own traceback, so the stored error names the
job's exception, not the stand-in.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from typing import Any

from offload import codec
from offload.app import Offload
from offload.contrib.ckan.rq_job import Job
from offload.contrib.ckan.rq_queue import Queue
from offload.jobs import Job as Record
from offload.worker.runner import JobRunner

RUN = "offload.contrib.ckan.job_process:run_in_job_process"
_STATE_FIELDS = ("id", "queue", "func", "task", "payload", "title", "created_at", "enqueued_at", "run_at",
                 "state", "attempts", "max_attempts", "timeout", "meta", "retry", "worker")

# The worker whose perform_job runs the jobs: set in the worker's process before each fork, inherited by the child.
_worker: Any = None


class JobFailed(Exception):
    """A job failed in the job process; ``error`` is offload's error report (type, message, traceback)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message") or error.get("type")))
        self.error = error


def run_in_job_process(state: dict[str, Any]) -> Any:
    """In the job process: run the job described by ``state`` through the (inherited) worker's ``perform_job``."""
    record = Record(**state)
    job = Job(record)
    if _worker.perform_job(job, Queue(record.queue)):
        return job.return_value_
    if job.exc_info_tuple is not None:
        exc = job.exc_info_tuple[1]
        raise exc.with_traceback(job.exc_info_tuple[2])
    raise JobFailed((job.report or {}).get("error") or {"message": "perform_job reported a failure"})


def _in_child() -> None:
    """First thing in the fork: the worker's signal handlers are not the job's (a SIGTERM to the job process
    ends it, as it would a script)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ExecutorRun:
    """One forked job process of a worker, running its jobs one at a time."""

    def __init__(self, worker: Any, pause: Callable[[], Any]) -> None:
        """``pause()``: a context manager that keeps the worker's other threads away from anything a fork could
        catch half-done (its heartbeat), held while forking."""
        global _worker
        _worker = worker
        with pause():
            self.runner = JobRunner(timeout_grace=float(worker.app.config["offload.jobs.timeout_grace"]), fork=True,
                                    in_child=_in_child)
        self.jobs_run = 0

    @property
    def alive(self) -> bool:
        return self.runner.alive

    @property
    def pid(self) -> int:
        return self.runner.pid

    def stop(self) -> None:
        self.runner.stop()

    def kill(self) -> str:
        return self.runner.kill()

    def run(self, job: Job, app: Offload, interrupted: Callable[[str], str | None]) -> dict[str, Any]:
        """Run ``job`` in the child; the executor's report, or ``{"ok": False, "killed": why, ...}``."""
        record = job.record

        def progress(job_id: str, data: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
            app.store.set_progress(job_id, data, meta)

        state = {name: getattr(record, name) for name in _STATE_FIELDS}
        stand_in = dataclasses.replace(record, func=RUN, task=None, payload=codec.encode_payload([state], {}))
        self.jobs_run += 1
        return self.runner.run(stand_in, record.timeout, progress, interrupted)
