"""Search, filters and bulk actions through the API (``job_list``, ``job_search``, ``job_bulk``) and the
dashboard's jobs list, on SQLite and PostgreSQL, with jobs that real burst workers ran."""

from __future__ import annotations

import time

from tests import jobfuncs
from tests.web.conftest import ADMIN, READ, Site
from tests.web.test_dashboard import csrf, login, text


def _failures(site: Site) -> dict[str, list[str]]:
    """Failed jobs: two "Import" ones in queue a, one "Import" and one "Export" in queue b; one finished."""
    app = site.offload
    made = {
        "a-import": [app.enqueue(jobfuncs.fail, [f"row {i}"], title=f"Import batch {i}", queue="a",
                                 max_attempts=1).id for i in range(2)],
        "b-import": [app.enqueue(jobfuncs.fail, ["late"], title="Import late batch", queue="b", max_attempts=1).id],
        "b-export": [app.enqueue(jobfuncs.fail, ["disk"], title="Export report", queue="b", max_attempts=1).id],
        "a-done": [app.enqueue(jobfuncs.add, [1, 2], title="Import check", queue="a").id],
    }
    site.run_worker("a", "b")
    return made


def test_job_list_and_search_filter_by_text_queue_state_and_time(site: Site) -> None:
    made = _failures(site)
    ids = site.result("job_list", {"state": ["failed"], "q": "import", "ids_only": True})
    assert sorted(ids) == sorted(made["a-import"] + made["b-import"])
    ids = site.result("job_list", {"state": ["all"], "q": "IMPORT", "queues": ["a"], "ids_only": True})
    assert sorted(ids) == sorted(made["a-import"] + made["a-done"])
    ids = site.result("job_list", {"state": ["all"], "args": '"disk"', "ids_only": True})
    assert ids == made["b-export"]
    one = made["b-export"][0]
    assert site.result("job_list", {"state": ["all"], "id": one, "ids_only": True}) == [one]
    found = site.result("job_search", {"q": "batch", "limit": 2})
    assert found["count"] == 3 and found["exact"] and len(found["results"]) == 2
    assert found["results"][0]["title"] == "Import late batch", "newest first"
    later = time.time() + 60
    assert site.result("job_search", {"created_after": later})["count"] == 0
    assert site.result("job_search", {"created_before": later})["count"] == 5
    status, body = site.call("job_search", {"sort": "payload"})
    assert status == 409 and "sort" in body["error"], body


def test_bulk_retry_of_a_filtered_set_retries_exactly_that_set(site: Site) -> None:
    made = _failures(site)
    status, body = site.call("job_bulk", {"action": "retry", "state": ["failed"], "q": "import"}, token=READ)
    assert status == 403
    status, body = site.call("job_bulk", {"action": "retry", "state": ["failed"], "q": "import", "expected": 2})
    assert status == 409 and "matches 3 jobs" in str(body["error"])
    result = site.result("job_bulk", {"action": "retry", "state": ["failed"], "q": "import", "expected": 3})
    assert result == {"action": "retry", "matched": 3, "done": 3, "skipped": 0}
    states = {job_id: site.offload.get_job(job_id).state for ids in made.values() for job_id in ids}
    retried = set(made["a-import"] + made["b-import"])
    assert {job_id for job_id, state in states.items() if state == "queued"} == retried
    assert states[made["b-export"][0]] == "failed" and states[made["a-done"][0]] == "finished"


def test_dashboard_filters_and_bulk_cancel_with_confirmation(site: Site) -> None:
    made = _failures(site)
    waiting = [site.offload.enqueue(jobfuncs.noop, title=f"Digest {i}", queue="mail").id for i in range(3)]
    login(site.client, ADMIN)
    page = text(site.client.get("/jobs?q=import&state=failed"))
    assert "3 jobs" in page
    assert all(job_id in page for job_id in made["a-import"] + made["b-import"])
    assert made["b-export"][0] not in page
    assert 'data-confirm="Retry the 3 jobs matching this filter?"' in page
    assert made["b-export"][0] in text(site.client.get(f"/jobs?id={made['b-export'][0]}"))
    site.offload.enqueue_many([{"fn": jobfuncs.noop, "title": f"Filler {i}"} for i in range(20)], queue="fill")
    assert "page 2 of 2 (28 jobs)" in text(site.client.get("/jobs?page=2"))
    assert "page 1 of 1 (20 jobs)" in text(site.client.get("/jobs?q=filler&sort=created_at&order=asc"))
    page = text(site.client.get("/jobs?queue=mail&state=queued"))
    response = site.client.post("/jobs/bulk", data={"csrf_token": csrf(page), "action": "cancel", "queue": "mail",
                                                    "state": "queued", "q": "digest", "expected": "3",
                                                    "next": "/jobs?queue=mail"})
    assert response.status_code == 302
    assert [site.offload.get_job(job_id).state for job_id in waiting] == ["canceled"] * 3
    assert "Canceled 3 job(s)" in text(site.client.get("/jobs?queue=mail"))
    reader = site.app.test_client()
    login(reader, READ)
    page = text(reader.get("/jobs?state=failed"))
    assert "data-confirm" not in page
    response = reader.post("/jobs/bulk", data={"csrf_token": csrf(page), "action": "delete", "state": "failed",
                                                   "expected": "2"})
    assert response.status_code == 403 and site.offload.get_job(made["b-export"][0]).state == "failed"


def test_bulk_on_a_selection(site: Site) -> None:
    made = _failures(site)
    chosen = [made["a-import"][0], made["b-export"][0]]
    result = site.result("job_bulk", {"action": "retry", "ids": [*chosen, made["a-done"][0], "0" * 32]})
    assert result == {"action": "retry", "matched": 4, "done": 2, "skipped": 2}, "finished and unknown: skipped"
    assert {site.offload.get_job(i).state for i in chosen} == {"queued"}
    assert site.offload.get_job(made["a-import"][1]).state == "failed"
    status, body = site.call("job_bulk", {"action": "delete", "ids": ["bad id!"]})
    assert status == 409 and "ids" in body["error"]
    login(site.client, ADMIN)
    page = site.client.get("/jobs?state=failed").text
    response = site.client.post("/jobs/bulk-selected", data={"csrf_token": csrf(page), "action": "delete",
                                                             "ids": made["a-import"][1:] + made["b-import"]})
    assert response.status_code == 302
    assert all(site.offload.store.get(i) is None for i in made["a-import"][1:] + made["b-import"])
    assert "Deleted 2 job(s)" in text(site.client.get("/jobs"))
    assert site.client.post("/jobs/bulk-selected", data={"csrf_token": csrf(page), "action": "delete"}).status_code \
        == 400


def test_priority_on_the_job_page_and_in_the_list(site: Site) -> None:
    job = site.offload.enqueue(jobfuncs.noop, title="Low priority", priority=7)
    login(site.client, READ)
    assert '<td id="job-priority">7</td>' in site.client.get(f"/jobs/{job.id}").text
    assert 'title="priority 7 (0 is taken first, 9 last)">p7</small>' in site.client.get("/jobs").text
