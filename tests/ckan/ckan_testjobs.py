"""Job functions of the CKAN tests. They run in the CKAN venv's job processes, imported as ``ckan_testjobs``
(tests/ckan is on their PYTHONPATH: CKAN's environment puts its own ``ckan.tests`` at ``sys.modules["tests"]``,
so nothing under ``tests.`` can be imported there), and may use CKAN freely."""

from __future__ import annotations

import os
from typing import Any

import ckan.plugins as plugins

from offload.contrib.ckan.worker import Worker


def retitle_dataset(name: str, title: str) -> str:
    """Change a dataset's title through CKAN's action functions, as the site user."""
    import ckan.plugins.toolkit as tk

    site_user = tk.get_action("get_site_user")({"ignore_auth": True}, {})
    context = {"ignore_auth": True, "user": site_user["name"]}
    return str(tk.get_action("package_patch")(context, {"id": name, "title": title})["title"])


def fail_job(marker: str) -> None:
    """Fail with a recognisable message (and a frame named fail_job in the traceback)."""
    raise ValueError(f"JOB FAILURE {marker}")


def record(path: str, text: str) -> None:
    """Append a line to a file (a job with a visible effect)."""
    with open(path, "a") as f:
        f.write(text + "\n")


class RecordingWorker(Worker):
    """Its perform_job override records the process it ran in (the job process, not the worker's)."""

    def perform_job(self, job: Any, queue: Any) -> bool:
        ok = super().perform_job(job, queue)
        record(os.environ["OFFLOAD_TEST_RECORD"], f"perform_job pid={os.getpid()} job={job.id} ok={ok}")
        return ok


class InProcessWorker(Worker):
    """Runs jobs in the worker's own process, as CKAN's tests do to capture a job's log lines."""

    def execute_job(self, job: Any, queue: Any) -> None:
        self.perform_job(job, queue)


class ForkObserver(plugins.SingletonPlugin):
    """Counts ``IForkObserver.before_fork`` calls (put among CKAN's plugins by ckan_side.py)."""

    plugins.implements(plugins.IForkObserver)

    calls = 0

    def before_fork(self) -> None:
        ForkObserver.calls += 1


def current_rq_job() -> dict[str, Any]:
    """What ``rq.get_current_job()`` says inside the job (as ckanext-xloader asks it)."""
    import rq

    job = rq.get_current_job()
    return {"id": None if job is None else job.id, "meta": None if job is None else dict(job.meta)}
