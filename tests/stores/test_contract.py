"""The Store contract, run unchanged against every engine (memory, sqlite, redis, postgresql)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from offload.jobs import (
    CANCELED,
    FAILED,
    FINISHED,
    QUEUED,
    SCHEDULED,
    STARTED,
    Job,
    JobQuery,
    Outcome,
    WorkerInfo,
)
from offload.stores import Store
from tests.stores.conftest import make_job

LEASE = 30.0


def claim_one(store: Store, queues: list[str] | None = None, now: float | None = None, worker: str = "w1"):
    jobs = store.claim(queues or ["default"], worker, LEASE, 1, time.time() if now is None else now)
    assert len(jobs) == 1, jobs
    return jobs[0]


def finish(store: Store, job, result: str = '"ok"', now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return store.settle([Outcome(job.id, job.lease_token, "finish", result_json=result, ended_at=now)], now)[0]


# -- enqueue and get ------------------------------------------------------------------------------------
def test_enqueue_then_get_round_trips_every_field(store: Store) -> None:
    now = time.time()
    job = make_job(
        "mail",
        now=now,
        title="Send the digest",
        task=None,
        retry={"backoff": "exponential", "delay": 5},
        meta={"title": "Send the digest", "n": 1},
        unique_key="digest-42",
        timeout=None,
    )
    stored = store.enqueue(job, now)
    assert not stored.duplicate
    got = store.get(job.id)
    assert got is not None
    assert got.queue == "mail" and got.func == "tests.jobfuncs:noop" and got.task is None
    assert got.payload == job.payload and got.args == [1, "two"] and got.kwargs == {"x": 3}
    assert got.title == "Send the digest" and got.state == QUEUED
    assert abs(got.created_at - now) < 1e-3 and got.enqueued_at is not None
    assert got.attempts == 0 and got.max_attempts == 3 and got.timeout is None
    assert got.retry == {"backoff": "exponential", "delay": 5}
    assert got.meta == {"title": "Send the digest", "n": 1} and got.unique_key == "digest-42"
    assert got.errors == [] and got.error is None and got.result_json is None


def test_get_unknown_id_is_none(store: Store) -> None:
    assert store.get("no-such-job") is None


def test_named_task_job_keeps_task_name(store: Store) -> None:
    job = make_job(func=None, task="ext.echo")
    store.enqueue(job, time.time())
    got = store.get(job.id)
    assert got is not None and got.task == "ext.echo" and got.func is None


def test_enqueue_many_returns_one_result_per_job_in_order(store: Store) -> None:
    now = time.time()
    jobs = [make_job(now=now + i * 1e-6) for i in range(50)]
    out = store.enqueue_many(jobs, now)
    assert [j.id for j in out] == [j.id for j in jobs]
    assert store.count(states=[QUEUED]) == 50
    claimed = store.claim(["default"], "w", LEASE, 100, time.time())
    assert [j.id for j in claimed] == [j.id for j in jobs]


# -- claim ----------------------------------------------------------------------------------------------
def test_claim_is_fifo_within_a_queue(store: Store) -> None:
    ids = []
    for _ in range(5):
        job = make_job()
        store.enqueue(job, time.time())
        ids.append(job.id)
    claimed = [claim_one(store).id for _ in range(5)]
    assert claimed == ids
    assert store.claim(["default"], "w1", LEASE, 1, time.time()) == []


def test_claim_serves_earlier_queues_first(store: Store) -> None:
    low = make_job("low")
    high = make_job("high")
    store.enqueue(low, time.time())
    store.enqueue(high, time.time())
    assert claim_one(store, ["high", "low"]).id == high.id
    assert claim_one(store, ["high", "low"]).id == low.id


def test_claim_spans_queues_up_to_limit(store: Store) -> None:
    now = time.time()
    store.enqueue_many([make_job("a") for _ in range(2)] + [make_job("b") for _ in range(3)], now)
    claimed = store.claim(["a", "b"], "w1", LEASE, 4, time.time())
    assert [j.queue for j in claimed] == ["a", "a", "b", "b"]


def test_claim_ignores_unlisted_queues(store: Store) -> None:
    store.enqueue(make_job("other"), time.time())
    assert store.claim(["default"], "w1", LEASE, 10, time.time()) == []


def test_claim_marks_job_started_with_a_fresh_lease(store: Store) -> None:
    store.enqueue_many([make_job(), make_job()], time.time())
    now = time.time()
    jobs = store.claim(["default"], "worker-7", LEASE, 2, now)
    assert len(jobs) == 2
    for job in jobs:
        assert job.state == STARTED and job.attempts == 1 and job.worker == "worker-7"
        assert job.lease_token and abs(job.lease_until - (now + LEASE)) < 1e-3
        assert abs(job.started_at - now) < 1e-3
        got = store.get(job.id)
        assert got is not None and got.state == STARTED and got.lease_token == job.lease_token
    assert jobs[0].lease_token != jobs[1].lease_token


def test_claim_promotes_due_scheduled_jobs_only(store: Store) -> None:
    now = time.time()
    soon = make_job(now=now, run_at=now + 60)
    later = make_job(now=now, run_at=now + 3600)
    store.enqueue_many([soon, later], now)
    assert store.get(soon.id).state == SCHEDULED
    assert store.claim(["default"], "w1", LEASE, 10, now) == []
    claimed = store.claim(["default"], "w1", LEASE, 10, now + 61)
    assert [j.id for j in claimed] == [soon.id]
    assert store.get(later.id).state == SCHEDULED


def test_concurrent_claimers_never_share_a_job(make_store: Callable[..., Store]) -> None:
    producer = make_store()
    producer.enqueue_many([make_job() for _ in range(200)], time.time())
    seen: list[str] = []
    lock = threading.Lock()

    def drain(worker: str) -> None:
        store = make_store()
        while True:
            jobs = store.claim(["default"], worker, LEASE, 7, time.time())
            if not jobs:
                return
            with lock:
                seen.extend(j.id for j in jobs)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 200 and len(set(seen)) == 200


# -- leases and fencing ---------------------------------------------------------------------------------
def test_extend_leases_moves_the_deadline(store: Store) -> None:
    store.enqueue(make_job(), time.time())
    job = claim_one(store)
    later = time.time() + 20
    assert store.extend_leases("w1", {job.id: job.lease_token}, LEASE, later) == []
    assert abs(store.get(job.id).lease_until - (later + LEASE)) < 1e-3
    # Extended, so not expired where the first lease would have been.
    assert store.requeue_expired(job.lease_until + 1) == []


def test_extend_leases_reports_jobs_no_longer_held(store: Store) -> None:
    store.enqueue_many([make_job(), make_job(), make_job()], time.time())
    a, b, c = store.claim(["default"], "w1", LEASE, 3, time.time())
    store.cancel(b.id, time.time())
    store.delete(c.id)
    held = {a.id: a.lease_token, b.id: b.lease_token, c.id: c.lease_token, "ghost": "x"}
    assert sorted(store.extend_leases("w1", held, LEASE, time.time())) == sorted([b.id, c.id, "ghost"])
    assert store.extend_leases("w1", {a.id: "wrong-token"}, LEASE, time.time()) == [a.id]


def test_expired_lease_requeues_the_job_and_counts_the_attempt(store: Store) -> None:
    store.enqueue(make_job(max_attempts=3), time.time())
    job = claim_one(store)
    assert store.requeue_expired(job.lease_until - 1) == []
    changed = store.requeue_expired(job.lease_until + 1)
    assert [j.id for j in changed] == [job.id] and changed[0].state == QUEUED
    got = store.get(job.id)
    assert got.state == QUEUED and got.attempts == 1 and got.lease_token is None
    assert got.errors and got.errors[-1]["reason"] == "abandoned"
    again = claim_one(store, worker="w2")
    assert again.id == job.id and again.attempts == 2 and again.worker == "w2"


def test_expired_lease_fails_the_job_when_attempts_are_spent(store: Store) -> None:
    store.enqueue(make_job(max_attempts=1), time.time())
    job = claim_one(store)
    changed = store.requeue_expired(job.lease_until + 1)
    assert changed[0].state == FAILED
    got = store.get(job.id)
    assert got.state == FAILED and got.error["reason"] == "abandoned" and got.ended_at is not None


def test_late_settle_from_an_expired_attempt_is_rejected(store: Store) -> None:
    store.enqueue(make_job(), time.time())
    first = claim_one(store, worker="w1")
    store.requeue_expired(first.lease_until + 1)
    second = claim_one(store, worker="w2")
    assert not finish(store, first, '"stale"')
    assert store.extend_leases("w1", {first.id: first.lease_token}, LEASE, time.time()) == [first.id]
    got = store.get(first.id)
    assert got.state == STARTED and got.worker == "w2" and got.result_json is None
    assert finish(store, second, '"fresh"')
    assert store.get(first.id).result == "fresh"


# -- settle ---------------------------------------------------------------------------------------------
def test_settle_finish_records_result_and_end(store: Store) -> None:
    store.enqueue(make_job(), time.time())
    job = claim_one(store)
    end = time.time()
    assert store.settle([Outcome(job.id, job.lease_token, "finish", result_json='{"n":1}', ended_at=end)], end)
    got = store.get(job.id)
    assert got.state == FINISHED and got.result == {"n": 1} and abs(got.ended_at - end) < 1e-3
    assert got.lease_token is None and got.worker == "w1" and got.started_at is not None
    assert not finish(store, job), "a second settle of the same attempt must be rejected"


def test_settle_fail_records_the_error(store: Store) -> None:
    store.enqueue(make_job(), time.time())
    job = claim_one(store)
    error = {"type": "ValueError", "message": "bad", "traceback": "Traceback ...", "reason": "exception"}
    assert store.settle([Outcome(job.id, job.lease_token, "fail", error=error, ended_at=time.time())], time.time())
    got = store.get(job.id)
    assert got.state == FAILED and got.error == error and got.errors == [error]


def test_settle_retry_schedules_the_next_attempt(store: Store) -> None:
    store.enqueue(make_job(max_attempts=3), time.time())
    job = claim_one(store)
    now = time.time()
    error = {"type": "IOError", "message": "flaky", "traceback": None, "reason": "exception"}
    outcome = Outcome(job.id, job.lease_token, "retry", error=error, retry_at=now + 30, ended_at=now)
    assert store.settle([outcome], now) == [True]
    got = store.get(job.id)
    assert got.state == SCHEDULED and abs(got.run_at - (now + 30)) < 1e-3 and got.errors == [error]
    assert store.claim(["default"], "w1", LEASE, 1, now + 1) == []
    again = store.claim(["default"], "w1", LEASE, 1, now + 31)
    assert [j.id for j in again] == [job.id] and again[0].attempts == 2


def test_settle_retry_can_replace_the_arguments_and_the_budget(store: Store) -> None:
    """A job that asked for a retry with new arguments and another budget (Celery's ``task.retry(args=...,
    max_retries=10)``) runs again with them, and its record says so: the new payload, ``max_attempts`` 11."""
    store.enqueue(make_job(max_attempts=1), time.time())
    job = claim_one(store)
    now = time.time()
    error = {"type": "OSError", "message": "later", "traceback": None, "reason": "retry"}
    outcome = Outcome(job.id, job.lease_token, "retry", error=error, retry_at=now, ended_at=now,
                      payload='[["new"],{"k":1}]', max_attempts=11)
    assert store.settle([outcome], now) == [True]
    got = store.get(job.id)
    assert got.state == SCHEDULED and got.args == ["new"] and got.kwargs == {"k": 1} and got.max_attempts == 11
    again = store.claim(["default"], "w1", LEASE, 1, now + 1)
    assert again[0].payload == '[["new"],{"k":1}]' and again[0].attempts == 2 and again[0].max_attempts == 11
    listed = store.list(["default"])
    assert listed[0].max_attempts == 11 and listed[0].args == ["new"]


def test_settle_fail_can_record_the_budget_and_keeps_the_arguments(store: Store) -> None:
    store.enqueue(make_job(max_attempts=3), time.time())
    job = claim_one(store)
    now = time.time()
    error = {"type": "MaxRetriesExceededError", "message": "no", "traceback": None, "reason": "retry"}
    outcome = Outcome(job.id, job.lease_token, "fail", error=error, ended_at=now, payload='[["ignored"],{}]',
                      max_attempts=1)
    assert store.settle([outcome], now) == [True]
    got = store.get(job.id)
    assert got.state == FAILED and got.max_attempts == 1 and got.args == [1, "two"]


def test_settle_retry_without_new_arguments_keeps_payload_and_budget(store: Store) -> None:
    store.enqueue(make_job(max_attempts=4), time.time())
    job = claim_one(store)
    now = time.time()
    error = {"type": "OSError", "message": "x", "traceback": None, "reason": "exception"}
    assert store.settle([Outcome(job.id, job.lease_token, "retry", error=error, retry_at=now, ended_at=now)], now)
    got = store.get(job.id)
    assert got.args == [1, "two"] and got.kwargs == {"x": 3} and got.max_attempts == 4


def test_to_front_puts_a_queued_job_at_the_head_of_its_queue(store: Store) -> None:
    now = time.time()
    a, b, c = (make_job(now=now + i * 1e-3) for i in range(3))
    other = make_job("other", now=now)
    store.enqueue_many([a, b, c, other], now)
    assert store.to_front(c.id) is True
    got = store.get(c.id)
    assert got.state == QUEUED and got.enqueued_at < store.get(a.id).enqueued_at
    assert [claim_one(store).id for _ in range(3)] == [c.id, a.id, b.id]
    assert claim_one(store, ["other"]).id == other.id  # other queues untouched
    later = make_job(run_at=now + 60, now=now)
    store.enqueue(later, now)
    assert store.to_front(later.id) is False and store.get(later.id).state == SCHEDULED
    assert store.to_front(a.id) is False  # started
    assert store.to_front("no-such-job") is False
    alone = make_job("alone", now=now)
    store.enqueue(alone, now)
    assert store.to_front(alone.id) is True and claim_one(store, ["alone"]).id == alone.id


def test_settle_release_gives_the_attempt_back_at_the_head_of_the_queue(store: Store) -> None:
    first, second = make_job(), make_job()
    store.enqueue_many([first, second], time.time())
    job = claim_one(store)
    assert job.id == first.id
    assert store.settle([Outcome(job.id, job.lease_token, "release")], time.time()) == [True]
    got = store.get(job.id)
    assert got.state == QUEUED and got.attempts == 0 and got.lease_token is None
    assert claim_one(store).id == first.id


def test_settle_batch_reports_each_outcome(store: Store) -> None:
    store.enqueue_many([make_job() for _ in range(3)], time.time())
    a, b, c = store.claim(["default"], "w1", LEASE, 3, time.time())
    now = time.time()
    results = store.settle(
        [
            Outcome(a.id, a.lease_token, "finish", result_json="1", ended_at=now),
            Outcome(b.id, "not-the-token", "finish", result_json="2", ended_at=now),
            Outcome(c.id, c.lease_token, "fail", error={"type": "E", "message": "m"}, ended_at=now),
        ],
        now,
    )
    assert results == [True, False, True]
    assert store.get(a.id).state == FINISHED
    assert store.get(b.id).state == STARTED
    assert store.get(c.id).state == FAILED


# -- management -----------------------------------------------------------------------------------------
def test_cancel_pending_jobs_and_leave_done_ones(store: Store) -> None:
    now = time.time()
    store.enqueue(make_job(), now)
    run = claim_one(store)
    finish(store, run)
    queued, scheduled = make_job(), make_job(run_at=now + 600)
    store.enqueue_many([queued, scheduled], now)
    for job in (queued, scheduled):
        assert store.cancel(job.id, now).state == CANCELED
        assert store.get(job.id).state == CANCELED
    assert store.claim(["default"], "w", LEASE, 10, now + 1000) == []
    assert store.cancel(run.id, now).state == FINISHED
    assert store.cancel("missing", now) is None


def test_cancel_of_a_started_job_revokes_its_lease(store: Store) -> None:
    store.enqueue(make_job(), time.time())
    job = claim_one(store)
    assert store.cancel(job.id, time.time()).state == CANCELED
    assert store.extend_leases("w1", {job.id: job.lease_token}, LEASE, time.time()) == [job.id]
    assert not finish(store, job)
    assert store.get(job.id).state == CANCELED
    assert store.requeue_expired(time.time() + 10 * LEASE) == []


def test_retry_now_requeues_failed_canceled_and_scheduled(store: Store) -> None:
    now = time.time()
    failing, canceled, scheduled = make_job(), make_job(), make_job(run_at=now + 600)
    store.enqueue_many([failing, canceled, scheduled], now)
    job = claim_one(store)
    store.settle([Outcome(job.id, job.lease_token, "fail", error={"type": "E", "message": "x"}, ended_at=now)], now)
    store.cancel(canceled.id, now)
    for job_id in (failing.id, canceled.id, scheduled.id):
        got = store.retry_now(job_id, now)
        assert got.state == QUEUED and got.attempts == 0
    assert store.get(failing.id).errors, "history of the failed attempt is kept"
    assert {j.id for j in store.claim(["default"], "w", LEASE, 10, now)} == {failing.id, canceled.id, scheduled.id}
    assert store.retry_now("missing", now) is None


def test_retry_now_leaves_queued_started_and_finished_jobs(store: Store) -> None:
    store.enqueue_many([make_job(), make_job()], time.time())
    running = claim_one(store)
    assert store.retry_now(running.id, time.time()).state == STARTED
    finish(store, running)
    assert store.retry_now(running.id, time.time()).state == FINISHED
    queued = store.list(states=[QUEUED])[0]
    assert store.retry_now(queued.id, time.time()).state == QUEUED


def test_delete_removes_the_record(store: Store) -> None:
    job = make_job()
    store.enqueue(job, time.time())
    assert store.delete(job.id)
    assert store.get(job.id) is None
    assert not store.delete(job.id)
    assert store.claim(["default"], "w", LEASE, 1, time.time()) == []


def test_clear_deletes_pending_jobs_of_the_given_queues(store: Store) -> None:
    now = time.time()
    store.enqueue_many([make_job("a"), make_job("a", run_at=now + 60), make_job("b"), make_job("c")], now)
    running = claim_one(store, ["c"])
    assert store.clear(["a"]) == 2
    assert store.count(queues=["a"]) == 0 and store.count(queues=["b"]) == 1
    assert store.clear() == 1  # b's queued job; c's started job is not pending work to clear
    assert store.get(running.id).state == STARTED
    assert store.claim(["a", "b"], "w", LEASE, 10, now + 120) == []


def test_list_filters_orders_and_paginates(store: Store) -> None:
    now = time.time()
    jobs = [make_job("a" if i % 2 else "b", now=now + i) for i in range(10)]
    store.enqueue_many(jobs, now)
    claimed = store.claim(["a"], "w", LEASE, 2, now)
    assert [j.id for j in store.list()] == [j.id for j in jobs]
    assert [j.id for j in store.list(descending=True, limit=3)] == [j.id for j in reversed(jobs)][:3]
    assert [j.id for j in store.list(limit=3, offset=4)] == [j.id for j in jobs[4:7]]
    assert [j.id for j in store.list(queues=["a"])] == [j.id for j in jobs if j.queue == "a"]
    assert {j.id for j in store.list(states=[STARTED])} == {j.id for j in claimed}
    assert len(store.list(queues=["a"], states=[QUEUED])) == 3
    assert len(store.list(queues=["a", "b"], states=[QUEUED, STARTED])) == 10
    assert store.count() == 10 and store.count(queues=["b"], states=[QUEUED]) == 5
    assert store.list(queues=["zzz"]) == [] and store.count(states=[FAILED]) == 0


def test_counts_per_queue_and_state(store: Store) -> None:
    now = time.time()
    store.enqueue_many([make_job("a"), make_job("a"), make_job("b", run_at=now + 60)], now)
    job = claim_one(store, ["a"])
    finish(store, job)
    assert store.counts() == {"a": {QUEUED: 1, FINISHED: 1}, "b": {SCHEDULED: 1}}


def test_waiting_since_is_the_oldest_waiting_job_per_queue(store: Store) -> None:
    t0 = time.time()
    store.enqueue_many([make_job("a", now=t0), make_job("a", now=t0, run_at=t0 + 30),
                        make_job("b", now=t0, run_at=t0 + 60), make_job("c", now=t0),
                        make_job("d", now=t0, run_at=t0 + 20), make_job("e", now=t0, run_at=t0 + 20)], t0)
    store.enqueue(make_job("a", now=t0 + 5), t0 + 5)
    store.enqueue(make_job("d", now=t0 + 15), t0 + 15)
    store.enqueue(make_job("e", now=t0 + 40), t0 + 40)
    claim_one(store, ["c"], now=t0 + 1)
    near = {"abs": 1e-3}
    assert store.waiting_since(t0 + 41) == pytest.approx({"a": t0, "d": t0 + 15, "e": t0 + 20}, **near)
    assert store.waiting_since(t0 + 100) == pytest.approx(
        {"a": t0, "b": t0 + 60, "d": t0 + 15, "e": t0 + 20}, **near)
    head = claim_one(store, ["a"], now=t0 + 41)
    assert head.enqueued_at == pytest.approx(t0, **near)
    assert store.waiting_since(t0 + 41)["a"] == pytest.approx(t0 + 5, **near)


def _search_site(store: Store) -> tuple[float, list]:
    t0 = time.time() - 1000
    jobs = [make_job("imports", now=t0, title="Import catalogue 2024"),
            make_job("imports", now=t0 + 10, title="Reindex search", func="tests.jobfuncs:add"),
            make_job("mail", now=t0 + 20, title="Welcome mail", task="mail.Send_Welcome", func=None,
                     payload='[[42],{"x":4}]'),
            make_job("mail", now=t0 + 30, title="100%_done report", payload='[["50%"],{"x":3}]'),
            make_job("imports", now=t0 + 40, title=None, func="tests.jobfuncs:import_rows")]
    for job in jobs:
        store.enqueue(job, job.created_at)
    return t0, jobs


def test_search_by_text_queue_state_and_time_range(store: Store) -> None:
    t0, jobs = _search_site(store)
    claim_one(store, ["imports"], now=t0 + 50)  # jobs[0] starts

    def ids(**criteria: object) -> list[str]:
        result = store.search(JobQuery(**criteria), limit=100)  # type: ignore[arg-type]
        assert result.total == len(result.jobs) and result.exact
        return [job.id for job in result.jobs]

    assert ids(text="IMPORT") == [jobs[0].id, jobs[4].id], "title or function, any case"
    assert ids(text="send_welcome") == [jobs[2].id], "task name"
    assert ids(text="jobfuncs:add") == [jobs[1].id]
    assert ids(text="%_d") == [jobs[3].id], "LIKE wildcards are literal"
    assert ids(text="import", states=(QUEUED,)) == [jobs[4].id]
    assert ids(text="e", queues=("mail",)) == [jobs[2].id, jobs[3].id]
    assert ids(created_after=t0 + 10, created_before=t0 + 30) == [jobs[1].id, jobs[2].id]
    assert ids(job_id=jobs[3].id) == [jobs[3].id]
    assert ids(job_id=jobs[3].id, queues=("imports",)) == []
    assert ids(args='"X":4') == [jobs[2].id], "argument text, any case"
    assert ids(args='"x":3', text="import") == [jobs[0].id, jobs[4].id]
    assert ids(args="%") == [jobs[3].id], "LIKE wildcards are literal"
    assert ids(job_id="0" * 32) == []


def test_search_sorts_and_pages_with_totals(store: Store) -> None:
    t0, jobs = _search_site(store)
    first = claim_one(store, ["imports"], now=t0 + 50)
    finish(store, first, now=t0 + 60)
    second = claim_one(store, ["imports"], now=t0 + 51)
    finish(store, second, now=t0 + 55)
    result = store.search(JobQuery(sort="ended_at", descending=True), limit=2)
    assert [j.id for j in result.jobs] == [first.id, second.id] and result.total == 5
    result = store.search(JobQuery(sort="ended_at"), limit=2, offset=2)
    assert [j.id for j in result.jobs] == [jobs[2].id, jobs[3].id], "jobs not ended come last, in creation order"
    result = store.search(JobQuery(text="RE", descending=True), limit=1, offset=1)
    assert [j.id for j in result.jobs] == [jobs[1].id] and result.total == 2
    store.enqueue(make_job("prio", now=t0 + 45, priority=5), t0 + 45)
    store.enqueue(make_job("prio", now=t0 + 46, priority=2), t0 + 46)
    result = store.search(JobQuery(queues=("prio",), sort="priority"), limit=5)
    assert [j.priority for j in result.jobs] == [2, 5]
    result = store.search(JobQuery(queues=("mail",), states=(QUEUED,)), limit=1)
    assert [j.id for j in result.jobs] == [jobs[2].id] and result.total == 2
    with pytest.raises(ValueError, match="cannot sort by"):
        JobQuery(sort="payload")


def test_purge_deletes_done_jobs_older_than_the_cutoff(store: Store) -> None:
    now = time.time()
    store.enqueue_many([make_job() for _ in range(4)], now)
    jobs = store.claim(["default"], "w", LEASE, 3, now)
    store.settle([Outcome(jobs[0].id, jobs[0].lease_token, "finish", result_json="1", ended_at=now - 100)], now)
    store.settle([Outcome(jobs[1].id, jobs[1].lease_token, "fail", error={}, ended_at=now - 100)], now)
    store.settle([Outcome(jobs[2].id, jobs[2].lease_token, "finish", result_json="1", ended_at=now)], now)
    assert store.purge(now - 50, limit=1) == 1
    assert store.purge(now - 50) == 1
    assert store.get(jobs[0].id) is None and store.get(jobs[1].id) is None
    assert store.get(jobs[2].id) is not None and store.count(states=[QUEUED]) == 1


def test_progress_and_meta_are_stored(store: Store) -> None:
    job = make_job(meta={"title": None})
    store.enqueue(job, time.time())
    assert store.set_progress(job.id, {"done": 3, "total": 10, "message": "rows"}, None)
    assert store.set_progress(job.id, None, {"title": None, "k": "v"})
    got = store.get(job.id)
    assert got.progress == {"done": 3, "total": 10, "message": "rows"} and got.meta == {"title": None, "k": "v"}
    assert not store.set_progress("missing", {"done": 1}, None)


# -- uniqueness -----------------------------------------------------------------------------------------
def test_a_pending_job_id_is_not_enqueued_twice(store: Store) -> None:
    first = make_job(id="report-1", title="first")
    store.enqueue(first, time.time())
    dup = store.enqueue(make_job(id="report-1", title="second"), time.time())
    assert dup.duplicate and dup.title == "first"
    assert store.count() == 1


def test_a_done_job_id_can_be_reused(store: Store) -> None:
    store.enqueue(make_job(id="report-1", title="first"), time.time())
    finish(store, claim_one(store))
    again = store.enqueue(make_job(id="report-1", title="second"), time.time())
    assert not again.duplicate
    got = store.get("report-1")
    assert got.title == "second" and got.state == QUEUED and got.attempts == 0
    assert store.count() == 1


def test_unique_key_blocks_a_second_pending_job(store: Store) -> None:
    first = make_job(unique_key="resource-9")
    store.enqueue(first, time.time())
    dup = store.enqueue(make_job(unique_key="resource-9"), time.time())
    assert dup.duplicate and dup.id == first.id
    running = claim_one(store)
    assert store.enqueue(make_job(unique_key="resource-9"), time.time()).duplicate
    finish(store, running)
    fresh = store.enqueue(make_job(unique_key="resource-9"), time.time())
    assert not fresh.duplicate and fresh.id != first.id


def test_unique_key_is_released_by_cancel_and_fail(store: Store) -> None:
    now = time.time()
    store.enqueue(make_job(unique_key="k"), now)
    job = store.list()[0]
    store.cancel(job.id, now)
    store.enqueue(make_job(unique_key="k"), now)
    running = claim_one(store)
    store.settle([Outcome(running.id, running.lease_token, "fail", error={}, ended_at=now)], now)
    assert not store.enqueue(make_job(unique_key="k"), now).duplicate


def test_unique_key_survives_a_retry(store: Store) -> None:
    store.enqueue(make_job(unique_key="k"), time.time())
    job = claim_one(store)
    now = time.time()
    store.settle([Outcome(job.id, job.lease_token, "retry", error={}, retry_at=now + 60, ended_at=now)], now)
    assert store.enqueue(make_job(unique_key="k"), now).duplicate


def test_duplicates_within_one_batch(store: Store) -> None:
    out = store.enqueue_many([make_job(unique_key="u"), make_job(unique_key="u"), make_job(id="x"), make_job(id="x")],
                             time.time())
    assert [j.duplicate for j in out] == [False, True, False, True]
    assert out[1].id == out[0].id
    assert store.count() == 2


# -- sites ----------------------------------------------------------------------------------------------
def test_two_sites_on_one_store_never_see_each_other(make_store: Callable[..., Store]) -> None:
    one, two = make_store("site-one"), make_store("site-two")
    job = make_job(id="same-id", unique_key="same-key")
    one.enqueue(job, time.time())
    other = two.enqueue(make_job(id="same-id", unique_key="same-key"), time.time())
    assert not other.duplicate
    assert one.count() == 1 and two.count() == 1
    assert two.claim(["default"], "w", LEASE, 10, time.time())[0].id == "same-id"
    assert one.get("same-id").state == QUEUED
    assert "default" in one.counts() and one.counts()["default"] == {QUEUED: 1}
    assert one.clear() == 1 and two.get("same-id").state == STARTED
    one.register_worker(WorkerInfo("w-one", "host", 1, ["default"], 1, time.time(), time.time()))
    assert two.list_workers(0) == []
    one.put_record("webhook", "h1", {"url": "https://example.org"})
    assert two.get_record("webhook", "h1") is None and two.list_records("webhook") == []


# -- workers --------------------------------------------------------------------------------------------
def test_worker_registry(store: Store) -> None:
    now = time.time()
    info = WorkerInfo("host:1:ab", "host", 1, ["default", "mail"], 2, now, now, jobs=[], processed=0)
    store.register_worker(info)
    info.last_seen = now + 5
    info.jobs = ["job-1"]
    info.processed = 10
    store.register_worker(info)
    store.register_worker(WorkerInfo("host:2:cd", "host", 2, ["default"], 1, now, now - 1000))
    workers = store.list_workers(now - 60)
    assert [w.id for w in workers] == ["host:1:ab"]
    assert workers[0].jobs == ["job-1"] and workers[0].processed == 10 and workers[0].queues == ["default", "mail"]
    store.unregister_worker("host:1:ab")
    assert store.list_workers(now - 60) == []


# -- periodic schedules ---------------------------------------------------------------------------------
def test_pending_counts_are_per_site_even_when_one_site_id_extends_another(make_store: Callable[..., Store]) -> None:
    """The completion check of a drain (pending jobs across queues) counts this site's jobs only; PostgreSQL
    counts each pending state through its own index, with this site's queue-name prefix."""
    now = time.time()
    short, longer = make_store("ab"), make_store("ab2")
    for store, queued in ((short, 3), (longer, 5)):
        store.enqueue_many([make_job("q1") for _ in range(queued)] + [make_job("q2", run_at=now + 60)], now)
        finish(store, claim_one(store, ["q1"]))
        claim_one(store, ["q1"])
    assert short.count(states=[QUEUED, STARTED]) == 3 - 2 + 1
    assert short.count(states=[QUEUED, STARTED, SCHEDULED]) == 3 - 2 + 1 + 1
    assert short.count(states=[SCHEDULED, QUEUED]) == 3 - 2 + 1
    assert longer.count(states=[QUEUED, STARTED]) == 5 - 2 + 1
    assert longer.count(states=[STARTED]) == 1 and longer.count(states=[FINISHED]) == 1


