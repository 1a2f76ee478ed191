"""A site with something on every dashboard page: failed, retrying, scheduled and waiting jobs on three queues
(one that no worker serves), a periodic schedule from the ini file, and a webhook. Shared by the page tests
through Flask's test client and in Chromium."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offload.events import webhooks
from offload.jobs import Job
from offload.retry import RetryPolicy
from tests import jobfuncs
from tests.events.conftest import Receiver
from tests.web.conftest import TASK_MODULE, Site, make_site, subprocess_env

INI = """\
[offload]

[offload.schedule.nightly-report]
cron = 0 3 * * *
func = tests.jobfuncs:noop
queue = reports
"""


@dataclass
class Seeded:
    failed: Job
    retrying: Job
    scheduled: Job
    waiting: list[Job]
    webhook_id: str


def make_pages_site(engine: str, tmp_path: Path, **settings: Any) -> Site:
    ini = tmp_path / "offload.ini"
    ini.write_text(INI)
    return make_site(engine, tmp_path, config=ini, webhooks__allowed_hosts="127.0.0.1", **settings)


def seed(site: Site, deliveries: bool = False) -> Seeded:
    """Jobs and a webhook on ``site``; runs a burst worker on the default queue (and, with ``deliveries``, a
    second webhook with two deliveries)."""
    app = site.offload
    failed = app.enqueue(jobfuncs.fail, ["catalogue.csv is missing"], title="Import catalogue", max_attempts=1)
    retrying = app.enqueue(jobfuncs.fail, ["mirror is down"], title="Fetch mirror", max_attempts=3,
                           retry=RetryPolicy("fixed", delay=3600))
    app.enqueue(jobfuncs.add, [2, 3], title="Add numbers")
    site.run_worker()
    scheduled = app.enqueue(jobfuncs.noop, title="Reminder mail", queue="mail", delay=7200)
    waiting = [app.enqueue(jobfuncs.noop, title=f"Welcome mail {i}", queue="mail") for i in range(3)]
    hook = webhooks.add(app, "https://hooks.example.org/secret-path/abc", description="catalogue sync")
    if deliveries:
        deliver_twice(site)
    return Seeded(failed, retrying, scheduled, waiting, hook["id"])


def deliver_twice(site: Site) -> None:
    """A webhook on a local receiver that refuses the first test event and takes the second: two deliveries
    in its log, each made by a real burst worker."""
    receiver = Receiver(statuses=[503, 200])
    try:
        hook = webhooks.add(site.offload, receiver.url, routing_keys=["dataset.*"], description="search index")
        for _ in range(2):
            webhooks.send_test(site.offload, hook["id"])
            out = subprocess.run(site.command("worker", "--burst", "--import", TASK_MODULE, "webhooks"),
                                 capture_output=True, text=True, cwd=site.tmp, timeout=60,
                                 env=subprocess_env(OFFLOAD_WEBHOOKS_ALLOWED_HOSTS="127.0.0.1"))
            assert out.returncode == 0, out.stderr
        assert len(receiver.requests) == 2, out.stderr
    finally:
        receiver.close()
