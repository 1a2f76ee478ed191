"""The action API through Flask's test client, on SQLite and PostgreSQL: every action, every error path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from offload.web.actions import registered_actions
from tests import jobfuncs
from tests.web.conftest import ADMIN, READ, Site

CREATED_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
WRITE_ACTIONS = ["job_cancel", "job_retry", "job_clear", "job_enqueue", "queue_pause", "queue_resume"]
READ_ACTIONS = ["job_list", "job_show", "queue_list", "worker_list", "schedule_list", "help_show", "action_list"]


# -- envelope, auth, request errors ------------------------------------------------------------------------------
def test_success_envelope_has_help_success_result(site: Site) -> None:
    status, body = site.call("job_list", method="GET")
    assert status == 200
    assert body == {"help": "http://localhost/api/3/action/help_show?name=job_list", "success": True, "result": []}


def test_every_action_needs_a_token(site: Site) -> None:
    for name in READ_ACTIONS + WRITE_ACTIONS:
        for token in (None, "wrong-token", ADMIN + "x", ADMIN[:-1]):
            status, body = site.call(name, {"id": "x"}, token=token)
            assert status == 403, (name, token)
            assert body["success"] is False and body["error"]["__type"] == "Authorization Error"
            assert body["error"]["message"].startswith("Access denied")
    assert site.client.get("/api/3/openapi.json").status_code == 403
    assert site.client.get("/metrics").status_code == 403
    assert site.client.get("/metrics", headers={"Authorization": "nope"}).status_code == 403


def test_tokens_are_accepted_raw_as_bearer_and_as_ckan_api_key(site: Site) -> None:
    for headers in ({"Authorization": ADMIN}, {"Authorization": f"Bearer {ADMIN}"}, {"X-CKAN-API-Key": READ}):
        response = site.client.get("/api/3/action/job_list", headers=headers)
        assert response.status_code == 200, headers


def test_read_token_may_list_and_show_but_not_change(site: Site) -> None:
    job = site.offload.enqueue(jobfuncs.noop)
    assert site.result("job_list", token=READ) and site.result("job_show", {"id": job.id}, token=READ)
    for name in WRITE_ACTIONS:
        status, body = site.call(name, {"id": job.id, "task": "tests.echo"}, token=READ)
        assert status == 403, name
        assert body["error"] == {"__type": "Authorization Error",
                                 "message": f"Access denied: the read role may not call {name}"}
    assert site.offload.get_job(job.id).state == "queued"


def test_healthz_needs_no_token(site: Site) -> None:
    response = site.client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "store": "reachable"}


def test_healthz_and_actions_report_an_unreachable_store(tmp_path: Path) -> None:
    from offload import Offload
    from offload.web import create_app

    offload = Offload(store=f"sqlite:///{tmp_path}/missing/dir/offload.db", site_id="x", api__tokens=f"{ADMIN}:admin")
    client = create_app(offload).test_client()
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["status"] == "unavailable"
    response = client.get("/api/3/action/job_list", headers={"Authorization": ADMIN})
    assert response.status_code == 503 and response.get_json()["error"]["__type"] == "Service Unavailable"
    assert client.get("/metrics", headers={"Authorization": ADMIN}).status_code == 503


def test_unknown_action_is_a_bad_request_like_ckan(site: Site) -> None:
    status, body = site.call("job_frobnicate")
    assert status == 400
    assert body["error"] == {"__type": "Bad Request Error",
                             "message": "Bad request - Action name not known: job_frobnicate"}


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"limit": NaN}',
                                     b"[" * 100_000])
def test_bad_json_is_a_bad_request(site: Site, payload: bytes) -> None:
    status, body = site.call("job_list", body=payload, content_type="application/json")
    assert status == 400
    assert body["error"]["__type"] == "Bad Request Error"
    assert body["error"]["message"].startswith("Bad request - JSON Error: ")


def test_oversized_body_is_refused_with_the_envelope(site: Site) -> None:
    status, body = site.call("job_list", body=b" " * (2 * 1024 * 1024), content_type="application/json")
    assert status == 413 and body["success"] is False


def test_write_actions_refuse_get(site: Site) -> None:
    job = site.offload.enqueue(jobfuncs.noop)
    for name in WRITE_ACTIONS:
        status, body = site.call(name, {"id": job.id}, method="GET")
        assert status == 400 and body["error"]["message"] == f"Bad request - {name} changes data: call it with POST"
    assert site.offload.get_job(job.id).state == "queued"


def test_unknown_api_path_and_method_use_the_envelope(site: Site) -> None:
    response = site.client.get("/api/3/nothing-here", headers={"Authorization": ADMIN})
    assert response.status_code == 404 and response.get_json()["success"] is False
    response = site.client.delete("/api/3/action/job_list", headers={"Authorization": ADMIN})
    assert response.status_code == 405 and response.get_json()["success"] is False


# -- validation --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["job_show", "job_cancel", "job_retry"])
def test_missing_id_is_a_validation_error_in_ckan_shape(site: Site, name: str) -> None:
    for data in ({}, {"id": ""}, {"id": None}):
        status, body = site.call(name, data)
        assert status == 409
        assert body["success"] is False
        assert body["error"] == {"__type": "Validation Error", "id": ["Missing value"]}


@pytest.mark.parametrize("name", ["job_show", "job_cancel", "job_retry"])
def test_unknown_id_is_not_found(site: Site, name: str) -> None:
    for job_id in ("no-such-id", "bad id/with\x00odd chars", "x" * 200):
        status, body = site.call(name, {"id": job_id})
        assert status == 404, job_id
        assert body["error"] == {"__type": "Not Found Error",
                                 "message": f'Not found: There is no job with ID "{job_id}"'}
    status, body = site.call(name, {"id": "x" * 201})
    assert status == 409 and body["error"]["id"] == ["Must be at most 200 characters long"]


@pytest.mark.parametrize(("data", "errors"), [
    ({"limit": "abc"}, {"limit": ["Must be an integer between 0 and 1000"]}),
    ({"limit": 1001}, {"limit": ["Must be an integer between 0 and 1000"]}),
    ({"limit": -1}, {"limit": ["Must be an integer between 0 and 1000"]}),
    ({"limit": 1.5}, {"limit": ["Must be an integer between 0 and 1000"]}),
    ({"limit": True}, {"limit": ["Must be an integer between 0 and 1000"]}),
    ({"offset": 10**30}, {"offset": ["Must be an integer between 0 and 10000000"]}),
    ({"ids_only": "maybe"}, {"ids_only": ["Must be true or false"]}),
    ({"queues": "bad queue!"}, {"queues": ["invalid queue name 'bad queue!': use 1-100 letters, digits, '_', '-' "
                                           "or '.'"]}),
    ({"queues": [1, 2]}, {"queues": ["Must be a list of strings"]}),
    ({"state": ["queued", "bogus"]}, {"state": ["Unknown state 'bogus': use one of scheduled, queued, started, "
                                                "finished, failed, canceled, pending, all"]}),
    ({"order": "sideways"}, {"order": ["Must be one of: asc, desc"]}),
    ({"limit": "x", "ids_only": 3}, {"limit": ["Must be an integer between 0 and 1000"],
                                     "ids_only": ["Must be true or false"]}),
])
def test_job_list_validation_errors(site: Site, data: dict[str, object], errors: dict[str, list[str]]) -> None:
    status, body = site.call("job_list", data)
    assert status == 409
    assert body["error"] == {"__type": "Validation Error", **errors}


def test_query_string_values_are_validated_too(site: Site) -> None:
    status, body = site.call("job_list", {"limit": "5000", "ids_only": "perhaps"}, method="GET")
    assert status == 409
    assert body["error"] == {"__type": "Validation Error", "limit": ["Must be an integer between 0 and 1000"],
                             "ids_only": ["Must be true or false"]}
    status, body = site.call("job_show", {"id": ["a", "b"]}, method="GET")
    assert status == 409 and body["error"]["id"] == ["Must be a single value"]


# -- job_list and job_show ---------------------------------------------------------------------------------------
def test_job_list_like_ckan_and_beyond(site: Site) -> None:
    first = site.offload.enqueue(jobfuncs.noop, title="First", queue="mail")
    second = site.offload.enqueue(jobfuncs.noop, queue="default")
    third = site.offload.enqueue(jobfuncs.noop, queue="reports")
    site.offload.cancel(third.id)

    listed = site.result("job_list")
    assert [j["id"] for j in listed] == [first.id, second.id]
    assert listed[0]["title"] == "First" and listed[0]["queue"] == "mail" and listed[0]["state"] == "queued"
    assert site.result("job_list", {"ids_only": True}) == [first.id, second.id]
    assert site.result("job_list", {"queues": ["mail"], "ids_only": True}) == [first.id]
    assert site.result("job_list", {"limit": 1, "ids_only": True}) == [first.id]
    assert site.result("job_list", {"limit": 1, "offset": 1, "ids_only": True}) == [second.id]
    assert site.result("job_list", {"order": "desc", "ids_only": True}) == [second.id, first.id]
    assert site.result("job_list", {"state": "canceled", "ids_only": True}) == [third.id]
    assert site.result("job_list", {"state": ["all"], "ids_only": True}) == [first.id, second.id, third.id]
    assert site.result("job_list", {"state": "pending", "ids_only": True}) == [first.id, second.id]


def test_job_list_by_get_with_repeated_or_comma_separated_values(site: Site) -> None:
    a = site.offload.enqueue(jobfuncs.noop, queue="a")
    b = site.offload.enqueue(jobfuncs.noop, queue="b")
    site.offload.enqueue(jobfuncs.noop, queue="c")
    response = site.client.get("/api/3/action/job_list?queues=a&queues=b&ids_only=true",
                               headers={"Authorization": READ})
    assert response.get_json()["result"] == [a.id, b.id]
    assert site.result("job_list", {"queues": "a,b", "ids_only": "1"}, method="GET") == [a.id, b.id]
    assert site.result("job_list", {"queues": "b", "limit": "0"}, method="GET") == []


def test_form_encoded_post_is_accepted(site: Site) -> None:
    job = site.offload.enqueue(jobfuncs.noop)
    status, body = site.call("job_show", body={"id": job.id}, content_type="application/x-www-form-urlencoded")
    assert status == 200 and body["result"]["id"] == job.id


def test_job_show_has_ckan_fields_and_offloads_own(site: Site) -> None:
    job = site.offload.enqueue(jobfuncs.add, [1, 2], title="Sum", queue="math")
    shown = site.result("job_show", {"id": job.id})
    assert shown["id"] == job.id and shown["title"] == "Sum" and shown["queue"] == "math"
    assert CREATED_RE.fullmatch(shown["created"])
    assert shown["created"] == job.created.strftime("%Y-%m-%dT%H:%M:%S")
    assert shown["state"] == "queued" and shown["attempts"] == 0 and shown["max_attempts"] == 3
    assert shown["args"] == [1, 2] and shown["kwargs"] == {}
    assert shown["func"] == "tests.jobfuncs:add" and shown["result"] is None and shown["error"] is None
    assert shown["progress"] is None and shown["created_at"] == pytest.approx(job.created_at)
    assert site.result("job_show", {"id": job.id}, method="GET") == shown


def test_failed_job_shows_traceback_then_retry_requeues_it(site: Site) -> None:
    failed = site.offload.enqueue(jobfuncs.fail, ["disk on fire"], title="Doomed", max_attempts=1)
    done = site.offload.enqueue(jobfuncs.progress, [4], title="Counts")
    site.run_worker()

    shown = site.result("job_show", {"id": failed.id}, token=READ)
    assert shown["state"] == "failed" and shown["attempts"] == 1
    assert shown["error"]["type"] == "ValueError" and shown["error"]["message"] == "disk on fire"
    assert "Traceback (most recent call last)" in shown["error"]["traceback"]
    assert "raise ValueError(message)" in shown["error"]["traceback"]
    assert shown["started_at"] <= shown["ended_at"]
    finished = site.result("job_show", {"id": done.id})
    assert finished["state"] == "finished" and finished["result"] == "done"
    assert finished["progress"] == {"done": 4, "total": 4, "message": "steps"}

    retried = site.result("job_retry", {"id": failed.id})
    assert retried["state"] == "queued" and retried["attempts"] == 0
    assert site.offload.get_job(failed.id).state == "queued"
    status, body = site.call("job_retry", {"id": failed.id})
    assert status == 409 and body["error"]["__type"] == "Conflict Error"
    assert "only failed, canceled or scheduled jobs can be retried" in body["error"]["message"]
    status, body = site.call("job_cancel", {"id": done.id})
    assert status == 409 and body["error"] == {"__type": "Conflict Error",
                                               "message": f"job {done.id} is already finished"}


# -- job_cancel, job_clear ---------------------------------------------------------------------------------------
def test_job_cancel(site: Site) -> None:
    job = site.offload.enqueue(jobfuncs.noop)
    canceled = site.result("job_cancel", {"id": job.id})
    assert canceled["id"] == job.id and canceled["state"] == "canceled"
    assert site.offload.get_job(job.id).state == "canceled"
    status, body = site.call("job_cancel", {"id": job.id})
    assert status == 409 and body["error"]["message"] == f"job {job.id} is already canceled"


def test_job_clear_returns_the_cleared_queue_names(site: Site) -> None:
    site.offload.enqueue(jobfuncs.noop, queue="a")
    site.offload.enqueue(jobfuncs.noop, queue="b")
    kept = site.offload.enqueue(jobfuncs.noop, queue="c")
    assert site.result("job_clear", {"queues": ["a", "b"]}) == ["a", "b"]
    assert site.result("job_list", {"ids_only": True}) == [kept.id]
    assert site.result("job_clear") == ["c"]
    assert site.result("job_list") == []
    assert site.result("job_clear") == []


# -- job_enqueue -------------------------------------------------------------------------------------------------
def test_job_enqueue_sends_a_registered_task(site: Site) -> None:
    job = site.result("job_enqueue", {"task": "tests.echo", "args": [1, "two"], "kwargs": {"three": 3}})
    assert job["task"] == "tests.echo" and job["func"] is None
    assert job["queue"] == "named" and job["title"] == "tests.echo" and job["state"] == "queued"
    assert job["args"] == [1, "two"] and job["kwargs"] == {"three": 3} and job["duplicate"] is False
    site.run_worker("named")
    assert site.result("job_show", {"id": job["id"]})["result"] == {"args": [1, "two"], "kwargs": {"three": 3}}


def test_job_enqueue_options(site: Site) -> None:
    later = site.result("job_enqueue", {"task": "tests.echo", "queue": "other", "countdown": 3600,
                                        "task_id": "report-2024", "title": "Yearly report"})
    assert later["id"] == "report-2024" and later["queue"] == "other" and later["state"] == "scheduled"
    assert later["title"] == "Yearly report" and later["run_at"] > later["created_at"] + 3500
    again = site.result("job_enqueue", {"task": "tests.echo", "queue": "other", "task_id": "report-2024"})
    assert again["duplicate"] is True and again["id"] == "report-2024"
    assert site.result("job_retry", {"id": "report-2024"})["state"] == "queued"


@pytest.mark.parametrize(("data", "errors"), [
    ({}, {"task": ["Missing value"]}),
    ({"task": "os.system"}, {"task": ["no task named 'os.system' is registered in this process; import the module "
                                      "that defines it (worker --import MODULE, offload.tasks.imports, or the "
                                      "offload.tasks entry point)"]}),
    ({"task": "tests.jobfuncs:fail"}, {"task": ["no task named 'tests.jobfuncs:fail' is registered in this process; "
                                                "import the module that defines it (worker --import MODULE, "
                                                "offload.tasks.imports, or the offload.tasks entry point)"]}),
    ({"task": "-rf"}, {"task": ["Must be a task name such as ext.echo"]}),
    ({"task": "tests.echo", "args": {"a": 1}, "kwargs": [1]}, {"args": ["Must be a JSON array"],
                                                                "kwargs": ["Must be a JSON object"]}),
    ({"task": "tests.echo", "countdown": -5}, {"countdown": ["Must be a number between 0 and 31622400"]}),
    ({"task": "tests.echo", "queue": "no spaces"}, {"queue": ["Must be 1-100 letters, digits, '_', '-' or '.'"]}),
    ({"task": "tests.echo", "task_id": "a/b"}, {"task_id": ["Must be 1-200 letters, digits, '_', '-', '.' or ':'"]}),
])
def test_job_enqueue_validation(site: Site, data: dict[str, object], errors: dict[str, list[str]]) -> None:
    status, body = site.call("job_enqueue", data)
    assert status == 409
    assert body["error"] == {"__type": "Validation Error", **errors}
    assert site.offload.store.count() == 0


# -- queue_list, worker_list, schedule_list, help ----------------------------------------------------------------
def test_queue_list_counts_per_state(site: Site) -> None:
    assert site.result("queue_list") == []
    site.offload.enqueue(jobfuncs.noop, queue="a")
    site.offload.enqueue(jobfuncs.noop, queue="a")
    site.offload.cancel(site.offload.enqueue(jobfuncs.noop, queue="b").id)
    zero = dict.fromkeys(["scheduled", "queued", "started", "finished", "failed", "canceled"], 0)
    assert site.result("queue_list", token=READ) == [
        {"name": "a", "counts": {**zero, "queued": 2}, "total": 2, "paused": False, "paused_at": None,
         "concurrency_limit": None, "key_concurrency_limit": None},
        {"name": "b", "counts": {**zero, "canceled": 1}, "total": 1, "paused": False, "paused_at": None,
         "concurrency_limit": None, "key_concurrency_limit": None},
    ]


def test_worker_list_without_workers(site: Site) -> None:
    assert site.result("worker_list") == []
    status, body = site.call("worker_list", {"stale_after": 0})
    assert status == 409 and body["error"]["stale_after"] == ["Must be a number between 1 and 86400"]


def test_schedule_list_shows_ini_schedules(tmp_path: Path) -> None:
    from offload import Offload
    from offload.web import create_app

    ini = tmp_path / "offload.ini"
    ini.write_text(f"[offload]\nstore = sqlite:///{tmp_path}/s.db\napi.tokens = {READ}:read\n\n"
                   "[offload.schedule.nightly]\ncron = 0 3 * * *\nfunc = tests.jobfuncs:noop\nqueue = night\n")
    client = create_app(Offload(config=ini)).test_client()
    body = client.post("/api/3/action/schedule_list", json={}, headers={"Authorization": READ}).get_json()
    [row] = [r for r in body["result"] if r["name"] == "nightly"]
    assert row["cron"] == "0 3 * * *" and row["func"] == "tests.jobfuncs:noop" and row["queue"] == "night"
    assert row["last_run"] is None and row["next_run"] > 0 and row["spec"] == "cron 0 3 * * *"


def test_help_show_and_action_list(site: Site) -> None:
    assert site.result("help_show", {"name": "job_list"}).startswith("List jobs, oldest first")
    status, body = site.call("help_show", {"name": "nope"})
    assert status == 404 and body["error"]["message"] == "Not found: Action name not known: nope"
    names = site.result("action_list")
    assert set(READ_ACTIONS + WRITE_ACTIONS) <= set(names)


# -- OpenAPI -----------------------------------------------------------------------------------------------------
def test_openapi_document_describes_every_action(site: Site) -> None:
    doc = site.client.get("/api/3/openapi.json", headers={"Authorization": READ}).get_json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["apiToken"] == {"type": "apiKey", "in": "header",
                                                                  "name": "Authorization"}
    for name, act in registered_actions().items():
        item = doc["paths"][f"/api/3/action/{name}"]
        assert ("get" in item) == act.side_effect_free, name
        schema = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == set(act.params), name
        assert {"200", "400", "403", "404", "409"} <= set(item["post"]["responses"])
    job_list = doc["paths"]["/api/3/action/job_list"]["get"]["parameters"]
    assert {p["name"] for p in job_list} == {"queues", "state", "limit", "offset", "ids_only", "order", "id", "q",
                                           "args", "created_after", "created_before", "sort"}
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_registry_is_open_for_extension(site: Site) -> None:
    import tests.web.extra_actions  # noqa: F401  (registers the action "test_shout")

    assert site.result("test_shout", {"word": "hi"}, token=READ) == "HI!"
    status, body = site.call("test_shout", {})
    assert status == 409 and body["error"] == {"__type": "Validation Error", "word": ["Missing value"]}
    doc = site.client.get("/api/3/openapi.json", headers={"Authorization": READ}).get_json()
    assert "/api/3/action/test_shout" in doc["paths"]
