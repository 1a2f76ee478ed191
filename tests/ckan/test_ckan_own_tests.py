"""CKAN 2.12's own tests of jobs, run as CKAN's CI runs them, on stock CKAN (RQ) and on offload: every test that
passes on stock CKAN passes on offload.

The modules: the datastore's (``create``, ``upsert``, ``delete``: their writes schedule the record-count and
last-modified jobs with ``enqueue_in``, find them with ``job_from_id``, ``delete()`` and ``perform()`` them;
``test_db``: a worker whose jobs write to the datastore), and CKAN's job tests (``ckan.lib.jobs``, ``ckan jobs``,
the ``job_*`` actions). They come from the installed ``ckan`` package (its wheel ships its tests), and run in the
CKAN venv; offload's run adds ``-p offload.contrib.ckan.pytest_plugin`` and ``ckan.offload.store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ckan import ckan_suite
from tests.ckan.conftest import RUN_ID, _admin_db, _service_reasons
from tests.conftest import service_missing

pytestmark = pytest.mark.timeout(3600)

MODULES = [
    "ckanext/datastore/tests/test_create.py",
    "ckanext/datastore/tests/test_upsert.py",
    "ckanext/datastore/tests/test_delete.py",
    "ckanext/datastore/tests/test_db.py",
    "ckan/tests/lib/test_jobs.py",
    "ckan/tests/cli/test_jobs.py",
    "ckan/tests/logic/action/test_get.py::TestJobList",
    "ckan/tests/logic/action/test_get.py::TestJobShow",
    "ckan/tests/logic/action/test_delete.py::TestJobClear",
    "ckan/tests/logic/action/test_delete.py::TestJobCancel",
]
#: Tests that schedule jobs through the datastore (so must have gone through offload's enqueue_in).
SCHEDULING = ("test_create_schedules_record_count", "test_basic_as_insert", "test_upsert_schedules_record_count",
              "test_delete_records_basic", "test_delete_schedules_record_count")


@pytest.fixture(scope="module")
def suite(solr_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ckan_suite.Suite]:
    reason = _service_reasons("redis")
    if reason:
        service_missing("CKAN's own tests", reason)
    jobs_db = f"ckan_suite_jobs_{RUN_ID}"
    _admin_db(f'CREATE DATABASE "{jobs_db}"')
    prepared = None
    try:
        prepared = ckan_suite.prepare(tmp_path_factory.mktemp("ckan-suite"), solr_port, "own",
                                      {"ckan.offload.store": ckan_suite._db_url(jobs_db) + "?schema=offload_jobs"})
        prepared.databases.append(jobs_db)
        yield prepared
    finally:
        if prepared is not None:
            prepared.close()
        else:
            _admin_db(f'DROP DATABASE IF EXISTS "{jobs_db}" WITH (FORCE)')


def _rq_job_keys() -> int:
    import redis

    client = redis.Redis.from_url(ckan_suite.RQ_REDIS_URL)
    return sum(1 for _ in client.scan_iter("rq:job:*", count=1000))


def _drop_rq_keys() -> None:
    import redis

    client = redis.Redis.from_url(ckan_suite.RQ_REDIS_URL)
    keys = list(client.scan_iter("rq:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


def test_ckans_own_job_tests_pass_on_offload_as_on_stock_ckan(suite: ckan_suite.Suite, tmp_path: Path) -> None:
    stock = suite.run(MODULES, tmp_path / "stock.xml", offload=False)
    on_stock = ckan_suite.outcomes(tmp_path / "stock.xml")
    assert on_stock, stock.stdout[-3000:] + stock.stderr[-3000:]
    _drop_rq_keys()

    run = suite.run(MODULES, tmp_path / "offload.xml", offload=True)
    on_offload = ckan_suite.outcomes(tmp_path / "offload.xml")
    summary = run.stdout[-4000:] + run.stderr[-4000:]

    assert set(on_offload) == set(on_stock), summary
    passed_on_stock = {t for t, outcome in on_stock.items() if outcome == "passed"}
    worse = sorted(t for t in passed_on_stock if on_offload[t] != "passed")
    assert not worse, f"pass on stock CKAN, not on offload: {worse}\n{summary}"
    assert len(passed_on_stock) > 150, sorted(on_stock.items())
    for name in SCHEDULING:
        assert any(t.endswith(f"::{name}") and on_offload[t] == "passed" for t in on_offload), name
    # The jobs really were offload's: offload's store was used, and no RQ job was made but the one
    # test_foreign_queues_are_ignored makes with raw RQ on purpose.
    assert _rq_job_keys() <= 1
    import psycopg

    with psycopg.connect(ckan_suite._db_url(f"ckan_suite_jobs_{RUN_ID}")) as conn:
        row = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'offload_jobs' "
                           "AND table_name = 'jobs'").fetchone()
    assert row is not None and row[0] == 1
