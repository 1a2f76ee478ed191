"""Webhook deliveries end to end: real receivers on 127.0.0.1, real workers in subprocesses, SQLite."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable

import pytest

from offload import events
from offload.events import webhooks
from offload.jobs import FAILED, FINISHED
from offload.webhooks import WebhookVerificationError, verify
from tests.events.conftest import EventWorkers, Receiver
from tests.worker.conftest import wait_until

MakeWorkers = Callable[..., EventWorkers]
Receivers = Callable[..., Receiver]


def test_a_delivery_is_signed_and_verifies_and_tampering_fails(make_workers: MakeWorkers,
                                                              receivers: Receivers) -> None:
    w = make_workers()
    receiver = receivers()
    hook = webhooks.add(w.app, receiver.url, ["Package"], ["changed"], "the catalogue mirror")
    when = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.timezone.utc)
    [job] = events.notify(w.app, "Package", "changed", {"id": "p1", "modified": when})
    assert job.title == f"Package changed -> webhook {hook['id']}" and job.queue == "webhooks"
    assert events.notify(w.app, "Resource", "changed", {"id": "r1"}) == []  # filtered out
    assert w.start("webhooks", "--burst").wait(30) == 0

    [request] = receiver.requests
    body = verify(request.headers, request.body, hook["secret"])
    assert body["routing_key"] == "Package" and body["operation"] == "changed"
    assert body["payload"] == {"id": "p1", "modified": "2026-01-31T12:00:00+00:00"}
    assert body["id"] == job.args[0]["id"] and body["timestamp"].endswith("Z")
    assert request.headers["webhook-id"] == f"msg_{job.id}"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"

    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(request.headers, request.body.replace(b"p1", b"p2"), hook["secret"])
    stamp = int(request.headers["webhook-timestamp"])
    with pytest.raises(WebhookVerificationError, match="old"):
        verify(request.headers, request.body, hook["secret"], now=stamp + 301)
    assert verify(request.headers, request.body, hook["secret"], now=stamp + 299) == body
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(request.headers, request.body, webhooks.generate_secret())

    finished = w.wait_state(job.id, FINISHED)
    assert finished.result["status"] == 200
    [entry] = webhooks.deliveries(w.app, hook["id"])
    assert entry["outcome"] == "delivered" and entry["status"] == 200 and entry["event_id"] == body["id"]
    assert entry["response"] == '{"ok": true}' and entry["latency_ms"] >= 0


def test_a_receiver_failing_twice_gets_the_event_three_times_then_no_more(make_workers: MakeWorkers,
                                                                         receivers: Receivers) -> None:
    w = make_workers()
    receiver = receivers(statuses=[500, 503])
    hook = webhooks.add(w.app, receiver.url)
    [job] = events.notify(w.app, "Package", "new", {"id": "p2"})
    w.start("webhooks")
    done = w.wait_state(job.id, FINISHED, FAILED)
    assert done.state == FINISHED and done.attempts == 3
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1, "one message id on every retry"
    assert all(verify(r.headers, r.body, hook["secret"])["id"] == done.args[0]["id"] for r in receiver.requests)
    log = webhooks.deliveries(w.app, hook["id"])
    assert [(e["attempt"], e["outcome"], e["status"]) for e in log] == [
        (3, "delivered", 200), (2, "retrying", 503), (1, "retrying", 500)]
    assert len(receiver.requests) == 3  # the job is finished: nothing is left to send
    assert webhooks.health(w.app, hook["id"])["failures"] == 0


def test_retry_after_is_respected(make_workers: MakeWorkers, receivers: Receivers) -> None:
    w = make_workers({"offload.webhooks.max_retry_delay": "5"})  # Retry-After is capped at the longest delay
    receiver = receivers(statuses=[429], headers={"Retry-After": "1"})
    webhooks.add(w.app, receiver.url)
    [job] = events.notify(w.app, "Package", "new", {"id": "p3"})
    w.start("webhooks")
    assert w.wait_state(job.id, FINISHED, FAILED).state == FINISHED
    first, second = receiver.requests
    assert second.at - first.at >= 0.9, "the retry waited for Retry-After, not the 50 ms backoff"


def test_a_410_is_not_retried_and_disables_the_webhook_other_4xx_only_fail(make_workers: MakeWorkers,
                                                                           receivers: Receivers) -> None:
    w = make_workers()
    gone, bad = receivers(default=410), receivers(default=400)
    gone_hook, bad_hook = webhooks.add(w.app, gone.url), webhooks.add(w.app, bad.url)
    jobs = events.notify(w.app, "Package", "deleted", {"id": "p4"})
    w.start("webhooks")
    for job in jobs:
        failed = w.wait_state(job.id, FAILED, FINISHED)
        assert failed.state == FAILED and failed.attempts == 1
        assert failed.error["type"] == "offload.events.webhooks.DeliveryFailed" and failed.error["retryable"] is False
    assert len(gone.requests) == 1 and len(bad.requests) == 1
    gone_now, bad_now = webhooks.get(w.app, gone_hook["id"]), webhooks.get(w.app, bad_hook["id"])
    assert not gone_now["active"] and "410 Gone" in gone_now["disabled_reason"]
    assert bad_now["active"]
    assert [j.meta["subscriber"] for j in events.notify(w.app, "Package", "deleted", {})] == \
        [f"webhook:{bad_hook['id']}"]


def test_a_receiver_that_hangs_times_out(make_workers: MakeWorkers, receivers: Receivers) -> None:
    w = make_workers({"offload.webhooks.timeout": "0.5", "offload.webhooks.max_attempts": "2"})
    receiver = receivers(hang=True)
    hook = webhooks.add(w.app, receiver.url)
    [job] = events.notify(w.app, "Package", "changed", {"id": "p5"})
    started = time.monotonic()
    w.start("webhooks")
    failed = w.wait_state(job.id, FAILED, FINISHED)
    assert failed.state == FAILED and failed.attempts == 2 and "timed out" in failed.error["message"]
    assert failed.error["reason"] == "exception", "httpx's timeout, not the job's hard limit"
    assert time.monotonic() - started < 15
    assert len(receiver.requests) == 2
    assert [e["outcome"] for e in webhooks.deliveries(w.app, hook["id"])] == ["failed", "retrying"]


def test_fan_out_a_failing_subscriber_does_not_hold_up_the_others(make_workers: MakeWorkers,
                                                                 receivers: Receivers) -> None:
    w = make_workers({"offload.webhooks.max_attempts": "3"})
    good_a, good_b, failing = receivers(), receivers(), receivers(default=500)
    for receiver in (good_a, failing, good_b):
        webhooks.add(w.app, receiver.url)
    published = [events.notify(w.app, "Package", "changed", {"n": n}) for n in range(20)]
    event_ids = {jobs[0].args[0]["id"] for jobs in published}
    assert all(len(jobs) == 3 for jobs in published)
    w.start("webhooks", "--threads", "4")
    for job in [job for jobs in published for job in jobs]:
        w.wait_state(job.id, FINISHED, FAILED)
    for good in (good_a, good_b):
        received = Counter(event["id"] for event in good.events())
        assert set(received) == event_ids and max(received.values()) == 1
    assert Counter(event["id"] for event in failing.events()) == dict.fromkeys(event_ids, 3)


def test_consecutive_failed_deliveries_disable_the_webhook(make_workers: MakeWorkers, receivers: Receivers) -> None:
    w = make_workers({"offload.webhooks.max_attempts": "1", "offload.webhooks.disable_after": "2"})
    receiver = receivers(default=502)
    hook = webhooks.add(w.app, receiver.url)
    jobs = [job for n in range(3) for job in events.notify(w.app, "Package", "changed", {"n": n})]
    proc = w.start("webhooks")
    states = [w.wait_state(job.id, FAILED, FINISHED) for job in jobs]
    assert [s.state for s in states] == [FAILED, FAILED, FINISHED]
    assert states[2].result == {"skipped": "the webhook is disabled"}
    assert len(receiver.requests) == 2
    record = webhooks.get(w.app, hook["id"])
    assert not record["active"] and record["disabled_reason"].startswith("2 consecutive deliveries failed")
    wait_until(lambda: f"ERROR [offload.webhooks] Webhook {hook['id']}" in w.log(proc))
    assert "secret" not in w.log(proc).lower() and hook["secret"] not in w.log(proc)


def test_removed_webhooks_are_skipped_and_rotated_secrets_both_sign(make_workers: MakeWorkers,
                                                                   receivers: Receivers) -> None:
    w = make_workers()
    kept, dropped = receivers(), receivers()
    hook = webhooks.add(w.app, kept.url)
    gone = webhooks.add(w.app, dropped.url)
    old_secret = hook["secret"]
    new = webhooks.rotate_secret(w.app, hook["id"], overlap=3600)
    jobs = events.notify(w.app, "Package", "changed", {"id": "p6"})
    webhooks.remove(w.app, gone["id"])
    assert w.start("webhooks", "--burst").wait(30) == 0
    [request] = kept.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    assert verify(request.headers, request.body, old_secret) == verify(request.headers, request.body, new["secret"])
    assert dropped.requests == []
    assert {w.job(j.id).state for j in jobs} == {FINISHED}
