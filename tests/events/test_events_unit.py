"""Events, origins, signing and the subscription records without workers (memory store, milliseconds)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest

import offload
from offload import Offload, events
from offload.errors import SerializationError
from offload.events import webhooks
from offload.events.delivery import retry_after_seconds
from offload.webhooks import WebhookVerificationError, verify


@pytest.fixture
def app() -> Offload:
    return Offload(store=f"memory://{uuid.uuid4().hex}", webhooks__allowed_hosts="127.0.0.1")


def test_patterns() -> None:
    assert events.matches(["*"], "Package") and events.matches(None, "anything")
    assert events.matches(["Package", "Resource*"], "ResourceView")
    assert not events.matches(["package"], "Package"), "case-sensitive"
    assert not events.matches([], "Package")


def test_notify_validates_and_finds_no_subscribers(app: Offload) -> None:
    assert events.notify(app, "Package", "changed", {"id": 1}) == []
    with pytest.raises(SerializationError):
        events.notify(app, "Package", "changed", {"f": object()})
    with pytest.raises(ValueError, match="operation"):
        events.notify(app, "Package", "two words", {})


def test_fan_out_is_one_enqueue_many(app: Offload, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        webhooks.add(app, f"http://127.0.0.1:{9000 + n}/", description=str(n))
    webhooks.add(app, "http://127.0.0.1:9999/", routing_keys=["Resource"])
    batches: list[int] = []
    original = app.enqueue_many

    def counting(calls: list[object], **options: object) -> list[offload.Job]:
        calls = list(calls)
        batches.append(len(calls))
        return original(calls, **options)

    monkeypatch.setattr(app, "enqueue_many", counting)
    jobs = events.notify(app, "Package", "new", {"id": "p"})
    assert batches == [3] and len(jobs) == 3
    assert {job.args[0]["id"] for job in jobs} == {jobs[0].meta["event_id"]}
    assert all(job.retry and job.retry["delay"] == 30.0 for job in jobs)
    assert jobs[0].max_attempts == 12 and jobs[0].timeout == 40.0


def test_origin_inside_a_job_and_a_delivery() -> None:
    assert events.current_origin() == []
    event = events.Event("e", 0.0, "Package", "changed", None, ("user:a",))
    with events.delivering(event, "consumer:b"):
        assert events.current_origin() == ["user:a", "consumer:b"]
        assert events.current_event() is event
    assert events.parse_origin("a, b ,c") == ["a", "b", "c"] and events.format_origin(["a", "b"]) == "a, b"


def test_sign_matches_the_standard_webhooks_scheme() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"a":1}'
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert webhooks.sign(secret, "msg_1", 1700000000, body) == f"v1,{expected}"
    plain = webhooks.sign("not-base64-secret!", "msg_1", 1700000000, body)
    assert plain == "v1," + base64.b64encode(
        hmac.new(b"not-base64-secret!", b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()


def test_verify_headers_rotation_and_failures() -> None:
    old, new = webhooks.generate_secret(), webhooks.generate_secret()
    body = b'{"id":"e1"}'
    headers = {"Webhook-Id": "msg_1", "Webhook-Timestamp": "1700000000",
               "Webhook-Signature": f"{webhooks.sign(new, 'msg_1', 1700000000, body)} "
                                    f"{webhooks.sign(old, 'msg_1', 1700000000, body)}"}
    for secret in (old, new, [webhooks.generate_secret(), new]):
        assert verify(headers, body, secret, now=1700000100) == {"id": "e1"}
    with pytest.raises(WebhookVerificationError, match="in the future"):
        verify(headers, body, new, now=1699999000)
    with pytest.raises(WebhookVerificationError, match="missing header webhook-signature"):
        verify({k: v for k, v in headers.items() if k != "Webhook-Signature"}, body, new)
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify({**headers, "Webhook-Timestamp": "soon"}, body, new)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify({**headers, "Webhook-Id": "msg_2"}, body, new, now=1700000000)


def test_signing_secrets_drop_the_previous_one_when_it_expires(app: Offload) -> None:
    hook = webhooks.add(app, "https://hooks.example.org/x")
    rotated = webhooks.rotate_secret(app, hook["id"], overlap=60)
    now = rotated["updated_at"]
    assert webhooks.signing_secrets(rotated, now) == [rotated["secret"], hook["secret"]]
    assert webhooks.signing_secrets(rotated, now + 61) == [rotated["secret"]]


def test_subscription_records(app: Offload) -> None:
    hook = webhooks.add(app, "https://hooks.example.org/x?token=abc", secret="s" * 20)
    assert hook["secret"] == "s" * 20
    view = webhooks.public_view(app, webhooks.get(app, hook["id"]))
    assert view["secret"] == "****ssss" and "s" * 20 not in str(view)
    assert webhooks.safe_url(hook["url"]) == "https://hooks.example.org/..."
    with pytest.raises(ValueError, match="16-200 characters"):
        webhooks.add(app, "https://hooks.example.org/", secret="short")
    with pytest.raises(webhooks.WebhookNotFound):
        webhooks.get(app, "nothex!")
    assert webhooks.remove(app, hook["id"])["id"] == hook["id"]
    assert webhooks.list_all(app) == []


def test_envelope_is_plain_json() -> None:
    import datetime as dt
    import decimal

    event = events.Event("e1", 1700000000.5, "Package", "changed",
                         {"d": dt.date(2026, 1, 2), "n": decimal.Decimal("1.5"), "b": b"\x00", "t": (1, 2)})
    body = webhooks.envelope(event).decode()
    assert body == ('{"id":"e1","timestamp":"2023-11-14T22:13:20.500000Z","routing_key":"Package",'
                    '"operation":"changed","payload":{"d":"2026-01-02","n":"1.5","b":"AA==","t":[1,2]}}')


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("120", 0) == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert retry_after_seconds("soon", 0) is None and retry_after_seconds(None, 0) is None


def test_public_api_exports() -> None:
    assert {"notify", "Consumer", "Client"} <= set(offload.__all__)


def test_an_async_consumer_keeps_its_delivery_context() -> None:
    from offload.testing import run_pending

    app = Offload(store=f"memory://{uuid.uuid4().hex}", consumers="tests.events.consumer_classes:AsyncOrigin")
    [job] = events.notify(app, "Package", "new", {}, origin="user:a")
    [done] = run_pending(app)
    assert done.state == "finished" and done.queue == "consumer.async-origin"
    assert done.result == {"event": job.meta["event_id"], "origin": ["user:a", "consumer:async-origin"]}
