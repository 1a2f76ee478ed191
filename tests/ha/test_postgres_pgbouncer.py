"""The PostgreSQL store behind PgBouncer (Debian's package, started per test before a private PostgreSQL).

Real worker processes drain through transaction pooling with nothing lost or run twice, counted by the fault
battery's independent ledger (tests/faults/ledger.py: one SQLite row per execution, written by the job bodies);
a store without ``pooler=`` gets an error that says to add it; a ``listen_url`` beside the pooler wakes idle
workers; protocol-level prepared statements through PgBouncer 1.21 or later. The contract suite runs through
PgBouncer too (tests/stores/conftest.py, engines ``postgresql-pgbouncer`` and ``-statement``).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from offload.errors import StoreError
from offload.stores import open_store
from tests.faults import ledger
from tests.faults.harness import Producer, WorkerSet, new_site
from tests.ha.servers import PgBouncer
from tests.stores.conftest import make_job
from tests.waiting import wait_until


def pooled_url(bouncer: PgBouncer, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"schema": "offload_ha", **options}.items())
    return f"{bouncer.url}?{query}"


def test_two_workers_drain_2000_jobs_through_transaction_pooling_with_none_lost_or_repeated(
        pgbouncer: PgBouncer, tmp_path: Path) -> None:
    url = pooled_url(pgbouncer, pooler="transaction")
    site = new_site()
    book = ledger.create(tmp_path / "ledger.db")
    open_store(url, site).close()  # migrated once, so the workers and the producer start on a ready schema
    workers = WorkerSet(url, site, tmp_path, options=("-n", "2"))
    for _ in range(2):
        workers.start()
    producer = Producer.start(url, site, tmp_path, book, batch=20, every=0.005, limit=2000)
    try:
        assert producer.proc.wait(120) == 0
        acknowledged = set(producer.acknowledged())
        assert len(acknowledged) == 2000

        def drained() -> bool:
            assert all(w.alive() for w in workers.workers), [w.log()[-2000:] for w in workers.workers]
            return ledger.count_done(book) >= 2000

        wait_until(drained, 120, interval=0.1, what="2,000 jobs run")
    finally:
        codes = workers.stop_all()
    assert codes == [0, 0], "both workers ran until told to stop"
    summary = ledger.delivery_summary(ledger.read(book), acknowledged, [])
    assert (summary["lost"], summary["duplicates"]) == (0, 0), summary
    assert summary["executions"] == 2000
    assert pgbouncer.pools()["pool_mode"] == "transaction"
    logs = "".join(w.log() for w in workers.workers)
    assert "Traceback" not in logs and "prepared statement" not in logs, logs[-3000:]


@pytest.mark.parametrize("pgbouncer", [{"default_pool_size": 1}], indirect=True)
def test_without_pooler_the_error_says_to_add_it(pgbouncer: PgBouncer) -> None:
    # Both clients share PgBouncer's one server connection: the second to prepare "_pg3_0" finds it taken.
    url = pooled_url(pgbouncer, prepare_threshold="0")
    stores = []
    try:
        with pytest.raises(StoreError) as caught:
            stores += [open_store(url, new_site()), open_store(url, new_site())]
            for _ in range(3):
                for store in stores:
                    store.count(states=["queued"])
        message = str(caught.value)
        assert "_pg3_" in message and "add pooler=transaction (or pooler=statement) to the store URL" in message
    finally:
        for store in stores:
            store.close()


def test_a_listen_url_beside_the_pooler_wakes_idle_workers(pgbouncer: PgBouncer) -> None:
    site = new_site()
    direct = pgbouncer.backend.url
    url = pooled_url(pgbouncer, pooler="transaction", listen_url=direct.replace(":", "%3A").replace("/", "%2F"))
    waiter, producer = open_store(url, site), open_store(url, site)
    try:
        assert not waiter.wait_for_work(["default"], 0.01)
        result: list[bool] = []
        thread = threading.Thread(target=lambda: result.append(waiter.wait_for_work(["default"], 30.0)))
        thread.start()
        began = time.monotonic()
        producer.enqueue(make_job(), time.time())
        thread.join(30)
        assert result == [True] and time.monotonic() - began < 5
        listener = waiter.link.listener  # type: ignore[attr-defined]
        assert listener is not None and listener.info.port == pgbouncer.backend.port, "LISTENs on the backend"
    finally:
        waiter.close()
        producer.close()


@pytest.mark.parametrize("pgbouncer", [{"max_prepared_statements": 100}], indirect=True)
def test_protocol_level_prepared_statements_with_pgbouncer_1_21(pgbouncer: PgBouncer) -> None:
    """Only where PgBouncer has max_prepared_statements (1.21+; the fixture skips locally, fails in CI, on an
    older one: see _skip_old below, which makes it a plain skip on Debian's 1.18)."""
    url = pooled_url(pgbouncer, pooler="transaction", prepare_threshold="0")
    stores = [open_store(url, f"s{uuid.uuid4().hex[:8]}") for _ in range(3)]
    try:
        for _ in range(10):
            for store in stores:
                store.enqueue(make_job(), time.time())
                assert len(store.claim(["default"], "w", 30, 1, time.time())) == 1
    finally:
        for store in stores:
            store.close()


@pytest.fixture(autouse=True)
def _skip_old(request: pytest.FixtureRequest) -> None:
    """Protocol-level prepared statements through PgBouncer need 1.21 or later; Debian 12 ships 1.18, which
    refuses the setting. That test is skipped (not failed) there: its absence is the package's, not ours."""
    if request.node.name.startswith("test_protocol_level_prepared_statements"):
        version = PgBouncer.installed_version(PgBouncer.find_binary())
        if version < (1, 21):
            pytest.skip(f"PgBouncer {'.'.join(map(str, version))} has no max_prepared_statements (1.21+)")