def test_each_periodic_slot_is_enqueued_once_however_many_race(make_store: Callable[..., Store]) -> None:
    slot = 1_800_000_000.0
    wins: list[bool] = []
    lock = threading.Lock()

    errors: list[BaseException] = []

    def race(n: int) -> None:
        try:
            store = make_store()  # on SQLite, six first opens of a new file at once (regression: "locked")
            won = store.enqueue_periodic("nightly", slot, make_job(title=f"racer {n}"), time.time())
        except BaseException as exc:
            errors.append(exc)
            raise
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = make_store()
    assert errors == [] and len(wins) == 6
    assert wins.count(True) == 1
    assert store.count() == 1
    runs = store.schedule_runs()
    assert runs["nightly"].last_slot == slot and runs["nightly"].job_id == store.list()[0].id
    assert not store.enqueue_periodic("nightly", slot - 60, make_job(), time.time()), "older slot"
    assert store.enqueue_periodic("nightly", slot + 60, make_job(), time.time())
    assert store.count() == 2


# -- records --------------------------------------------------------------------------------------------
def test_records_crud(store: Store) -> None:
    store.put_record("webhook", "b", {"url": "https://b.example", "active": True})
    store.put_record("webhook", "a", {"url": "https://a.example", "n": [1, 2]})
    store.put_record("other", "a", {"x": 1})
    assert store.get_record("webhook", "a") == {"url": "https://a.example", "n": [1, 2]}
    assert [k for k, _ in store.list_records("webhook")] == ["a", "b"]
    store.put_record("webhook", "a", {"url": "https://a2.example"})
    assert store.get_record("webhook", "a") == {"url": "https://a2.example"}
    assert store.delete_record("webhook", "a") and not store.delete_record("webhook", "a")
    assert store.get_record("webhook", "a") is None and store.get_record("other", "a") == {"x": 1}


