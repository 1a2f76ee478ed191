"""A worker whose store restarts keeps running, reconnects, and loses nothing the store acknowledged.

These tests restart a private server (tests/servers.py), never the machine's shared one.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from offload.jobs import FINISHED
from tests import jobfuncs
from tests.servers import PostgresServer, RedisServer
from tests.worker.conftest import Workers, wait_until
from tests.worker.test_worker import ledger_lines


def _run_through_a_restart(workers: Workers, restart: object, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    first = workers.app.enqueue(jobfuncs.add, [1, 1])
    proc = workers.start("--lease", "30")
    assert workers.wait_state(first.id, FINISHED).result == 2
    # A job that is running while the store goes away: its result is reported once the store is back.
    running = workers.app.enqueue(jobfuncs.ledger_then_sleep, [str(ledger), 1.5])
    wait_until(lambda: ledger_lines(ledger))
    restart()  # type: ignore[operator]
    workers.app.close()
    after = workers.app.enqueue(jobfuncs.add, [2, 3])
    assert workers.wait_state(after.id, FINISHED, timeout=30).result == 5
    assert proc.poll() is None, "the worker recovered without a restart of its own"
    return running.id  # type: ignore[return-value]


def test_worker_survives_a_postgres_restart(private_postgres: PostgresServer, tmp_path: Path) -> None:
    workers = Workers(f"{private_postgres.url}?schema=restart", f"r{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        running_id = _run_through_a_restart(workers, private_postgres.restart, tmp_path)
        job = workers.wait_state(running_id, FINISHED, timeout=30)
        assert job.attempts == 1, "the result reported after the outage was accepted"
        log = workers.log(workers.procs[0])
        outages = log.count("Store unavailable")
        assert outages <= 1, "logged once per outage"
        assert outages == 0 or "Store reachable again" in log
    finally:
        workers.stop_all()


def test_worker_survives_a_redis_restart_without_persistence(private_redis: RedisServer, tmp_path: Path) -> None:
    workers = Workers(private_redis.url, f"r{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        _run_through_a_restart(workers, private_redis.restart, tmp_path)
        # Redis kept nothing (no persistence): the job that was running is gone from the store. Documented.
        log = workers.log(workers.procs[0])
        assert log.count("Store unavailable") <= 1
    finally:
        workers.stop_all()


def test_redis_with_aof_keeps_acknowledged_jobs_across_a_restart(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True)
    server.start()
    workers = Workers(server.url, f"r{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        jobs = workers.app.enqueue_many([(jobfuncs.add, [i, i]) for i in range(50)])
        # appendfsync everysec: wait past the one-second window the docs promise, then kill -9.
        import time

        time.sleep(1.5)
        server.restart()
        workers.app.close()
        assert workers.app.store.count() == 50
        proc = workers.start("--burst")
        assert proc.wait(60) == 0
        assert all(workers.job(job.id).state == FINISHED for job in jobs)
    finally:
        workers.stop_all()
        server.cleanup()
