"""The Store contract for flow control (issue 22): priorities within a queue, paused queues and snoozed jobs, run
unchanged against every engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from offload.jobs import QUEUED, SCHEDULED, Outcome
from offload.stores import Store
from tests.stores.conftest import make_job
from tests.stores.test_contract import LEASE, claim_one


def claim_ids(store: Store, queues: list[str], count: int, now: float | None = None) -> list[str]:
    jobs = store.claim(queues, "w1", LEASE, count, time.time() if now is None else now)
    return [j.id for j in jobs]


# -- priority -------------------------------------------------------------------------------------------
def test_priority_orders_a_queue_and_equal_priorities_keep_fifo(store: Store) -> None:
    now = time.time()
    prios = [5, 0, 9, 5, 0, 1, 9, 1]
    jobs = [make_job(now=now + i * 1e-3, priority=p) for i, p in enumerate(prios)]
    store.enqueue_many(jobs[:4], now)
    for job in jobs[4:]:
        store.enqueue(job, now)
    assert [store.get(j.id).priority for j in jobs] == prios
    expected = [j.id for j in sorted(jobs, key=lambda j: (j.priority, jobs.index(j)))]
    assert claim_ids(store, ["default"], 3) + claim_ids(store, ["default"], 10) == expected


def test_priority_never_reorders_queues(store: Store) -> None:
    now = time.time()
    low_first = make_job("first", now=now, priority=9)
    urgent_second = make_job("second", now=now, priority=0)
    store.enqueue_many([urgent_second, low_first], now)
    assert claim_ids(store, ["first", "second"], 1) == [low_first.id]
    assert claim_ids(store, ["first", "second"], 1) == [urgent_second.id]


def test_promoted_scheduled_jobs_keep_their_priority(store: Store) -> None:
    now = time.time()
    queued_low = make_job(now=now, priority=7)
    due_high = make_job(now=now, run_at=now + 5, priority=2)
    store.enqueue_many([queued_low, due_high], now)
    assert store.get(due_high.id).state == SCHEDULED
    assert claim_ids(store, ["default"], 2, now + 10) == [due_high.id, queued_low.id]


def test_released_and_requeued_jobs_keep_priority_and_place(store: Store) -> None:
    now = time.time()
    a, b, c = (make_job(now=now + i * 1e-3, priority=3, max_attempts=5) for i in range(3))
    low = make_job(now=now, priority=4)
    store.enqueue_many([a, b, c, low], now)
    first = claim_one(store, now=now)
    assert first.id == a.id
    assert store.settle([Outcome(first.id, first.lease_token, "release")], now) == [True]
    assert claim_ids(store, ["default"], 1, now) == [a.id]
    assert claim_ids(store, ["default"], 1, now + 0.5) == [b.id]
    assert {j.id for j in store.requeue_expired(now + LEASE + 1)} == {a.id, b.id}
    assert store.get(a.id).priority == 3
    assert claim_ids(store, ["default"], 4, now + LEASE + 2) == [a.id, b.id, c.id, low.id]


def test_to_front_runs_ahead_of_every_priority(store: Store) -> None:
    now = time.time()
    urgent = make_job(now=now, priority=0)
    low = make_job(now=now + 1e-3, priority=9)
    mid = make_job(now=now + 2e-3, priority=5)
    store.enqueue_many([urgent, low, mid], now)
    assert store.to_front(low.id) is True
    got = store.get(low.id)
    assert got.priority == 0 and got.enqueued_at < store.get(urgent.id).enqueued_at
    assert claim_ids(store, ["default"], 3, now) == [low.id, urgent.id, mid.id]


def test_retry_now_keeps_the_priority(store: Store) -> None:
    now = time.time()
    job = make_job(now=now, priority=6)
    store.enqueue(job, now)
    assert store.cancel(job.id, now) is not None
    assert store.retry_now(job.id, now).priority == 6
    other = make_job(now=now, priority=1)
    store.enqueue(other, now)
    assert claim_ids(store, ["default"], 2, now) == [other.id, job.id]


def test_cancel_delete_and_clear_reach_every_priority(store: Store) -> None:
    now = time.time()
    jobs = [make_job(now=now, priority=p) for p in (0, 4, 9, 9)]
    store.enqueue_many(jobs, now)
    assert store.cancel(jobs[1].id, now).state == "canceled"
    assert store.delete(jobs[2].id) is True
    assert store.count(["default"], [QUEUED]) == 2
    assert store.clear(["default"]) == 2
    assert claim_ids(store, ["default"], 5, now) == []
    assert store.wait_for_work(["default"], 0.05) is False


# -- paused queues --------------------------------------------------------------------------------------
def test_a_paused_queue_gives_nothing_to_claim_until_resumed(store: Store) -> None:
    now = time.time()
    held, free = make_job("held", now=now), make_job("free", now=now)
    store.enqueue_many([held, free], now)
    assert store.pause("held", now) is True
    assert store.pause("held", now + 5) is False  # already paused: its time is kept
    assert store.paused() == {"held": now}
    late = make_job("held", now=now, priority=3)
    assert store.enqueue(late, now).state == QUEUED  # enqueue still works
    assert claim_ids(store, ["held", "free"], 10, now) == [free.id]
    assert store.wait_for_work(["held"], 0.05) is False
    assert store.count(["held"], [QUEUED]) == 2
    assert store.resume("held") is True and store.resume("held") is False
    assert store.paused() == {}
    assert store.wait_for_work(["held"], 0.0) is True
    assert claim_ids(store, ["held"], 10, now) == [held.id, late.id]


def test_pause_is_per_site_and_persists_across_store_objects(make_store: Callable[..., Store]) -> None:
    mine, other = make_store(), make_store("other-" + make_store().site_id)
    now = time.time()
    assert mine.pause("q", now) is True
    assert make_store().paused() == {"q": now}
    assert other.paused() == {}
    job = make_job("q", now=now)
    other.enqueue(job, now)
    assert claim_ids(other, ["q"], 1, now) == [job.id]


def test_due_scheduled_jobs_of_a_paused_queue_wait(store: Store) -> None:
    now = time.time()
    job = make_job("p", now=now, run_at=now + 1)
    store.enqueue(job, now)
    store.pause("p", now)
    assert claim_ids(store, ["p"], 1, now + 2) == []
    assert store.wait_for_work(["p"], 0.05) is False
    store.resume("p")
    assert claim_ids(store, ["p"], 1, now + 3) == [job.id]


def test_resume_wakes_a_worker_waiting_for_the_queue(make_store: Callable[..., Store]) -> None:
    waiter, admin = make_store(), make_store()
    now = time.time()
    job = make_job("p", now=now)
    admin.enqueue(job, now)
    admin.pause("p", now)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(waiter.wait_and_claim(["p"], "w1", LEASE, 1, 20.0)))
    thread.start()
    try:
        assert thread.is_alive()
        time.sleep(0.3)  # the waiter is blocked on a paused queue holding work (not a synchronisation)
        assert thread.is_alive() and admin.get(job.id).state == QUEUED
        admin.resume("p")
        thread.join(5.0)
        assert not thread.is_alive()
    finally:
        thread.join(25.0)
    claimed = got[0]
    assert isinstance(claimed, list) and [j.id for j in claimed] == [job.id]


# -- snooze ---------------------------------------------------------------------------------------------
def test_snooze_schedules_the_job_again_without_using_an_attempt(store: Store) -> None:
    now = time.time()
    job = make_job(now=now, max_attempts=1, priority=2)
    store.enqueue(job, now)
    claimed = claim_one(store, now=now)
    assert claimed.attempts == 1
    outcome = Outcome(claimed.id, claimed.lease_token, "snooze", retry_at=now + 30, ended_at=now + 1)
    assert store.settle([outcome], now + 1) == [True]
    got = store.get(job.id)
    assert got.state == SCHEDULED and got.run_at == now + 30 and got.attempts == 0
    assert got.errors == [] and got.error is None and got.lease_token is None and got.worker is None
    assert got.started_at is None and got.ended_at is None and got.priority == 2
    assert store.settle([outcome], now + 1) == [False]  # fenced: the lease is gone
    assert store.claim(["default"], "w1", LEASE, 1, now + 29) == []
    again = claim_one(store, now=now + 31)
    assert again.id == job.id and again.attempts == 1  # its only attempt is still there
    assert store.counts() == {"default": {"started": 1}}


def test_snooze_wakes_a_waiter_when_it_falls_due(make_store: Callable[..., Store]) -> None:
    store, waiter = make_store(), make_store()
    now = time.time()
    store.enqueue(make_job(now=now), now)
    claimed = claim_one(store, now=now)
    store.settle([Outcome(claimed.id, claimed.lease_token, "snooze", retry_at=time.time() + 0.3)], time.time())
    assert store.get(claimed.id).state == SCHEDULED
    got = waiter.wait_and_claim(["default"], "w2", LEASE, 1, 10.0)
    assert got is not None and [j.id for j in got] == [claimed.id]
