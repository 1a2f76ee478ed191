"""Per-entity task status on SQLite, Redis and PostgreSQL: the latest job of a task type for an entity, followed
through its states by real workers, read in one call from Python, the CLI and the HTTP API."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload import Offload, RetryPolicy
from offload.jobs import CANCELED, FAILED, FINISHED, SCHEDULED
from offload.web import create_app
from tests import jobfuncs
from tests.conftest import engine_url
from tests.waiting import wait_until
from tests.worker.conftest import ROOT, Workers
from tests.worker.test_worker import ledger_lines

TOKEN = "st-" + uuid.uuid4().hex


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(engine_url(request.param, tmp_path), f"w{uuid.uuid4().hex[:10]}", tmp_path)
    yield w
    w.stop_all()


class Readers:
    """The three ways to read a status, each one call."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.client = create_app(Offload(store=workers.url, site_id=workers.site, api__tokens=[f"{TOKEN}:read"])
                                 ).test_client()

    def python(self, *key: str) -> dict[str, Any] | None:
        return self.workers.app.task_status(*key)

    def cli(self, *key: str) -> tuple[int, Any, str]:
        out = subprocess.run([sys.executable, "-m", "offload", "--store", self.workers.url, "--site-id",
                              self.workers.site, "task-status", *key, "--json"], env=self.workers.env(),
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr

    def http(self, name: str, **params: str) -> tuple[int, Any]:
        response = self.client.post(f"/api/3/action/{name}", json=params, headers={"Authorization": TOKEN})
        body = response.get_json()
        return response.status_code, body.get("result") if body["success"] else body["error"]

    def all_agree(self, *key: str) -> dict[str, Any]:
        """The status as each interface gives it; they must agree."""
        by_python = self.python(*key)
        code, by_cli, stderr = self.cli(*key)
        status, by_http = self.http("task_status_show", entity_type=key[0], entity_id=key[1], task_type=key[2])
        assert code == 0 and status == 200, (stderr, by_http)
        assert by_python == by_cli == by_http
        assert by_python is not None
        return by_python


def test_status_follows_the_job_through_its_states(workers: Workers, tmp_path: Path) -> None:
    readers = Readers(workers)
    rid = f"res-{uuid.uuid4().hex[:8]}"
    key = ("resource", rid, "archiver")
    assert readers.python(*key) is None
    code, found, stderr = readers.cli(*key)
    assert code == 1 and found is None and f"There is no archiver job for resource {rid}." in stderr
    assert readers.http("task_status_show", entity_type="resource", entity_id=rid, task_type="archiver")[0] == 404

    ledger = tmp_path / "ledger.txt"
    first = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 60], title="Archive", task_status=key)
    queued = readers.all_agree(*key)
    assert queued["job_id"] == first.id and queued["state"] == "queued" and queued["error"] is None
    assert queued["entity_type"] == "resource" and queued["entity_id"] == rid and queued["task_type"] == "archiver"
    assert queued["title"] == "Archive" and queued["last_updated"] >= first.created_at

    proc = workers.start()
    wait_until(lambda: ledger_lines(ledger), what="the job to start")
    started = readers.all_agree(*key)
    assert started["state"] == "started" and started["attempts"] == 1
    assert started["last_updated"] == workers.job(first.id).started_at

    workers.app.cancel(first.id)
    workers.wait_state(first.id, CANCELED)
    assert readers.all_agree(*key)["state"] == "canceled"

    # A newer job of the same task type for the entity takes over: it fails once, waits, then fails for good.
    second = workers.app.enqueue(jobfuncs.fail, ["archive unreachable"], task_status=key, max_attempts=2,
                                 retry=RetryPolicy("fixed", 0.5, jitter=False))
    waiting = wait_until(lambda: (s := readers.python(*key))["state"] == SCHEDULED and s)
    assert waiting["job_id"] == second.id and waiting["error"]["message"] == "archive unreachable"
    failed = wait_until(lambda: (s := readers.python(*key))["state"] == FAILED and s)
    assert readers.all_agree(*key) == failed
    assert failed["error"]["type"] == "ValueError" and failed["attempts"] == 2 and failed["max_attempts"] == 2
    assert failed["last_updated"] == workers.job(second.id).ended_at

    third = workers.app.enqueue(jobfuncs.add, [1, 2], task_status=key)
    done = wait_until(lambda: (s := readers.python(*key))["state"] == FINISHED and s)
    assert done["job_id"] == third.id and done["error"] is None
    assert readers.all_agree(*key) == done

    # Another task type of the same entity is its own status; the list gives both.
    fourth = workers.app.enqueue(jobfuncs.add, [2, 2], task_status={"entity_type": "resource", "entity_id": rid,
                                                                    "task_type": "qa"})
    wait_until(lambda: readers.python("resource", rid, "qa")["state"] == FINISHED)
    status, listed = readers.http("task_status_list", entity_type="resource", entity_id=rid)
    assert status == 200 and [(s["task_type"], s["job_id"]) for s in listed] == [("archiver", third.id),
                                                                                  ("qa", fourth.id)]
    code, by_cli, _ = readers.cli("resource", rid)
    assert code == 0 and by_cli == listed == workers.app.task_statuses("resource", rid)
    proc.terminate()
    assert proc.wait(30) == 0


