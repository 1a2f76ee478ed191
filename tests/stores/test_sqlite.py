"""SQLite engine specifics: schema upgrades and the counters kept by triggers."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from offload.jobs import Outcome
from offload.stores import sqlite_schema
from offload.stores.sqlite import SQLiteStore
from tests.stores.conftest import make_job


def test_upgrade_to_counters_backfills_them(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/old.db"
    monkeypatch.setattr("offload.stores.sqlite.MIGRATIONS", sqlite_schema.MIGRATIONS[:1])
    old = SQLiteStore(url, "site")
    old.open()
    old.enqueue_many([make_job("a") for _ in range(3)] + [make_job("b")], time.time())
    assert old.migrate() == 1
    old.close()
    monkeypatch.setattr("offload.stores.sqlite.MIGRATIONS", sqlite_schema.MIGRATIONS)
    new = SQLiteStore(url, "site")
    new.open()
    assert new.migrate() == len(sqlite_schema.MIGRATIONS)
    assert new.counts() == {"a": {"queued": 3}, "b": {"queued": 1}}
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
