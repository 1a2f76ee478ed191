"""Request bodies as real clients send them, against ``offload serve`` in a subprocess: the curl binary (``-d``,
``--data-urlencode``, ``-H 'Content-Type: application/json'``) and the requests library (``json=``, ``data=``).
Bad input and unknown parameters change nothing; destructive actions act only on what the request names, and
each is logged with who called it (never the token)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from offload.events import webhooks
from tests import jobfuncs
from tests.web.conftest import ADMIN, Site, start_server


@pytest.fixture
def served(sqlite_site: Site) -> Iterator[str]:
    _, base = start_server(sqlite_site)
    yield f"{base}/api/3/action"


def snapshot(site: Site) -> tuple[Any, ...]:
    """Everything the API can change: every job of the site, every webhook."""
    jobs = sorted(json.dumps(j.to_dict(), sort_keys=True) for j in site.offload.store.list(limit=100_000))
    hooks = sorted(json.dumps(h, sort_keys=True) for h in webhooks.list_all(site.offload))
    return tuple(jobs), tuple(hooks)


def curl(*args: str) -> tuple[int, dict[str, Any]]:
    """Run the curl binary; its status code and JSON body."""
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                         timeout=30, check=True)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(body)


def seed(site: Site) -> dict[str, list[str]]:
    return {queue: [site.offload.enqueue(jobfuncs.noop, queue=queue).id for _ in range(2)]
            for queue in ("qa", "qb", "mail")}


def waiting(site: Site, queue: str) -> int:
    return site.offload.store.count([queue], ["queued", "scheduled"])


def server_log(site: Site) -> str:
    return "".join(p.read_text() for p in sorted(site.tmp.glob("proc-*.log")))


# -- the examples of docs/api.md, as curl sends them ----------------------------------------------------------------
@pytest.mark.parametrize("how", [
    ["-d", '{"queues": ["qa"]}'],                                            # form content type, JSON body
    ["--data-urlencode", '{"queues": ["qa"]}'],                              # a form of one key holding JSON
    ["-H", "Content-Type: application/json", "-d", '{"queues": ["qa"]}'],
    ["-d", "queues=qa"],
])
def test_curl_job_clear_clears_only_the_queue_named(sqlite_site: Site, served: str, how: list[str]) -> None:
    seed(sqlite_site)
    status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", *how, f"{served}/job_clear")
    assert (status, body["result"]) == (200, ["qa"])
    assert (waiting(sqlite_site, "qa"), waiting(sqlite_site, "qb"), waiting(sqlite_site, "mail")) == (0, 2, 2)


@pytest.mark.parametrize("how", [
    ["-d", '{"queue": ["mail"]}'],                                           # the typo of the issue
    ["-H", "Content-Type: application/json", "-d", '{"Queues": ["mail"]}'],
    ["-d", "queue=mail"],
    ["-d", '{"queues": []}'],                                                # an empty list is not "all"
    ["-d", "queues="],
    ["-d", '{"queues": ["nosuchqueue"]}'],
    ["-d", '{"queues": ["mail"]'],                                           # truncated JSON
    ["-d", "not a form"],
    ["-H", "Content-Type: application/xml", "-d", "<queues>mail</queues>"],
])
def test_curl_job_clear_with_bad_input_clears_nothing(sqlite_site: Site, served: str, how: list[str]) -> None:
    seed(sqlite_site)
    before = snapshot(sqlite_site)
    status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", *how, f"{served}/job_clear")
    assert status in (400, 409) and body["success"] is False, body
    assert snapshot(sqlite_site) == before


def test_a_typo_is_named_with_a_suggestion(sqlite_site: Site, served: str) -> None:
    status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", "-d", '{"queue": ["mail"]}',
                        f"{served}/job_clear")
    assert status == 409
    assert body["error"] == {"__type": "Validation Error", "queue": ["Unknown parameter: did you mean queues?"]}
    status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", "-d", "frobnicate=1", f"{served}/job_show")
    assert body["error"] == {"__type": "Validation Error", "frobnicate": ["Unknown parameter: job_show takes id"],
                             "id": ["Missing value"]}


def test_curl_job_cancel_and_retry_with_json_bodies(sqlite_site: Site, served: str) -> None:
    job = sqlite_site.offload.enqueue(jobfuncs.noop, title="Cancel me")
    for how in (["-d"], ["--data-urlencode"]):
        status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", *how, json.dumps({"id": job.id}),
                            f"{served}/job_cancel" if how == ["-d"] else f"{served}/job_retry")
        assert status == 200, body
    assert sqlite_site.offload.get_job(job.id).state == "queued"  # canceled, then queued again
    log = server_log(sqlite_site)
    assert f'job_cancel by token #1 (admin) from 127.0.0.1 (API): canceled job {job.id} ("Cancel me") on queue ' \
           '"default", which was queued' in log


def test_a_post_with_parameters_in_its_url_is_refused(sqlite_site: Site, served: str) -> None:
    seed(sqlite_site)
    before = snapshot(sqlite_site)
    status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", f"{served}/job_clear?queues=qa")
    assert status == 400 and "parameters in the URL of a POST are not read (queues)" in body["error"]["message"]
    assert snapshot(sqlite_site) == before


def test_a_bare_job_clear_clears_every_queue_and_says_who_did_it(sqlite_site: Site, served: str) -> None:
    # CKAN's job_clear without queues clears them all: kept, for a well-formed request that names no queue.
    seed(sqlite_site)
    status, body = curl("-X", "POST", "-H", f"Authorization: {ADMIN}", f"{served}/job_clear")
    assert status == 200 and body["result"] == ["mail", "qa", "qb"]
    assert sqlite_site.offload.store.count(states=["queued"]) == 0
    log = server_log(sqlite_site)
    assert ("job_clear by token #1 (admin) from 127.0.0.1 (API): deleted 6 waiting job(s) of queue(s) 'mail', 'qa', "
            "'qb'") in log
    assert ADMIN not in log


# -- requests -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"json": {"queues": ["qa"]}},
    {"data": {"queues": "qa"}},
    {"data": [("queues", "qa")]},
    {"data": json.dumps({"queues": ["qa"]})},                  # a str body: requests sends no Content-Type
    {"data": json.dumps({"queues": ["qa"]}).encode()},
])
def test_requests_job_clear(sqlite_site: Site, served: str, kwargs: dict[str, Any]) -> None:
    seed(sqlite_site)
    response = requests.post(f"{served}/job_clear", headers={"Authorization": ADMIN}, timeout=10, **kwargs)
    assert response.status_code == 200 and response.json()["result"] == ["qa"]
    assert (waiting(sqlite_site, "qa"), waiting(sqlite_site, "qb")) == (0, 2)


def test_requests_form_with_two_queues_and_a_misspelt_key(sqlite_site: Site, served: str) -> None:
    seed(sqlite_site)
    response = requests.post(f"{served}/job_clear", headers={"Authorization": ADMIN}, timeout=10,
                             data={"queues": ["qa", "qb"]})
    assert response.json()["result"] == ["qa", "qb"] and waiting(sqlite_site, "mail") == 2
    before = snapshot(sqlite_site)
    response = requests.post(f"{served}/job_clear", headers={"Authorization": ADMIN}, timeout=10,
                             data={"queus": "mail"})
    assert response.status_code == 409 and "queus" in response.json()["error"]
    assert snapshot(sqlite_site) == before


def test_webhook_delete_needs_the_full_id_and_is_logged(sqlite_site: Site, served: str) -> None:
    record = webhooks.add(sqlite_site.offload, "https://hooks.example.org/secret-path/abc", ["Package"])
    before = snapshot(sqlite_site)
    response = requests.post(f"{served}/webhook_delete", headers={"Authorization": ADMIN}, timeout=10,
                             json={"id": record["id"][:6]})
    assert response.status_code == 409 and "full id" in response.json()["error"]["id"][0]
    assert snapshot(sqlite_site) == before
    response = requests.post(f"{served}/webhook_delete", headers={"Authorization": ADMIN}, timeout=10,
                             json={"id": record["id"]})
    assert response.status_code == 200 and webhooks.list_all(sqlite_site.offload) == []
    log = server_log(sqlite_site)
    assert (f"webhook_delete by token #1 (admin) from 127.0.0.1 (API): deleted webhook {record['id']} "
            "(https://hooks.example.org/...) and its delivery log") in log
    assert "secret-path" not in log



def test_a_clear_from_the_dashboard_is_logged_with_its_caller(sqlite_site: Site,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from tests.web.test_dashboard import csrf, login

    seed(sqlite_site)
    assert login(sqlite_site.client, ADMIN).status_code == 302
    page = sqlite_site.client.get("/").text
    with caplog.at_level("WARNING", logger="offload.web.audit"):
        sqlite_site.client.post("/queues/qa/clear", data={"csrf_token": csrf(page)})
    assert waiting(sqlite_site, "qa") == 0 and waiting(sqlite_site, "qb") == 2
    assert [r.getMessage() for r in caplog.records if r.name == "offload.web.audit"] == [
        "job_clear by token #1 (admin) from 127.0.0.1 (dashboard): deleted 2 waiting job(s) of queue(s) 'qa'"]
