"""RQ's ``JobTimeoutException`` for offload's soft timeout, so that CKAN extensions' cleanup runs.

At a job's time limit offload raises its ``JobTimeout`` in the job (then, after ``offload.jobs.timeout_grace``,
kills the job's process group). Extensions written for RQ catch ``rq.timeouts.JobTimeoutException`` instead
(ckanext-xloader removes its temporary file and reports the timeout to CKAN's task status); with the plugin on, the
exception raised is ``JobTimeoutException`` below, which is both.
"""

from __future__ import annotations

import rq.timeouts

from offload import context
from offload.errors import JobTimeout


class JobTimeoutException(JobTimeout, rq.timeouts.JobTimeoutException):  # type: ignore[misc]  # rq is untyped
    """The job ran past its time limit (offload's JobTimeout and RQ's JobTimeoutException)."""


def install_timeout_exception() -> None:
    """Make the soft timeout raise ``JobTimeoutException`` in this process's jobs, and in the job processes it
    forks (idempotent)."""
    context.use_timeout_exception(JobTimeoutException)
