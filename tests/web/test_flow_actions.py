"""Priorities and paused queues through the action API (issue 22), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests import jobfuncs
from tests.web.conftest import READ, Site


def test_job_enqueue_with_a_priority(site: Site) -> None:
    low = site.result("job_enqueue", {"task": "tests.echo", "priority": 7})
    high = site.result("job_enqueue", {"task": "tests.echo", "priority": 2})
    assert low["priority"] == 7 and high["priority"] == 2
    assert site.result("job_show", {"id": low["id"]})["priority"] == 7
    claimed = site.offload.store.claim(["named"], "w", 30, 2, 1e10)
    assert [j.id for j in claimed] == [high["id"], low["id"]]


@pytest.mark.parametrize("priority", [-1, 10, "high", 1.5, True])
def test_job_enqueue_refuses_a_bad_priority_and_writes_nothing(site: Site, priority: object) -> None:
    status, body = site.call("job_enqueue", {"task": "tests.echo", "priority": priority})
    assert status == 409
    assert body["error"] == {"__type": "Validation Error", "priority": ["Must be an integer between 0 and 9"]}
    assert site.offload.store.count() == 0


def test_queue_pause_and_resume(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    site.offload.enqueue(jobfuncs.noop, queue="mail")
    with caplog.at_level("WARNING", logger="offload.web.audit"):
        assert site.result("queue_pause", {"queue": "mail"}) == {"name": "mail", "paused": True, "changed": True}
        assert site.result("queue_pause", {"queue": "mail"})["changed"] is False
        assert site.result("queue_pause", {"queue": "empty"})["changed"] is True
        rows = {row["name"]: row for row in site.result("queue_list", token=READ)}
        assert rows["mail"]["paused"] is True and rows["mail"]["counts"]["queued"] == 1
        assert rows["empty"]["paused"] is True and rows["empty"]["total"] == 0
        assert isinstance(rows["mail"]["paused_at"], float)
        assert site.offload.store.claim(["mail"], "w", 30, 1, 1e10) == []
        assert site.result("queue_resume", {"queue": "mail"}) == {"name": "mail", "paused": False, "changed": True}
        assert site.result("queue_resume", {"queue": "mail"})["changed"] is False
    audit = [r.getMessage() for r in caplog.records if r.name == "offload.web.audit"]
    assert [line.split(": ", 1)[1] for line in audit] == [
        "paused queue 'mail'", "paused queue 'empty'", "resumed queue 'mail'"]
    assert all(line.startswith(("queue_pause by token #1 (admin)", "queue_resume by token #1 (admin)"))
               for line in audit)
    assert site.offload.paused().keys() == {"empty"}


def test_queue_pause_needs_an_admin_token_and_a_valid_name(site: Site) -> None:
    status, body = site.call("queue_pause", {"queue": "mail"}, token=READ)
    assert status == 403
    status, body = site.call("queue_pause", {"queue": "no spaces"})
    assert status == 409 and body["error"]["queue"] == ["Must be 1-100 letters, digits, '_', '-' or '.'"]
    status, body = site.call("queue_resume", {})
    assert status == 409 and body["error"]["queue"] == ["Missing value"]
    assert site.offload.paused() == {}


def test_queue_limit_sets_shows_and_removes_a_limit(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        site.offload.enqueue(jobfuncs.noop, queue="mail")
    with caplog.at_level("WARNING", logger="offload.web.audit"):
        assert site.result("queue_limit", {"queue": "mail", "concurrency": 2}) == {
            "name": "mail", "concurrency": 2, "key_concurrency": None}
        rows = {row["name"]: row for row in site.result("queue_list", token=READ)}
        assert rows["mail"]["concurrency_limit"] == 2
        assert len(site.offload.store.claim(["mail"], "w", 30, 3, 1e10)) == 2
        assert site.result("queue_limit", {"queue": "mail"}) == {
            "name": "mail", "concurrency": None, "key_concurrency": None}
    audit = [r.getMessage().split(": ", 1)[1] for r in caplog.records if r.name == "offload.web.audit"]
    assert audit == ["set the concurrency limit of queue 'mail' to 2",
                     "set the concurrency limit of queue 'mail' to None"]
    assert site.offload.limits() == {}


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, "two", True])
def test_queue_limit_refuses_a_bad_limit_or_name_and_writes_nothing(site: Site, concurrency: object) -> None:
    status, body = site.call("queue_limit", {"queue": "mail", "concurrency": concurrency})
    assert status == 409 and body["error"]["concurrency"][0].startswith("Must be an integer between 1 and")
    status, body = site.call("queue_limit", {"queue": "no spaces", "concurrency": 2})
    assert status == 409 and body["error"]["queue"] == ["Must be 1-100 letters, digits, '_', '-' or '.'"]
    status, body = site.call("queue_limit", {"queue": "mail", "concurrency": 2}, token=READ)
    assert status == 403
    assert site.offload.limits() == {}
