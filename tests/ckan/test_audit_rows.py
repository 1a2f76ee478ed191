"""One test per row of docs/ckan.md's audit table ("The RQ surface CKAN code calls"). Each row names its test:
most are CKAN-side tests in ``tests/ckan/in_ckan/rows_ckan.py``, run here inside the CKAN venv (CKAN's pytest
plugin, offload's pytest plugin, a CKAN site on fresh databases with jobs in PostgreSQL); the others are tests of
this directory. This module checks that every row names a test that exists, and that each CKAN-side row passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.ckan import ckan_suite
from tests.ckan.conftest import HERE, REPO, RUN_ID, _admin_db, _service_reasons
from tests.conftest import service_missing

pytestmark = pytest.mark.timeout(1800)

ROWS_MODULE = HERE / "in_ckan" / "rows_ckan.py"


def audit_rows() -> list[tuple[str, str]]:
    """``(row number, test named in its last column)`` for every row of the audit table in docs/ckan.md."""
    text = (REPO / "docs" / "ckan.md").read_text()
    table = text.split("<!-- audit table -->", 2)[1]
    rows = []
    for line in table.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|.*\|\s*`([^`]+)`\s*\|\s*$", line)
        if match:
            rows.append((match.group(1), match.group(2)))
    return rows


ROWS = audit_rows()


def test_every_row_names_a_test_that_exists() -> None:
    assert len(ROWS) >= 30 and [int(n) for n, _ in ROWS] == list(range(1, len(ROWS) + 1))
    for number, test in ROWS:
        path, _, name = test.partition("::")
        source = (REPO / path).read_text()
        assert re.search(rf"^def {re.escape(name.split('[')[0])}\(", source, re.M), (number, test)
        if path.endswith("rows_ckan.py"):
            assert name.startswith(f"test_row_{int(number):02d}_"), (number, test)


@pytest.fixture(scope="module")
def results(solr_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    reason = _service_reasons("postgresql")
    if reason:
        service_missing("CKAN-side audit tests", reason)
    base = tmp_path_factory.mktemp("rows-suite")
    jobs_db = f"ckan_suite_rowjobs_{RUN_ID}"
    _admin_db(f'CREATE DATABASE "{jobs_db}"')
    suite = None
    try:
        suite = ckan_suite.prepare(base, solr_port, "rows",
                                   {"ckan.offload.store": ckan_suite._db_url(jobs_db) + "?schema=offload_jobs"})
        suite.databases.append(jobs_db)
        run = suite.run([], base / "rows.xml", offload=True, extra=[str(ROWS_MODULE)])
        found = ckan_suite.outcomes(base / "rows.xml") if (base / "rows.xml").exists() else {}
        assert found, run.stdout[-4000:] + run.stderr[-4000:]
        found["__output__"] = run.stdout[-20000:]
        yield found
    finally:
        if suite is not None:
            suite.close()
        else:
            _admin_db(f'DROP DATABASE IF EXISTS "{jobs_db}" WITH (FORCE)')


@pytest.mark.parametrize(("number", "test"), [row for row in ROWS if "rows_ckan.py::" in row[1]],
                         ids=[f"row{number}" for number, test in ROWS if "rows_ckan.py::" in test])
def test_row(results: dict[str, str], number: str, test: str) -> None:
    name = test.partition("::")[2]
    outcomes = {tid: outcome for tid, outcome in results.items() if re.search(rf"::{re.escape(name)}(\[|$)", tid)}
    assert outcomes, f"row {number}: {name} did not run\n{results['__output__'][-3000:]}"
    failed = {tid: o for tid, o in outcomes.items() if o != "passed"}
    assert not failed, f"row {number}: {failed}\n{_failure_text(results['__output__'], name)}"


def _failure_text(output: str, name: str) -> str:
    start = output.find(name)
    return output[max(0, start - 200):start + 4000] if start >= 0 else output[-3000:]
