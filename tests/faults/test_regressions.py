"""Regression tests for what the fault battery found, one or more per fix (see the battery's report).

1. A crash or a timeout was blamed on the wrong job: a single-threaded executor reports finished jobs in
   batches, and the supervisor took the oldest unreported job for the running one. The real one was released
   with its attempt given back (a poison job ran past its attempt budget, without end), a healthy job was
   charged with the crash, and a job behind a batched report escaped its time limit. And a job that had run
   to its end, its report still in the executor's outbox when the executor died, was released with its
   attempt given back: it could run once more than its budget.
2. A job whose lease expired went to the back of its queue: after a worker's death its jobs waited for the
   whole backlog (recovery grew with the queue).
3. A corrupted or foreign job record (bad JSON in meta, errors or Redis' spec, bytes that are not UTF-8, a
   field of the wrong type) made claim raise: every worker died on it, and the queue stayed blocked.
4. A grandchild that left the executor's process group (a new session) outlived its job's timeout.
5. Absurd values at the API: a run time past the year 9999 was stored (and then broke ``offload show``), a
   negative or NaN ``purge(older_than)`` was accepted, an unknown id with control characters was printed raw.
6. A crashed executor cost a full interpreter start each time: a spare now waits once one has crashed.
"""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload import Offload
from offload.jobs import Job, Outcome, record_problem
from offload.stores import Store, open_store
from tests.conftest import engine_url
from tests.faults import ledger
from tests.faults.harness import WorkerSet, children_of, pid_alive, wait_until

RECORD = "tests.faults.jobs:record"
STORE_ENGINES = ["memory", "sqlite", "redis", "postgresql"]


@pytest.fixture
def worker_site(tmp_path: Path) -> Iterator[tuple[Offload, WorkerSet, Path]]:
    url = f"sqlite:///{tmp_path}/offload.db"
    site = f"r{uuid.uuid4().hex[:8]}"
    app = Offload(store=url, site_id=site)
    ws = WorkerSet(url, site, tmp_path, queues=("faults",))
    yield app, ws, ledger.create(tmp_path / "ledger.db")
    ws.kill_all()
    app.close()


