"""ckanext-xloader 2.6.0 (from PyPI), whose jobs use RQ itself, on stock CKAN and on offload: its own tests of
``xloader_submit`` and of its job pass on offload as they do on stock CKAN.

They exercise xloader's real call sites: ``enqueue_job(..., rq_kwargs=dict(timeout=..., at_front=sync))`` and,
for a resource with a pending task, ``get_queue().get_jobs()`` filtered on ``str(job)`` and parsed from
``job.description`` (action.py); in the job, ``rq.get_current_job().id`` and ``except JobTimeoutException`` with
its cleanup (jobs.py; ``test_data_with_rq_job_timeout``). xloader is listed in ``ckan.plugins`` and loaded before
offload's functions are put in place, so its ``from ckan.lib.jobs import get_queue`` is one of those rebound.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ckan import ckan_suite
from tests.ckan.conftest import RUN_ID, _admin_db, _service_reasons
from tests.conftest import service_missing

pytestmark = pytest.mark.timeout(2400)

MODULES = ["ckanext/xloader/tests/test_action.py", "ckanext/xloader/tests/test_jobs.py"]
#: The tests that reach the call sites named above.
CALL_SITES = ("test_duplicated_submits", "test_xloader_data_into_datastore", "test_data_with_rq_job_timeout")
#: xloader tests that race a clock, and fail now and then on stock CKAN as on offload; one that did not pass is run
#: again alone, up to RACE_TRIES times, and must pass once. ``test_data_with_rq_job_timeout`` gives its job a 2 s
#: limit and expects the limit to fall inside the file's download or load (the only places the job catches
#: ``JobTimeoutException``): when loading the 4 MB file takes less than 2 s, or the limit falls between the load
#: and the resource update, it fails (1 run in 3 on stock CKAN on an idle machine here, as on offload).
#: offload's own deterministic check of that call site is row 31 of tests/ckan/in_ckan/rows_ckan.py.
CLOCK_RACES = ("test_data_with_rq_job_timeout",)
RACE_TRIES = 4


@pytest.fixture(scope="module")
def suite(solr_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ckan_suite.Suite]:
    reason = _service_reasons("redis")
    if reason:
        service_missing("ckanext-xloader's tests", reason)
    base = tmp_path_factory.mktemp("xloader-suite")
    jobs_db = f"ckan_suite_xljobs_{RUN_ID}"
    _admin_db(f'CREATE DATABASE "{jobs_db}"')
    prepared = None
    try:
        # xloader's test.ini: its plugins, its own jobs database, its two default queues.
        prepared = ckan_suite.prepare(base, solr_port, "xl", {
            "ckan.plugins": "xloader datastore",
            "ckanext.xloader.jobs_db.uri": f"sqlite:///{base}/xloader-jobs.db",
            "ckanext.xloader.queue_names": "default0 default1",
            "ckan.offload.store": ckan_suite._db_url(jobs_db) + "?schema=offload_jobs",
        })
        prepared.databases.append(jobs_db)
        yield prepared
    finally:
        if prepared is not None:
            prepared.close()
        else:
            _admin_db(f'DROP DATABASE IF EXISTS "{jobs_db}" WITH (FORCE)')


def test_xloaders_own_tests_pass_on_offload_as_on_stock_ckan(suite: ckan_suite.Suite, tmp_path: Path) -> None:
    plugins = ["-p", "ckanext.xloader.tests.fixtures"]
    stock = suite.run(MODULES, tmp_path / "stock.xml", offload=False, extra=plugins)
    on_stock = ckan_suite.outcomes(tmp_path / "stock.xml")
    assert on_stock, stock.stdout[-3000:] + stock.stderr[-3000:]
    run = suite.run(MODULES, tmp_path / "offload.xml", offload=True, extra=plugins)
    on_offload = ckan_suite.outcomes(tmp_path / "offload.xml")
    summary = run.stdout[-6000:] + run.stderr[-4000:]
    for name in CLOCK_RACES:
        for attempt in range(RACE_TRIES):
            ids = [t for t, outcome in on_offload.items() if t.endswith(f"::{name}") and outcome != "passed"]
            if not ids:
                break
            junit = tmp_path / f"race-{name}-{attempt}.xml"
            again = suite.run(MODULES, junit, offload=True, keywords=name, extra=plugins)
            summary += f"\n--- {name} again ({attempt + 1}):\n" + again.stdout[-3000:]
            on_offload.update(ckan_suite.outcomes(junit))
    assert set(on_offload) == set(on_stock), summary
    worse = sorted(t for t, outcome in on_stock.items() if outcome == "passed" and on_offload[t] != "passed")
    assert not worse, f"pass on stock CKAN, not on offload: {worse}\n{summary}"
    for name in CALL_SITES:
        assert any(t.endswith(f"::{name}") and outcome == "passed" for t, outcome in on_offload.items()), (
            name, sorted(on_offload.items()))
