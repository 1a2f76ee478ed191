"""The Store contract of dead-worker detection (``reap_dead_workers``), run against every engine."""

from __future__ import annotations

import time
from collections.abc import Callable

from offload.jobs import FAILED, QUEUED, STARTED, WorkerInfo
from offload.stores import Store
from tests.stores.conftest import make_job
from tests.stores.test_contract import LEASE, claim_one, finish


def register(store: Store, worker_id: str, seen: float) -> None:
    store.register_worker(WorkerInfo(worker_id, "host", 1, ["default"], 1, seen, seen))


def test_a_silent_workers_jobs_go_back_at_once_with_worker_lost(store: Store) -> None:
    now = time.time()
    register(store, "dead", now - 60)
    register(store, "me", now - 60)
    register(store, "alive", now - 1)
    store.enqueue_many([make_job(max_attempts=3), make_job(), make_job()], now)
    lost = claim_one(store, worker="dead", now=now - 5)
    kept = claim_one(store, worker="alive", now=now - 5)
    orphan = claim_one(store, worker="unregistered", now=now - 5)
    changed = store.reap_dead_workers("me", now, now - 10)
    assert [(j.id, j.state) for j in changed] == [(lost.id, QUEUED)]
    got = store.get(lost.id)
    assert got.state == QUEUED and got.attempts == 1 and got.lease_token is None
    assert got.error["type"] == "WorkerLost" and got.errors[-1]["type"] == "WorkerLost"
    assert "dead" in got.error["message"]
    assert lost.lease_until > now, "requeued before its lease was over"
    assert store.get(kept.id).state == STARTED and store.get(orphan.id).state == STARTED
    assert [w.id for w in store.list_workers(0.0)] == ["alive", "me"], "the dead entry removed, mine kept"
    assert not finish(store, lost, '"late"'), "the dead worker's late result is fenced off"
    assert store.extend_leases("dead", {lost.id: lost.lease_token}, LEASE, now) == [lost.id]
    again = claim_one(store, worker="alive", now=now)
    assert again.id == lost.id and again.attempts == 2


def test_the_heartbeat_refreshes_the_callers_entry_and_it_is_never_reaped(store: Store) -> None:
    now = time.time()
    register(store, "me", now - 60)
    store.enqueue(make_job(), now)
    mine = claim_one(store, worker="me", now=now)
    assert store.reap_dead_workers("me", now, now - 10, ["me"]) == []
    assert [w.id for w in store.list_workers(now - 1)] == ["me"], "seen at now, not a minute ago"
    assert store.get(mine.id).state == STARTED
    assert store.reap_dead_workers("nobody", now, 0.0) == []


def test_workers_named_dead_are_reaped_whatever_their_heartbeat(store: Store) -> None:
    now = time.time()
    register(store, "gone", now)
    store.enqueue_many([make_job(), make_job()], now)
    first = claim_one(store, worker="gone", now=now)
    second = claim_one(store, worker="gone", now=now)
    assert store.reap_dead_workers("me", now, 0.0) == []
    changed = store.reap_dead_workers("me", now + 0.5, 0.0, ["gone"])
    assert sorted(j.id for j in changed) == sorted([first.id, second.id])
    assert all(j.state == QUEUED and j.error["type"] == "WorkerLost" for j in changed)
    assert store.list_workers(0.0) == []
    assert [claim_one(store, worker="w2").id for _ in range(2)] == [first.id, second.id], "back at their places"


def test_a_dead_workers_job_fails_when_its_attempts_are_spent(store: Store) -> None:
    now = time.time()
    register(store, "dead", now - 60)
    store.enqueue(make_job(max_attempts=1), now)
    job = claim_one(store, worker="dead", now=now - 30)
    changed = store.reap_dead_workers("me", now, now - 10)
    assert [(j.id, j.state) for j in changed] == [(job.id, FAILED)]
    got = store.get(job.id)
    assert got.state == FAILED and got.error["reason"] == "abandoned" and got.error["type"] == "WorkerLost"
    assert got.ended_at is not None


def test_reaping_is_per_site(make_store: Callable[..., Store]) -> None:
    now = time.time()
    here, there = make_store(), make_store("other-site-liveness")
    for store in (here, there):
        register(store, "dead", now - 60)
        store.enqueue(make_job(), now)
    theirs = claim_one(there, worker="dead", now=now)
    mine = claim_one(here, worker="dead", now=now)
    assert [j.id for j in here.reap_dead_workers("me", now, now - 10)] == [mine.id]
    assert there.get(theirs.id).state == STARTED
    assert [w.id for w in there.list_workers(0.0)] == ["dead"]
