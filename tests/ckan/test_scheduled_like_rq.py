"""What CKAN 2.12 shows of a job the datastore schedules, on stock CKAN (RQ 2.10) and on offload, side by side in one
CKAN process: ``job_list`` does not list it, ``job_show`` and ``job_from_id`` find it, it is ``scheduled`` with RQ's
default timeout (180), no ``enqueued_at`` and empty ``meta``, ``job_clear`` leaves it, ``delete()`` removes it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.ckan import ckan_suite
from tests.ckan.conftest import CKAN_PYTHON, HERE, RUN_ID, _admin_db, _service_reasons
from tests.conftest import service_missing

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def suite(solr_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ckan_suite.Suite]:
    reason = _service_reasons("redis")
    if reason:
        service_missing("stock CKAN beside offload", reason)
    jobs_db = f"ckan_suite_schedjobs_{RUN_ID}"
    _admin_db(f'CREATE DATABASE "{jobs_db}"')
    prepared = None
    try:
        prepared = ckan_suite.prepare(tmp_path_factory.mktemp("scheduled"), solr_port, "sched",
                                      {"ckan.offload.store": ckan_suite._db_url(jobs_db) + "?schema=offload_jobs"})
        prepared.databases.append(jobs_db)
        yield prepared
    finally:
        if prepared is not None:
            prepared.close()
        else:
            _admin_db(f'DROP DATABASE IF EXISTS "{jobs_db}" WITH (FORCE)')


def test_a_scheduled_job_shows_as_on_stock_ckan(suite: ckan_suite.Suite) -> None:
    run = subprocess.run([str(CKAN_PYTHON), str(HERE / "scheduled_side.py"), str(suite.ini)], capture_output=True,
                         text=True, env=suite.env, cwd=suite.dir, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    views = json.loads(lines[0][len("RESULT "):])
    assert views["rq"] == views["offload"]
    assert views["rq"]["job_list"] == [] and views["rq"]["status"] == "scheduled"
    assert views["rq"]["after_clear"] == "scheduled" and views["rq"]["after_delete"] == "KeyError"
    assert views["rq"]["timeout"] == 180 and views["rq"]["meta"] == {} and views["rq"]["enqueued_at"] is None