# -- waiting for work -----------------------------------------------------------------------------------
def test_wait_for_work_returns_at_once_when_work_exists(store: Store) -> None:
    store.enqueue(make_job("mail"), time.time())
    started = time.monotonic()
    assert store.wait_for_work(["default", "mail"], 5.0)
    assert time.monotonic() - started < 2.0


def test_wait_for_work_times_out_without_work(store: Store) -> None:
    store.enqueue(make_job("elsewhere"), time.time())
    assert not store.wait_for_work(["default"], 0.2)


def test_wait_for_work_wakes_on_enqueue_from_another_client(make_store: Callable[..., Store]) -> None:
    waiter, producer = make_store(), make_store()
    woke: list[bool] = []
    ready = threading.Event()

    def wait() -> None:
        ready.set()
        woke.append(waiter.wait_for_work(["default"], 10.0))

    thread = threading.Thread(target=wait)
    thread.start()
    ready.wait()
    time.sleep(0.05)  # let the waiter block; the assertion below holds with or without this
    started = time.monotonic()
    producer.enqueue(make_job(), time.time())
    thread.join(10)
    assert woke == [True]
    assert time.monotonic() - started < 5.0


def test_wait_for_work_wakes_when_a_scheduled_job_falls_due(store: Store) -> None:
    now = time.time()
    store.enqueue(make_job(now=now, run_at=now + 0.3), now)
    assert store.wait_for_work(["default"], 5.0)
    assert time.time() >= now + 0.25


