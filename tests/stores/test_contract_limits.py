"""The Store contract for concurrency limits (issue 22, item 3), run unchanged against every engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from offload.jobs import QUEUED, Outcome, WorkerInfo
from offload.stores import Store
from tests.stores.conftest import make_job
from tests.stores.test_contract import LEASE
from tests.stores.test_contract_flow import claim_ids


def fill(store: Store, queue: str, n: int, now: float) -> list[str]:
    jobs = [make_job(queue, now=now + i * 1e-3, max_attempts=5) for i in range(n)]
    store.enqueue_many(jobs, now)
    return [j.id for j in jobs]


def test_a_limited_queue_starts_no_more_than_its_limit(store: Store) -> None:
    now = time.time()
    ids = fill(store, "lim", 5, now)
    store.set_limit("lim", 2)
    assert store.limits() == {"lim": 2}
    assert claim_ids(store, ["lim"], 5, now) == ids[:2]
    assert claim_ids(store, ["lim"], 5, now) == [], "a second claimer gets nothing while two run"
    assert store.wait_for_work(["lim"], 0.05) is False, "a queue at its limit is no work to wait for"


def test_other_queues_are_claimed_past_a_full_one(store: Store) -> None:
    now = time.time()
    limited = fill(store, "lim", 3, now)
    free = fill(store, "free", 2, now)
    store.set_limit("lim", 1)
    assert claim_ids(store, ["lim", "free"], 4, now) == limited[:1] + free


def test_settle_cancel_and_delete_release_the_limit(store: Store) -> None:
    now = time.time()
    ids = fill(store, "lim", 5, now)
    store.set_limit("lim", 1)
    job = store.claim(["lim"], "w1", LEASE, 5, now)[0]
    assert store.settle([Outcome(job.id, job.lease_token, "finish", result_json="1")], now) == [True]
    assert claim_ids(store, ["lim"], 5, now) == [ids[1]]
    store.cancel(ids[1], now)
    assert claim_ids(store, ["lim"], 5, now) == [ids[2]]
    store.delete(ids[2])
    assert claim_ids(store, ["lim"], 5, now) == [ids[3]]


def test_an_expired_lease_and_a_dead_worker_release_the_limit(store: Store) -> None:
    now = time.time()
    ids = fill(store, "lim", 3, now)
    store.set_limit("lim", 1)
    assert claim_ids(store, ["lim"], 3, now) == ids[:1]
    later = now + LEASE + 1
    assert [j.id for j in store.requeue_expired(later)] == ids[:1]
    store.register_worker(WorkerInfo("dead", "host", 1, ["lim"], 1, later - 60, later - 60))
    assert [j.id for j in store.claim(["lim"], "dead", LEASE, 3, later)] == ids[:1], "it keeps its place"
    assert claim_ids(store, ["lim"], 3, later) == [], "full again"
    assert [j.id for j in store.reap_dead_workers("me", later, later - 10)] == ids[:1]
    assert claim_ids(store, ["lim"], 3, later) == ids[:1]


def test_a_limit_changes_at_run_time_and_is_per_site(make_store: Callable[..., Store]) -> None:
    mine, other = make_store(), make_store("other-" + make_store().site_id)
    now = time.time()
    ids = fill(mine, "lim", 4, now)
    mine.set_limit("lim", 1)
    assert make_store().limits() == {"lim": 1} and other.limits() == {}
    assert claim_ids(mine, ["lim"], 4, now) == ids[:1]
    mine.set_limit("lim", 3)
    assert claim_ids(mine, ["lim"], 4, now) == ids[1:3]
    mine.set_limit("lim", None)
    assert mine.limits() == {}
    assert claim_ids(mine, ["lim"], 4, now) == ids[3:]
    theirs = fill(other, "lim", 2, now)
    assert claim_ids(other, ["lim"], 4, now) == theirs


def test_a_settle_wakes_a_worker_waiting_on_a_full_queue(make_store: Callable[..., Store]) -> None:
    waiter, admin = make_store(), make_store()
    now = time.time()
    ids = fill(admin, "lim", 2, now)
    admin.set_limit("lim", 1)
    running = admin.claim(["lim"], "w0", LEASE, 1, now)[0]
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(waiter.wait_and_claim(["lim"], "w1", LEASE, 1, 20.0)))
    thread.start()
    try:
        time.sleep(0.3)  # the waiter is blocked on a full queue holding work (not a synchronisation)
        assert thread.is_alive() and admin.get(ids[1]).state == QUEUED
        admin.settle([Outcome(running.id, running.lease_token, "finish", result_json="1")], time.time())
        thread.join(5.0)
        assert not thread.is_alive()
    finally:
        thread.join(25.0)
    claimed = got[0]
    assert isinstance(claimed, list) and [j.id for j in claimed] == [ids[1]]


# -- per-key limits -------------------------------------------------------------------------------------
def keyed(store: Store, queue: str, keys: list[str | None], now: float) -> list[str]:
    jobs = [make_job(queue, now=now + i * 1e-3, max_attempts=5, limit_key=key) for i, key in enumerate(keys)]
    store.enqueue_many(jobs, now)
    assert [store.get(j.id).limit_key for j in jobs] == keys
    return [j.id for j in jobs]


def test_a_key_limit_passes_over_jobs_whose_key_is_full(store: Store) -> None:
    now = time.time()
    ids = keyed(store, "k", ["a", "a", "b", None, "a", "b", "c"], now)
    store.set_key_limit("k", 1)
    assert store.key_limits() == {"k": 1}
    assert claim_ids(store, ["k"], 10, now) == [ids[0], ids[2], ids[3], ids[6]]
    assert claim_ids(store, ["k"], 10, now) == []
    assert store.wait_for_work(["k"], 0.05) is False, "jobs whose keys are full are no work to wait for"
    first = store.get(ids[0])
    assert store.settle([Outcome(first.id, first.lease_token, "finish", result_json="1")], now) == [True]
    assert claim_ids(store, ["k"], 10, now) == [ids[1]], "the next job of key a, in its place"


def test_key_and_queue_limits_together_and_released(store: Store) -> None:
    now = time.time()
    ids = keyed(store, "k", ["a", "a", "b", "c"], now)
    store.set_key_limit("k", 1)
    store.set_limit("k", 2)
    assert claim_ids(store, ["k"], 10, now) == [ids[0], ids[2]]
    store.cancel(ids[0], now)
    assert claim_ids(store, ["k"], 10, now) == [ids[1]]
    store.requeue_expired(now + LEASE + 1)
    # Both back (Redis puts each requeued job at the head of its queue, so their order is not the contract's)
    assert sorted(claim_ids(store, ["k"], 10, now + LEASE + 2)) == sorted([ids[1], ids[2]])
    store.set_key_limit("k", None)
    store.set_limit("k", None)
    assert store.key_limits() == {}
    assert claim_ids(store, ["k"], 10, now + LEASE + 2) == [ids[3]]


def test_a_key_limit_set_while_jobs_run_counts_them(store: Store) -> None:
    now = time.time()
    ids = keyed(store, "k", ["a", "a", "b"], now)
    got = store.claim(["k"], "w1", LEASE, 1, now)
    assert [(j.id, j.limit_key) for j in got] == [(ids[0], "a")], "a claimed job carries its key"
    store.set_key_limit("k", 1)
    assert claim_ids(store, ["k"], 10, now) == [ids[2]]
    running = store.get(ids[0])
    store.settle([Outcome(running.id, running.lease_token, "finish", result_json="1")], now)
    assert claim_ids(store, ["k"], 10, now) == [ids[1]]