@pytest.fixture(params=STORE_ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(engine_url(request.param, tmp_path), f"r{uuid.uuid4().hex[:10]}")
    yield opened
    opened.close()


# -- 1. crash and timeout blame ----------------------------------------------------------------------------------
def test_a_crash_is_charged_to_the_job_that_crashed_not_to_a_batched_one(worker_site: tuple) -> None:
    app, ws, path = worker_site
    calls: list = []
    for i in range(400):  # short jobs: the supervisor prefetches, the executor batches its reports
        calls.append((RECORD, [str(path)]))
        if i % 80 == 40:
            calls.append({"fn": "tests.faults.jobs:exit_hard", "args": [str(path)], "max_attempts": 1,
                          "title": "poison"})
    jobs = app.enqueue_many(calls, queue="faults")
    ws.start("-n", "1", "--burst").proc.wait(120)
    runs = ledger.by_job(ledger.read(path))
    for job in jobs:
        stored = app.get_job(job.id)
        if job.title == "poison":
            assert len(runs[job.id]) == 1, "a poison job ran past its attempt budget"
            assert stored.state == "failed" and "exited with code 3" in stored.error["message"]
        else:  # it may have run twice (its report died with the executor: "ResultLost"), never been blamed
            assert stored.state == "finished"
            assert all(e["type"] == "ResultLost" for e in stored.errors), "a healthy job was blamed for a crash"


def test_a_job_whose_report_died_with_its_executor_counts_its_attempt(worker_site: tuple) -> None:
    app, ws, path = worker_site
    calls: list = []
    for i in range(400):
        calls.append((RECORD, [str(path)]))
        if i % 80 == 40:  # a job allowed one run, its report batched, then a job that takes the executor down
            calls.append({"fn": RECORD, "args": [str(path)], "max_attempts": 1, "title": "once"})
            calls.append({"fn": "tests.faults.jobs:exit_hard", "args": [str(path)], "max_attempts": 1})
    jobs = app.enqueue_many(calls, queue="faults")
    ws.start("-n", "1", "--burst").proc.wait(120)
    runs = ledger.by_job(ledger.read(path))
    for job in jobs:
        assert len(runs.get(job.id, [])) <= job.max_attempts, "a job ran more often than its attempts allow"
        stored = app.get_job(job.id)
        if job.title == "once":
            assert stored.state == "finished" or stored.error["type"] == "ResultLost"


def test_a_failure_just_before_a_crash_keeps_its_own_error(worker_site: tuple) -> None:
    app, ws, path = worker_site
    calls: list = []
    for i in range(400):
        calls.append((RECORD, [str(path)]))
        if i % 80 == 40:
            calls.append({"fn": "tests.faults.jobs:system_exit", "args": [str(path)], "max_attempts": 1,
                          "title": "fails"})
            calls.append({"fn": "tests.faults.jobs:exit_hard", "args": [str(path)], "max_attempts": 1})
    jobs = app.enqueue_many(calls, queue="faults")
    ws.start("-n", "1", "--burst").proc.wait(120)
    runs = ledger.by_job(ledger.read(path))
    for job in (j for j in jobs if j.title == "fails"):
        stored = app.get_job(job.id)
        assert len(runs[job.id]) == 1 and stored.state == "failed" and stored.error["type"] == "SystemExit"


def test_a_job_behind_a_batched_report_still_meets_its_timeout(worker_site: tuple) -> None:
    app, ws, path = worker_site
    calls: list = [(RECORD, [str(path)]) for _ in range(300)]
    calls.append({"fn": "tests.faults.jobs:time_sleep", "args": [str(path), 30], "timeout": 1, "max_attempts": 1})
    calls += [(RECORD, [str(path)])] * 20
    jobs = app.enqueue_many(calls, queue="faults")
    ws.start("-n", "1", "--burst").proc.wait(120)
    hung = app.get_job(jobs[300].id)
    assert hung.state == "failed" and hung.error["reason"] == "timeout"
    assert hung.ended_at - ledger.by_job(ledger.read(path))[hung.id][0].started < 3.0


# -- 2. an expired job keeps its place --------------------------------------------------------------------------
def test_an_expired_job_goes_back_ahead_of_later_jobs(store: Store) -> None:
    now = time.time()
    first = store.enqueue(Job(id=uuid.uuid4().hex, queue="q", func="m:f", max_attempts=3, created_at=now), now)
    claimed = store.claim(["q"], "w1", 5.0, 1, now)
    assert [j.id for j in claimed] == [first.id]
    later = [store.enqueue(Job(id=uuid.uuid4().hex, queue="q", func="m:f", created_at=now + i), now + i)
             for i in (1, 2)]
    assert [j.id for j in store.requeue_expired(now + 10)] == [first.id]
    order = [j.id for j in store.claim(["q"], "w2", 5.0, 3, now + 11)]
    assert order == [first.id, later[0].id, later[1].id]


# -- 3. corrupted and foreign records ----------------------------------------------------------------------------
def test_record_problem_names_what_a_worker_cannot_use() -> None:
    good = Job(id="a", queue="q", func="m:f")
    assert record_problem(good) is None
    assert "payload is bytes" in (record_problem(Job(id="a", queue="q", func="m:f", payload=b"x")) or "")  # type: ignore[arg-type]
    assert "meta is a str" in (record_problem(Job(id="a", queue="q", func="m:f", meta="x")) or "")  # type: ignore[arg-type]
    assert "timeout" in (record_problem(Job(id="a", queue="q", func="m:f", timeout="soon")) or "")  # type: ignore[arg-type]
    assert "exactly one function" in (record_problem(Job(id="a", queue="q")) or "")
    assert record_problem(Job(id="a", queue="q", func="m:f", defect="its spec is bad")) == "its spec is bad"


def test_sqlite_claims_a_row_with_bad_json_instead_of_raising(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db", "s")
    now = time.time()
    job = store.enqueue(Job(id="bad", queue="q", func="m:f", max_attempts=2, created_at=now), now)
    conn = sqlite3.connect(str(tmp_path / "s.db"))
    with conn:
        conn.execute("UPDATE jobs SET meta='{bad', errors='{bad' WHERE id='bad'")
    conn.close()
    [claimed] = store.claim(["q"], "w", 5.0, 1, now)
    assert claimed.id == job.id and "meta is not valid JSON" in (claimed.defect or "")
    assert "errors is not valid JSON" in (claimed.defect or "") and store.get("bad") is not None
    error = {"type": "CorruptJob", "message": "x", "reason": "corrupt"}
    assert store.settle([Outcome("bad", claimed.lease_token or "", "fail", error=error, ended_at=now)], now) == [True]
    assert store.get("bad").state == "failed"  # type: ignore[union-attr]
    store.close()


def test_redis_claims_a_foreign_hash_instead_of_raising(tmp_path: Path) -> None:
    url = engine_url("redis", tmp_path)
    store = open_store(url, f"r{uuid.uuid4().hex[:8]}")
    now = time.time()
    for job_id in ("spec", "bytes"):
        store.enqueue(Job(id=job_id, queue="q", func="m:f", created_at=now), now)
    import redis

    client = redis.Redis.from_url(url.split("?")[0])
    client.hset(f"{store.base}j:spec", "spec", "{bad")  # type: ignore[attr-defined]
    client.hset(f"{store.base}j:bytes", "payload", b"\x80\x04\x95 not utf-8")  # type: ignore[attr-defined]
    client.close()
    claimed = {j.id: j for j in store.claim(["q"], "w", 5.0, 2, now)}
    assert "spec cannot be decoded" in (claimed["spec"].defect or "")
    assert claimed["bytes"].defect is None and isinstance(claimed["bytes"].payload, str)
    outcomes = [Outcome(j.id, j.lease_token or "", "fail", error={"type": "CorruptJob"}, ended_at=now)
                for j in claimed.values()]
    assert store.settle(outcomes, now) == [True, True]
    store.close()


def test_postgres_fails_a_job_whose_errors_is_not_an_array(tmp_path: Path) -> None:
    url = engine_url("postgresql", tmp_path)
    store = open_store(url, f"r{uuid.uuid4().hex[:8]}")
    now = time.time()
    store.enqueue(Job(id="errs", queue="q", func="m:f", created_at=now), now)
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(f'UPDATE "{store.schema}".jobs SET errors = %s WHERE site = %s AND id = %s',  # type: ignore[attr-defined]
                     ('{"not": "an array"}', store.site_id, "errs"))
    [claimed] = store.claim(["q"], "w", 5.0, 1, now)
    assert "errors is a dict" in (record_problem(claimed) or "")
    outcome = Outcome("errs", claimed.lease_token or "", "fail", error={"type": "CorruptJob"}, ended_at=now)
    assert store.settle([outcome], now) == [True]
    assert store.get("errs").errors == [{"type": "CorruptJob"}]  # type: ignore[union-attr]
    store.close()


# -- 4. grandchildren in a new session ---------------------------------------------------------------------------
def test_a_timed_out_job_takes_a_new_session_grandchild_with_it(worker_site: tuple, tmp_path: Path) -> None:
    app, ws, path = worker_site
    pidfile = tmp_path / "pids"
    job = app.enqueue("tests.faults.jobs:spawn_grandchildren", [str(path), str(pidfile), 60, True], queue="faults",
                      timeout=1, max_attempts=1)
    ws.start("-n", "1")
    wait_until(lambda: app.get_job(job.id).state == "failed", 30)
    pids = [int(p) for p in pidfile.read_text().split()]
    wait_until(lambda: not any(pid_alive(p) for p in pids), 5, what="every grandchild gone")


# -- 5. absurd values at the API ---------------------------------------------------------------------------------
def test_absurd_run_times_and_purge_ages_are_refused() -> None:
    app = Offload(store=f"memory://{uuid.uuid4().hex}")
    for options in ({"delay": 1e12}, {"at": 1e300}):
        with pytest.raises(ValueError, match="after the year 9999"):
            app.enqueue(RECORD, **options)
    for older_than in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="older_than"):
            app.purge(older_than)
    assert app.store.count() == 0


def test_an_unknown_id_is_printed_on_one_line() -> None:
    app = Offload(store=f"memory://{uuid.uuid4().hex}")
    with pytest.raises(Exception, match=r'There is no job with ID "a\\nb\\x1b\[2J"') as info:
        app.get_job("a\nb\x1b[2J")
    assert "\n" not in str(info.value)


# -- 6. a spare executor after a crash ---------------------------------------------------------------------------
def test_after_a_crash_a_spare_executor_waits_and_goes_with_the_worker(worker_site: tuple) -> None:
    app, ws, path = worker_site
    crash = app.enqueue("tests.faults.jobs:exit_hard", [str(path)], queue="faults", max_attempts=1)
    worker = ws.start("-n", "1")
    wait_until(lambda: app.get_job(crash.id).state == "failed", 30)
    wait_until(lambda: len(children_of(worker.pid)) == 2, 10, what="an executor and a spare")
    after = app.enqueue(RECORD, [str(path)], queue="faults")
    wait_until(lambda: app.get_job(after.id).state == "finished", 30)
    executors = children_of(worker.pid)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
    wait_until(lambda: not any(pid_alive(p) for p in executors), 10, what="the executors and the spare gone")
