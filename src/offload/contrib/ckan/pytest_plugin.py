"""A pytest plugin that runs a CKAN test suite (CKAN's own, or an extension's) with its jobs on offload.

    pytest --ckan-ini=test.ini -p offload.contrib.ckan.pytest_plugin ckanext/myext/tests

The test ini names the store (``ckan.offload.store``, else ``ckan.redis.url``); ``ckan.plugins`` need not list
``offload``: at the start of the session (after CKAN's own plugin has loaded the config) this plugin puts offload's
functions in place of ``ckan.lib.jobs``'s and the toolkit's, as the ``offload`` CKAN plugin does, and they stay
there whatever plugins the tests load. CKAN's test helpers that talk to RQ directly are pointed at offload:

- ``reset_queues`` / ``clean_queues`` also delete every job of the site from offload's store;
- ``RQTestBase.all_jobs()`` lists offload's waiting jobs;
- ``with_test_worker`` (used by ``RQTestBase``) makes offload's ``Worker`` run jobs in the test's process, as it
  makes RQ's, so that mocks, config changes and log capture apply to the job.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator
from typing import Any

import pytest


def _empty_offload() -> None:
    """Delete every job of the site (whatever its state) from offload's store."""
    from offload.contrib.ckan.site import site_app

    store = site_app().store
    while True:
        found = store.list(None, None, 1000)
        if not found:
            return
        for record in found:
            store.delete(record.id)


def _all_jobs(self: Any) -> list[Any]:
    """``RQTestBase.all_jobs``: the waiting jobs of every queue of the site."""
    import ckan.lib.jobs as jobs

    return [job for queue in jobs.get_all_queues() for job in queue.jobs]


def _perform_here(self: Any, job: Any, queue: Any) -> None:
    """``Worker._execute_in_job_process`` under ``with_test_worker``: the job runs in the test's process, under
    a time limit as RQ's ``SimpleWorker`` runs it (an alarm raises ``JobTimeoutException`` in the job)."""
    timeout = job.record.timeout
    if timeout is None or threading.current_thread() is not threading.main_thread():
        self.perform_job(job, queue)
        return
    from offload.contrib.ckan.timeouts import JobTimeoutException

    def alarm(signum: int, frame: Any) -> None:
        raise JobTimeoutException(f"Task exceeded maximum timeout value ({timeout:g} seconds)")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        self.perform_job(job, queue)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    import ckan.tests.helpers as helpers
    import ckan.tests.pytest_ckan.fixtures as fixtures

    from offload.contrib.ckan.plugin import install

    install()
    rq_empty = fixtures._empty_queues

    def empty_queues() -> None:
        _empty_offload()
        try:
            rq_empty()  # RQ's own queues too (tests make "foreign" RQ queues on purpose)
        except Exception:
            pass  # no Redis for RQ: nothing of RQ's to empty

    fixtures._empty_queues = empty_queues
    helpers.RQTestBase.all_jobs = _all_jobs


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None, Any, None]:
    yield
    if fixturedef.argname == "with_test_worker":
        from offload.contrib.ckan.worker import Worker

        request.getfixturevalue("monkeypatch").setattr(Worker, "_execute_in_job_process", _perform_here)
