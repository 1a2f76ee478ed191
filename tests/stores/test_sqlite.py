"""SQLite engine specifics: schema upgrades, the counters kept by triggers, and the bulk insert."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from offload.jobs import Job, Outcome
from offload.stores import open_store, sqlite_schema
from offload.stores.sqlite import _BATCH, SQLiteStore, _batches
from tests.stores.conftest import make_job


def old_database(tmp_path: Path, version: int, queues: list[str], monkeypatch) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """A database at schema ``version`` holding one queued job per entry of ``queues``, written as offload then
    did (the columns of schema 1). Returns its URL and the job ids in enqueue order."""
    url = f"sqlite:///{tmp_path}/old.db"
    monkeypatch.setattr("offload.stores.sqlite.MIGRATIONS", sqlite_schema.MIGRATIONS[:version])
    old = SQLiteStore(url, "site")
    old.open()
    assert old.migrate() == version
    old.close()
    conn = sqlite3.connect(f"{tmp_path}/old.db")
    ids = [make_job().id for _ in queues]
    now = time.time() - 100
    with conn:
        for i, (job_id, queue) in enumerate(zip(ids, queues, strict=True)):
            conn.execute("INSERT INTO jobs (site, id, queue, func, payload, state, created_at, enqueued_at) "
                         "VALUES ('site', ?, ?, 'tests.jobfuncs:noop', '[[],{}]', 'queued', ?, ?)",
                         (job_id, f"site:{queue}", now + i, now + i))
    conn.close()
    monkeypatch.setattr("offload.stores.sqlite.MIGRATIONS", sqlite_schema.MIGRATIONS)
    return url, ids


def test_upgrade_to_counters_backfills_them(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, _ = old_database(tmp_path, 1, ["a", "a", "a", "b"], monkeypatch)
    new = SQLiteStore(url, "site")
    new.open()
    assert new.migrate() == len(sqlite_schema.MIGRATIONS)
    assert new.counts() == {"a": {"queued": 3}, "b": {"queued": 1}}
    new.close()


def test_upgrade_to_priorities_keeps_waiting_jobs_in_order_at_priority_0(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, ids = old_database(tmp_path, 2, ["a", "a", "a"], monkeypatch)
    new = SQLiteStore(url, "site")
    new.open()
    assert new.migrate() == len(sqlite_schema.MIGRATIONS) >= 3
    assert [new.get(i).priority for i in ids] == [0, 0, 0]
    urgent = make_job("a", priority=0)
    later = make_job("a", priority=1)
    new.enqueue_many([later, urgent], time.time())
    assert [j.id for j in new.claim(["a"], "w", 30, 5, time.time())] == [*ids, urgent.id, later.id]
    assert new.paused() == {}
    new.close()


def test_counters_match_a_recount_through_every_transition(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/c.db", "site")
    store.open()
    now = time.time()
    store.enqueue_many([make_job("a") for _ in range(6)] + [make_job("b", run_at=now + 60)], now)
    a, b, c, d = store.claim(["a"], "w", 30, 4, now)
    store.settle([Outcome(a.id, a.lease_token, "finish", result_json="1", ended_at=now),
                  Outcome(b.id, b.lease_token, "fail", error={}, ended_at=now - 100),
                  Outcome(c.id, c.lease_token, "retry", error={}, retry_at=now + 5, ended_at=now),
                  Outcome(d.id, d.lease_token, "release")], now)
    store.cancel(store.list(queues=["a"], states=["queued"])[0].id, now)
    store.purge(now - 50)
    store.clear(["b"])
    conn = sqlite3.connect(store.path)
    recount = {}
    for queue, state, n in conn.execute("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"):
        recount.setdefault(queue.split(":", 1)[1], {})[state] = n
    assert store.counts() == recount == {"a": {"queued": 2, "finished": 1, "scheduled": 1, "canceled": 1}}
    assert store.count(states=["queued", "scheduled"]) == 3 and store.count(["a"], ["finished"]) == 1
    store.close()


def test_poll_options(tmp_path: Path) -> None:
    import pytest

    from offload.errors import StoreURLError

    store = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}?poll=0.004&idle_poll=0.2")
    assert (store.poll, store.idle_poll) == (0.004, 0.2)
    store = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}?poll=0.1&idle_poll=0.01")
    assert store.idle_poll == 0.1, "never slower while busy than while idle"
    defaults = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}")
    assert (defaults.poll, defaults.idle_poll) == (0.001, 0.05)
    with pytest.raises(StoreURLError, match="idle_poll"):
        SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}?idle_poll=soon")


def test_an_idle_worker_backs_off_and_still_notices_work(tmp_path: Path) -> None:
    """After a second without work the poll slows down (to idle_poll); a job still ends the wait."""
    url = f"sqlite:///{tmp_path / 'idle.db'}?idle_poll=0.05"
    waiter, producer = SQLiteStore(url, "s"), SQLiteStore(url, "s")
    waiter.open()
    producer.open()
    try:
        assert waiter.wait_for_work(["default"], 1.3) is False  # idle long enough to back off
        producer.enqueue(make_job(), time.time())
        started = time.monotonic()
        assert waiter.wait_for_work(["default"], 5.0) is True
        assert time.monotonic() - started < 1.0
        assert waiter._busy_until > time.monotonic(), "work found: fast polling again"
    finally:
        waiter.close()
        producer.close()


def test_a_bulk_insert_stores_the_same_rows_as_single_inserts(tmp_path: Path) -> None:
    """Multi-row INSERTs of every size the bulk path uses (300 = 256 + 32 + 8 + 4) write what enqueue writes."""
    store = SQLiteStore(f"sqlite:///{tmp_path}/b.db", "site")
    store.open()
    now = time.time()

    def jobs(tag: str) -> list[Job]:
        return [
            make_job(
                "ab"[i % 2],
                now=now + i * 1e-6,
                id=f"{tag}{i}",
                run_at=now + 60 if i % 3 == 0 else None,
                title=f"job {i}" if i % 4 == 0 else None,
                task="ext.echo" if i % 5 == 0 else None,
                retry={"delay": i} if i % 7 == 0 else None,
                meta={"title": None, "i": i},
                timeout=None if i % 2 else 9.5,
                unique_key=f"{tag}{i}" if i % 6 == 0 else None,
                payload=f"[[{i}],{{}}]",
                priority=i % 10,
            )
            for i in range(300)
        ]

    for job in jobs("s"):
        store.enqueue(job, now)
    assert not any(job.duplicate for job in store.enqueue_many(jobs("b"), now))
    conn = sqlite3.connect(store.path)
    query = "SELECT * FROM jobs WHERE id LIKE ? ORDER BY seq"
    # The columns but seq, the ids and unique keys without their tag (unique_key is followed by priority and
    # limit_key)
    single = [(r[1], r[2][1:], *r[3:-3], (r[-3] or "")[1:], *r[-2:]) for r in conn.execute(query, ("s%",))]
    bulk = [(r[1], r[2][1:], *r[3:-3], (r[-3] or "")[1:], *r[-2:]) for r in conn.execute(query, ("b%",))]
    assert len(bulk) == 300 and bulk == single
    conn.close()
    store.close()


def test_bulk_statements_come_in_few_sizes() -> None:
    """Each size is one prepared statement, and preparing one costs as much as running it: keep them few."""
    sizes = set()
    for total in range(1, 3 * _BATCH):
        batches = list(_batches(total))
        assert [start for start, _ in batches] == [sum(n for _, n in batches[:i]) for i in range(len(batches))]
        assert sum(n for _, n in batches) == total
        sizes.update(n for _, n in batches)
    assert sizes == {2**i for i in range(_BATCH.bit_length())}


def test_workers_opening_a_new_database_together_all_get_in(tmp_path: Path) -> None:
    # Regression: switching a new file to WAL needs an exclusive lock, and SQLite answered "database is locked"
    # at once (no busy wait) to some of the connections opening it at the same moment: about one start in 30
    # of eight workers on a fresh database failed. A race, so it is run many times.
    failures: list[BaseException] = []
    for round_ in range(100):
        url = f"sqlite:///{tmp_path}/fresh-{round_}.db"
        barrier = threading.Barrier(8)

        def open_one(url: str = url, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                open_store(url, "s").close()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
