"""``ckan.offload.transactional = true`` on a real CKAN 2.12: a failed action leaves no job behind.

An extension's ``after_dataset_create`` enqueues a job for the new dataset (``toolkit.enqueue_job``), and CKAN's
``package_create`` then fails for one dataset before it commits (tests/ckan/ckan_transactional.py, in the CKAN
venv). With the setting, that dataset's job is gone with the dataset, the other's is stored when CKAN commits and
runs in ``ckan jobs worker``, and a job enqueued where nothing was written is stored at once. Without the setting
the failed dataset leaves an orphan job. On a Redis store the setting is an error that names it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ckan.conftest import CKAN_PYTHON, HERE, Site

pytestmark = pytest.mark.timeout(900)


def run(site: Site, record: Path, transactional: bool) -> dict[str, Any]:
    proc = subprocess.run([str(CKAN_PYTHON), str(HERE / "ckan_transactional.py"), str(site.ini), str(record),
                           "true" if transactional else "false"], capture_output=True, text=True, env=site.env,
                          cwd=site.dir, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT "):])
            result["stderr"] = proc.stderr
            return result
    raise AssertionError(f"ckan_transactional.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def queued_ids(site: Site) -> set[str]:
    listed = site.ckan("jobs", "list", "tx")
    assert listed.returncode == 0, listed.stderr
    return {line.split()[1] for line in listed.lines() if line != "There are no pending jobs."}


@pytest.mark.parametrize("site", ["postgresql"], indirect=True)
def test_a_failed_action_leaves_no_job_and_a_committed_one_runs(site: Site, tmp_path: Path) -> None:
    record = tmp_path / "ran.txt"
    out = run(site, record, transactional=True)
    assert "ok_error" not in out, out["ok_error"] + out["stderr"][-3000:]
    assert out["broken_error"] == f"the indexer refused {out['broken']}"
    ok_job, broken_job = out["jobs"][out["ok"]], out["jobs"][out["broken"]]
    assert queued_ids(site) == {ok_job, out["read_only_job"]}, "the failed action's job is gone"
    assert f"Background job(s) {broken_job} not stored" in out["stderr"]
    shown = site.ckan("jobs", "show", broken_job)
    assert shown.returncode == 1 and f'There is no job with ID "{broken_job}"' in shown.stderr
    worker = site.ckan("jobs", "worker", "--burst", "tx", timeout=300)
    assert worker.returncode == 0, worker.stderr
    assert sorted(record.read_text().split()) == sorted([out["ok"], "read-only"])

    control = run(site, tmp_path / "control.txt", transactional=False)
    orphan = control["jobs"][control["broken"]]
    assert orphan in queued_ids(site), "without the setting the failed dataset's job stays queued"
    assert site.ckan("jobs", "clear", "tx").returncode == 0


@pytest.mark.parametrize("site", ["redis"], indirect=True)
def test_the_setting_needs_the_store_in_ckans_database(site: Site, tmp_path: Path) -> None:
    out = run(site, tmp_path / "ran.txt", transactional=True)
    assert "ckan.offload.transactional = true needs the jobs in CKAN's own PostgreSQL database" in out["ok_error"]
    assert "set ckan.offload.store to the database of sqlalchemy.url" in out["ok_error"]
    assert out["read_only_error"] == out["ok_error"].split(": ", 1)[1], "every enqueue says so, not just some"
    assert out["jobs"] == {}
    assert site.ckan("jobs", "clear", "tx").returncode == 0
