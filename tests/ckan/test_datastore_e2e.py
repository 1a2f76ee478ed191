"""A real CKAN 2.12 site with the datastore extension, jobs on offload (PostgreSQL only, no Redis at all), driven as
a site operator and API users drive it: ``ckan run``, the action API, ``ckan jobs ...`` and a ``ckan jobs worker``
subprocess.

A datastore resource is written (``datastore_create``, then ``datastore_upsert``): CKAN's datastore schedules its
follow-up jobs with ``get_job_queue().enqueue_in(...)`` (the resource's last-modified patch after 15 s, the
record count after 5 s), cancelling the previous ones with ``job_from_id(...).delete()``. What CKAN 2.12 on RQ
shows meanwhile, offload shows: ``ckan jobs list`` and ``job_list`` list waiting jobs only, so not these scheduled
ones; ``ckan jobs show ID`` finds one by id (no title: the datastore gives none). offload's own views show them as
scheduled. A plain ``ckan jobs worker`` runs each when it is due, and the resource's ``last_modified`` is patched.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
import urllib.request

import pytest

from tests.ckan.conftest import CKAN, Site
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(900)


def _dashboard(site: Site, path: str) -> str:
    request = urllib.request.Request(f"{site.url}/ckan-admin/offload{path}",
                                     headers={"Authorization": site.tokens["offload-admin"]})
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(response.read().decode())


def test_datastore_writes_schedule_jobs_that_a_plain_worker_runs_when_due(datastore_site: Site) -> None:
    site = datastore_site
    status, dataset = site.action("package_create", {"name": "e2e-datastore", "title": "Datastore end to end"})
    assert status == 200, dataset
    fields = [{"id": "n", "type": "int"}, {"id": "word", "type": "text"}]
    status, created = site.action("datastore_create", {
        "resource": {"package_id": dataset["result"]["id"], "name": "numbers"}, "fields": fields,
        "primary_key": ["n"], "records": [{"n": 1, "word": "one"}]})
    assert status == 200, created
    resource_id = created["result"]["resource_id"]
    status, before = site.action("resource_show", {"id": resource_id})
    assert status == 200 and before["result"]["url_type"] == "datastore"

    written = time.time()
    records = [{"n": 2, "word": "two"}, {"n": 3, "word": "three"}]
    status, upserted = site.action("datastore_upsert", {"resource_id": resource_id, "method": "insert",
                                                        "records": records})
    assert status == 200, upserted  # with RQ's surface missing this failed: 'Queue' has no attribute 'enqueue_in'
    last_modified_id = f"{resource_id}_datastore-patch-last_modified"
    count_id = f"{resource_id}_calculate-record-count"

    # As CKAN 2.12 on RQ: waiting (queued) jobs only in the list; the scheduled ones by id.
    listed = site.ckan("jobs", "list")
    assert listed.returncode == 0 and listed.lines() == ["There are no pending jobs."], listed.stdout
    status, body = site.action("job_list", {})
    assert status == 200 and body["result"] == []
    shown = site.ckan("jobs", "show", last_modified_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.lines()[:2] == [f"ID:      {last_modified_id}", "Title:   None"]
    assert shown.lines()[3] == "Queue:   default"
    status, body = site.action("job_show", {"id": count_id})
    assert status == 200 and body["result"]["queue"] == "default" and body["result"]["title"] is None

    # offload's views show them as scheduled, due 15 s (last modified) and 5 s (count) after the write.
    status, body = site.action("offload_job_show", {"id": last_modified_id})
    assert status == 200, body
    job = body["result"]
    assert job["state"] == "scheduled" and job["timeout"] == 180  # RQ's default for enqueue_in, not ckan.jobs.timeout
    assert written + 14 <= job["run_at"] <= time.time() + 16
    assert job["func"] == "ckanext.datastore.logic.action:_patch_resource_last_modified"
    assert job["args"][0] == resource_id and len(job["args"]) == 2  # the resource, and when it was written
    status, body = site.action("offload_job_list", {"state": ["scheduled"]})
    assert status == 200 and {last_modified_id, count_id} <= {j["id"] for j in body["result"]}
    assert last_modified_id in _dashboard(site, "/jobs?state=scheduled")

    # A plain worker (its default queue, with its scheduler) runs each job once it is due.
    log = site.dir / "e2e-worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([str(CKAN), "-c", str(site.ini), "jobs", "worker"], stdout=out,
                                  stderr=subprocess.STDOUT, env=site.env, cwd=site.dir)
    try:
        def finished(job_id: str) -> dict[str, object] | None:
            status, body = site.action("offload_job_show", {"id": job_id})
            return body["result"] if status == 200 and body["result"]["state"] in ("finished", "failed") else None

        count_job = wait_until(lambda: finished(count_id), timeout=120, what="the record count job")
        patch_job = wait_until(lambda: finished(last_modified_id), timeout=120, what="the last-modified job")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-3000:]
    assert count_job["state"] == "finished" and patch_job["state"] == "finished", (count_job, patch_job,
                                                                                   log.read_text()[-3000:])
    assert patch_job["started_at"] >= job["run_at"]  # not before it was due

    status, after = site.action("resource_show", {"id": resource_id})
    assert status == 200
    patched = dt.datetime.fromisoformat(after["result"]["last_modified"]).replace(tzinfo=dt.timezone.utc)
    assert abs(patched.timestamp() - written) < 10 and after["result"]["last_modified"] != before["result"].get(
        "last_modified")
    status, info = site.action("datastore_search", {"resource_id": resource_id, "limit": 0})
    assert status == 200 and info["result"]["total"] == 3
    text = log.read_text()
    assert f"starts job {count_id} from queue \"default\"" in text and f"has finished job {last_modified_id}" in text
    listed = site.ckan("jobs", "list")
    assert listed.lines() == ["There are no pending jobs."]
