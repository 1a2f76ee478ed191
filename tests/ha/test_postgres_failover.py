"""The PostgreSQL store through a failover: primary + streaming standby (``pg_basebackup -R``), a worker and a
producer on a multi-host URL, the primary stopped with ``pg_ctl stop -m immediate`` (a crash) mid-drain of
3,000 jobs, the standby promoted.

With and without ``target_session_attrs=read-write``: the worker never exits (a read-only standby, a refused
or reset connection and an immediate shutdown are outages it waits out), it runs jobs again within 15 s of
the promotion, and every job the store acknowledged runs (counted by the fault battery's independent ledger).
The primary replicates synchronously (``synchronous_standby_names``), which is what makes an acknowledged
enqueue survive the loss of the primary at all; with asynchronous replication the last transactions before a
crash may be missing on the standby (docs/deployment.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from offload.stores import open_store
from tests.faults import ledger
from tests.faults.harness import Offload, Producer, WorkerSet, new_site
from tests.ha.servers import PostgresPrimaryStandby
from tests.waiting import wait_until

JOBS = 3000


def replicate_synchronously(servers: PostgresPrimaryStandby) -> None:
    with psycopg.connect(servers.primary_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute("SELECT pg_reload_conf()")
        wait_until(lambda: conn.execute("SELECT sync_state FROM pg_stat_replication").fetchone() == ("sync",),
                   30, what="the standby replicating synchronously")


def offload_clients(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'offload'").fetchone()
        return int(row[0]) if row else 0


@pytest.mark.parametrize("attrs", [None, "read-write"], ids=["no-target-session-attrs", "read-write"])
def test_a_worker_rides_out_a_failover_and_every_acknowledged_job_runs(
        postgres_primary_standby: PostgresPrimaryStandby, tmp_path: Path, attrs: str | None) -> None:
    servers = postgres_primary_standby
    replicate_synchronously(servers)
    url = servers.multi_host_url(attrs) + ("&" if attrs else "?") + "schema=failover&connect_timeout=2"
    site = new_site()
    book = ledger.create(tmp_path / "ledger.db")
    app = Offload(store=url, site_id=site)
    first = app.enqueue_many([{"fn": "tests.faults.jobs:record", "args": [str(book)], "max_attempts": 20}
                              for _ in range(JOBS)], queue="faults")
    acknowledged = {job.id for job in first}
    app.close()
    workers = WorkerSet(url, site, tmp_path, options=("-n", "2"))
    worker = workers.start()
    producer = Producer.start(url, site, tmp_path, book, batch=10, every=0.01)

    def alive_and(condition: bool) -> bool:
        assert worker.alive(), f"the worker exited:\n{worker.log()[-4000:]}"
        return condition

    try:
        wait_until(lambda: alive_and(ledger.count_done(book) >= JOBS // 3), 120, interval=0.05,
                   what="a third of the backlog run")
        crashed = time.time()
        servers.stop_primary("immediate")
        # Promoted only once the worker has met the outage (and, without target_session_attrs, the read-only
        # standby that libpq then connects it to), as in a failover that takes a while to decide.
        wait_until(lambda: alive_and("Store unavailable:" in worker.log()), 30, what="the worker noticing")
        if attrs is None:
            wait_until(lambda: alive_and(offload_clients(servers.standby_url) > 0), 30,
                       what="offload connected to the read-only standby")
        servers.promote_standby()
        promoted = time.time()
        wait_until(lambda: alive_and(any(e.started > promoted for e in ledger.read(book))), 15, interval=0.1,
                   what="a job started within 15 s of the promotion")
        assert producer.proc.poll() is None, "the producer rides out the failover too"
        time.sleep(1.0)  # the producer goes on enqueueing on the new primary for a moment
        assert producer.stop() == 0
        acknowledged |= set(producer.acknowledged())
        wait_until(lambda: alive_and(ledger.count_done(book) >= len(acknowledged)), 120, interval=0.1,
                   what=f"all {len(acknowledged)} acknowledged jobs run")
    finally:
        codes = workers.stop_all()
    summary = ledger.delivery_summary(ledger.read(book), acknowledged, [])
    assert summary["lost"] == 0, summary
    assert codes == [0], "the worker ran until told to stop"
    log = worker.log()
    resumed = min(e.started for e in ledger.read(book) if e.started > promoted)
    print(f"\nfailover ({attrs}): crash -> promoted {promoted - crashed:.2f} s, promoted -> first job "
          f"{resumed - promoted:.2f} s; {summary['duplicates']} job(s) run twice; "
          f"{len(acknowledged) - JOBS} enqueued by the producer")
    assert log.count("Store unavailable:") == 1, "one outage, logged once:\n" + log[-4000:]
    print(next(line for line in log.splitlines() if "Store unavailable:" in line))
    assert "Store reachable again" in log
    store = open_store(url, site)
    try:
        assert store.count(states=["queued", "scheduled"]) == 0
    finally:
        store.close()