def test_a_done_status_outlives_its_job_once_seen(workers: Workers) -> None:
    readers = Readers(workers)
    seen = workers.app.enqueue(jobfuncs.fail, ["x"], max_attempts=1, task_status=("package", "p1", "qa"))
    unseen = workers.app.enqueue(jobfuncs.add, [1, 1], task_status=("package", "p2", "qa"))
    assert workers.start("--burst").wait(60) == 0
    assert readers.python("package", "p1", "qa")["state"] == FAILED  # read while the job is stored
    workers.app.purge(0)
    assert workers.app.store.get(seen.id) is None and workers.app.store.get(unseen.id) is None
    kept = readers.all_agree("package", "p1", "qa")
    assert kept["state"] == FAILED and kept["job_id"] == seen.id and kept["error"]["type"] == "ValueError"
    gone = readers.all_agree("package", "p2", "qa")
    assert gone["state"] == "unknown" and gone["job_id"] == unseen.id
    assert "no longer stored" in gone["error"]["message"] and "last seen queued" in gone["error"]["message"]


@pytest.mark.parametrize("bad", [("resource", "r", ""), ("res:ource", "r", "x"), ("resource", "r\n", "x"),
                                 ("resource", "r", "x" * 201), ["resource", "r"], {"entity_type": "r"},
                                 {"entity_type": "r", "entity_id": "i", "task_type": "t", "extra": 1}, "r/i/t"])
def test_bad_keys_are_refused_and_enqueue_nothing(workers: Workers, bad: Any) -> None:
    with pytest.raises(ValueError, match=r"task_status|task status"):
        workers.app.enqueue(jobfuncs.add, [1, 2], task_status=bad)
    assert workers.app.store.count() == 0
    readers = Readers(workers)
    status, error = readers.http("task_status_show", entity_type="res:ource", entity_id="r", task_type="x")
    assert status == 409 and "entity_type" in error


def test_enqueue_many_and_send_task_tie_their_jobs(workers: Workers) -> None:
    from tests.taskmods import echo_tasks  # noqa: F401 - registers tests.echo

    jobs = workers.app.enqueue_many([{"fn": jobfuncs.add, "args": [i, i], "task_status": ("row", str(i), "sum")}
                                     for i in range(3)] + [(jobfuncs.add, [9, 9])])
    sent = workers.app.send_task("tests.echo", args=[1], task_status=("row", "0", "echo"))
    for i in range(3):
        assert workers.app.task_status("row", str(i), "sum")["job_id"] == jobs[i].id
    assert workers.app.task_status("row", "0", "echo")["job_id"] == sent.id
    assert [s["task_type"] for s in workers.app.task_statuses("row", "0")] == ["echo", "sum"]