def test_a_large_batch_over_queues_and_states_keeps_order_and_counts(store: Store) -> None:
    """More rows than one bulk statement holds on some engines; the duplicate at the end sends the whole batch
    down the careful path, which must not store anything twice."""
    now = time.time()
    store.enqueue(make_job("b", id="taken"), now)
    jobs = [make_job("ab"[i % 2], now=now + i * 1e-6, run_at=now + 60 if i % 3 == 0 else None) for i in range(600)]
    out = store.enqueue_many([*jobs, make_job("a", id="taken")], now)
    assert [j.duplicate for j in out] == [False] * 600 + [True] and out[-1].queue == "b"
    assert store.counts() == {"a": {QUEUED: 200, SCHEDULED: 100}, "b": {QUEUED: 201, SCHEDULED: 100}}
    assert store.count(["a", "b"], [SCHEDULED]) == 200 and store.count() == 601
    claimed = store.claim(["a"], "w", LEASE, 1000, now)
    assert [j.id for j in claimed] == [j.id for j in jobs if j.queue == "a" and j.state == QUEUED]
    assert store.enqueue_many(jobs[:2], now)[1].duplicate and store.count() == 601


def test_a_reused_id_whose_unique_key_is_pending_elsewhere_is_a_duplicate_of_that_job(store: Store) -> None:
    """The id is free to reuse (its job is done) but the unique key is not: the key wins, and the done job's
    record stays (regression: SQLite deleted it before finding the key taken)."""
    store.enqueue(make_job(id="report"), time.time())
    finish(store, claim_one(store))
    holder = store.enqueue(make_job(unique_key="nightly"), time.time())
    dup = store.enqueue(make_job(id="report", unique_key="nightly", title="again"), time.time())
    assert dup.duplicate and dup.id == holder.id and dup.title is None
    assert store.count(states=[QUEUED]) == 1
    kept = store.get("report")
    assert kept is not None and kept.state == FINISHED


