"""The webhook actions through the HTTP API (Flask test client over a real SQLite store), with a real burst
worker delivering ``webhook_test``'s event to a real receiver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from offload import Offload, events
from offload.events import webhooks
from tests.events.conftest import FAST, EventWorkers, Receiver

pytest.importorskip("flask")

from flask.testing import FlaskClient

import offload.web.webhook_actions  # noqa: F401  (registers the actions; see ACTION_MODULES)
from offload.web import create_app

MakeWorkers = Callable[..., EventWorkers]
Receivers = Callable[..., Receiver]
ADMIN, READ = "admin-token-for-webhooks", "read-token-for-webhooks"


class Api:
    def __init__(self, w: EventWorkers) -> None:
        self.site = Offload(store=w.url, site_id=w.site, api__tokens=f"{ADMIN}:admin,{READ}:read",
                            **{k.removeprefix("offload.").replace(".", "__"): v for k, v in FAST.items()})
        self.client: FlaskClient = create_app(self.site, {"TESTING": True}).test_client()

    def call(self, name: str, params: dict[str, Any] | None = None, token: str = ADMIN) -> tuple[int, Any]:
        response = self.client.post(f"/api/3/action/{name}", json=params or {}, headers={"Authorization": token})
        body = response.get_json()
        return response.status_code, body["result"] if body["success"] else body["error"]


def test_webhook_actions(make_workers: MakeWorkers, receivers: Receivers) -> None:
    w = make_workers()
    api = Api(w)
    receiver = receivers()

    status, created = api.call("webhook_create", {"url": receiver.url + "?token=abc", "routing_keys": ["Package"],
                                                  "description": "mirror"})
    assert status == 200 and created["secret"].startswith("whsec_") and created["routing_keys"] == ["Package"]
    assert created["operations"] == ["*"] and created["active"] is True
    hook_id, secret = created["id"], created["secret"]

    status, listed = api.call("webhook_list", token=READ)
    assert status == 200 and [h["id"] for h in listed] == [hook_id]
    assert listed[0]["url"] == f"http://127.0.0.1:{receiver.port}/...", "the read role sees no path or query"
    assert secret not in str(listed) and listed[0]["secret"] == f"whsec_****{secret[-4:]}"
    status, shown = api.call("webhook_show", {"id": hook_id})
    assert status == 200 and shown["url"] == receiver.url + "?token=abc" and secret not in str(shown)
    assert shown["health"] == {}

    status, job = api.call("webhook_test", {"id": hook_id})
    assert status == 200 and job["queue"] == "webhooks" and job["title"] == f"offload test -> webhook {hook_id}"
    assert w.start("webhooks", "--burst").wait(30) == 0
    [request] = receiver.requests
    assert webhooks.verify(request.headers, request.body, secret)["operation"] == "test"
    status, log = api.call("webhook_delivery_list", {"id": hook_id, "limit": 5}, token=READ)
    assert status == 200 and [(e["outcome"], e["status"], e["test"]) for e in log] == [("delivered", 200, True)]

    assert api.call("webhook_delete", {"id": hook_id}, token=READ)[0] == 403
    assert api.call("webhook_delete", {"id": hook_id}) == (200, None)
    assert events.notify(w.app, "Package", "changed", {}) == []
    status, error = api.call("webhook_show", {"id": hook_id})
    assert status == 404 and error["__type"] == "Not Found Error"


def test_webhook_create_validation(make_workers: MakeWorkers) -> None:
    api = Api(make_workers())
    status, error = api.call("webhook_create", {"url": "http://10.0.0.1/hook"})
    assert status == 409 and "refused to deliver to 10.0.0.1" in error["url"][0]
    status, error = api.call("webhook_create", {})
    assert status == 409 and error["url"] == ["Missing value"]
    status, error = api.call("webhook_create", {"url": "https://example.org/", "secret": "short"})
    assert status == 409 and "16-200 characters" in error["secret"][0]
    status, error = api.call("webhook_create", {"url": "https://example.org/", "routing_keys": ["two words"]})
    assert status == 409 and "routing_keys" in error
    assert api.call("webhook_create", {"url": "https://example.org/"}, token=READ)[0] == 403
    assert api.call("webhook_delivery_list", {"id": "0123456789abcdef"})[0] == 404
