"""The job process of a CKAN worker: an offload executor child that loads CKAN's environment once.

The worker sends the child a stand-in job spec whose function is ``run_in_job_process`` and whose arguments
name the config file, the worker class and the real job; in the child that function loads CKAN's environment
(first time only), builds the worker class and calls its ``perform_job`` on the real job, so overrides of
``perform_job`` run where the job runs. A failure is raised again with its own traceback, so the stored error
names the job's exception, not the stand-in.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from typing import Any

from offload import codec
from offload.app import Offload
from offload.contrib.ckan.site import Job, Queue
from offload.jobs import Job as Record
from offload.worker.runner import JobRunner

RUN = "offload.contrib.ckan.job_process:run_in_job_process"
BOOT = "offload.contrib.ckan.job_process:boot"
BOOT_TIMEOUT = 600.0
_STATE_FIELDS = ("id", "queue", "func", "task", "payload", "title", "created_at", "enqueued_at", "attempts",
                 "max_attempts", "timeout", "meta")

# In a job process: the worker whose perform_job runs the jobs (built once, after CKAN's environment).
_worker: Any = None


class JobFailed(Exception):
    """A job failed in the job process; ``error`` is offload's error report (type, message, traceback)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message") or error.get("type")))
        self.error = error


def class_path(cls: type) -> str:
    """``module:QualName`` of a worker class the job process can import (else the base class)."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return "offload.contrib.ckan.worker:Worker"
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> Any:
    module, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def boot(config_file: str, worker_class: str, queues: list[str]) -> None:
    """In the job process: load CKAN's environment from ``config_file`` and build the worker (once)."""
    global _worker
    if _worker is not None:
        return
    from ckan.cli import load_config
    from ckan.config.environment import load_environment

    load_environment(load_config(config_file))
    _worker = _import_class(worker_class)(queues)


def run_in_job_process(config_file: str, worker_class: str, queues: list[str], state: dict[str, Any]) -> Any:
    """In the job process: run the job described by ``state`` through the worker's ``perform_job``."""
    boot(config_file, worker_class, queues)
    record = Record(**state)
    job = Job(record)
    if _worker.perform_job(job, Queue(record.queue)):
        return job.return_value_
    if job.exc_info_tuple is not None:
        exc = job.exc_info_tuple[1]
        raise exc.with_traceback(job.exc_info_tuple[2])
    raise JobFailed((job.report or {}).get("error") or {"message": "perform_job reported a failure"})


class ExecutorRun:
    """One job process that runs a worker's jobs one at a time, in the worker's process's view."""

    def __init__(self, config_file: str, worker_class: str, queues: list[str]) -> None:
        self.args = [config_file, worker_class, queues]
        self.runner = JobRunner()
        self.booted = False

    @property
    def alive(self) -> bool:
        return self.runner.alive

    def stop(self) -> None:
        self.runner.stop()

    def kill(self) -> str:
        return self.runner.kill()

    def run(self, job: Job, app: Offload, interrupted: Callable[[str], str | None]) -> dict[str, Any]:
        """Run ``job`` in the child; the executor's report, or ``{"ok": False, "killed": why, ...}``."""
        record = job.record

        def progress(job_id: str, data: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
            app.store.set_progress(job_id, data, meta)

        if not self.booted:
            boot_job = Record(id=f"boot-{os.urandom(6).hex()}", queue=record.queue, func=BOOT,
                              payload=codec.encode_payload(self.args, {}), attempts=1)
            report = self.runner.run(boot_job, BOOT_TIMEOUT, progress, interrupted)
            if not report.get("ok"):
                return report
            self.booted = True
        state = {name: getattr(record, name) for name in _STATE_FIELDS}
        stand_in = dataclasses.replace(record, func=RUN, task=None,
                                       payload=codec.encode_payload([*self.args, state], {}))
        return self.runner.run(stand_in, record.timeout, progress, interrupted)