def test_wait_and_claim_claims_what_is_there_at_once(store: Store) -> None:
    jobs = [store.enqueue(make_job("mail"), time.time()) for _ in range(3)]
    before = time.time()
    claimed = store.wait_and_claim(["default", "mail"], "w1", LEASE, 2, 5.0)
    assert claimed is not None and [j.id for j in claimed] == [j.id for j in jobs[:2]]
    for job in claimed:
        assert job.state == STARTED and job.worker == "w1" and job.attempts == 1
        assert job.started_at is not None and job.started_at >= before - 0.5
        assert job.lease_until == pytest.approx(job.started_at + LEASE, abs=0.01)
    assert store.count(states=[QUEUED]) == 1


def test_wait_and_claim_times_out_without_work(store: Store) -> None:
    store.enqueue(make_job("elsewhere"), time.time())
    assert store.wait_and_claim(["default"], "w1", LEASE, 5, 0.2) is None
    assert store.count(["elsewhere"], [QUEUED]) == 1


def test_wait_and_claim_takes_a_job_enqueued_while_it_waits(make_store: Callable[..., Store]) -> None:
    waiter, producer = make_store(), make_store()
    got: list[list[Job] | None] = []
    ready = threading.Event()

    def wait() -> None:
        ready.set()
        got.append(waiter.wait_and_claim(["default"], "w1", LEASE, 5, 10.0))

    thread = threading.Thread(target=wait)
    thread.start()
    ready.wait()
    time.sleep(0.3)  # let the waiter block (the claim's clock must then be the wake-up's, not the call's)
    enqueued = producer.enqueue(make_job(), time.time())
    thread.join(10)
    [claimed] = got
    assert claimed is not None and [j.id for j in claimed] == [enqueued.id]
    job = claimed[0]
    assert enqueued.enqueued_at is not None and job.started_at is not None
    assert job.started_at >= enqueued.enqueued_at - 0.05, "started_at is the time of the claim, not of the call"
    assert job.lease_until == pytest.approx(job.started_at + LEASE, abs=0.01)
