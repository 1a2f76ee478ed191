"""A Sentinel failover under load: a producer and a worker (real processes) on ``redis+sentinel://``, the master
SIGKILLed half-way, then restarted as the stale master it was (AOF on)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults import ledger
from tests.faults.harness import Producer, WorkerSet, new_site
from tests.waiting import wait_until

JOBS = 3000


def _offload_calls(node: Any) -> int:
    """FCALL and EVALSHA calls a node has run since it started: every offload write is one of them (a replica
    applies its master's writes as the commands they made, never as these calls)."""
    stats = node.client().info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("fcall", "evalsha", "eval"))


@pytest.mark.parametrize(
    ("redis_sentinel_set", "min_replicas"),
    [({"replicas": 1}, 0), ({"replicas": 2}, 1)],
    ids=["one-replica", "two-replicas-min_replicas-1"],
    indirect=["redis_sentinel_set"],
)
def test_a_failover_under_load(redis_sentinel_set: Any, min_replicas: int, tmp_path: Path) -> None:
    """Producer and worker carry on within 10 s of the promotion, no process exits, and the restarted old
    master gets no write. With one replica, replication is asynchronous: an acknowledged enqueue still in
    flight to the replica when the master dies is lost (docs/stores.md), so the loss check is made with
    ``min_replicas=1`` (acknowledged once a replica has it), which needs a second replica for the promoted
    master to keep accepting writes: Sentinel promotes the replica with the most data."""
    sentinels = redis_sentinel_set
    url = f"{sentinels.sentinel_url}?prefix=failover&min_replicas={min_replicas}&timeout=5&connect_timeout=1"
    site = new_site()
    book = ledger.create(tmp_path / "ledger.db")
    workers = WorkerSet(url, site, tmp_path)
    producer = Producer.start(url, site, tmp_path, book, batch=10, every=0.01, limit=JOBS)
    worker = workers.start()
    try:
        wait_until(lambda: len(producer.acknowledged()) >= JOBS // 3 and ledger.count_done(book) >= 100, 60,
                   what="a third of the jobs acknowledged, some run")
        old = sentinels.kill_master()
        killed_at = time.time()
        new = sentinels.wait_for_failover(old)
        promoted_at = time.time()
        assert new != old

        # Both carry on against the new master within 10 s of the promotion.
        wait_until(lambda: any(t > promoted_at for t in producer.acknowledged().values()), 10,
                   what="the producer's first acknowledged enqueue after the promotion")
        wait_until(lambda: any(e.started > promoted_at for e in ledger.read(book)), 10,
                   what="the worker's first job started after the promotion")

        # The old master comes back as it was (a master, with its AOF) until Sentinel demotes it: nobody
        # writes to it meanwhile.
        old_node = sentinels.node_at(old)
        sentinels.restart_old_master(as_replica=False)
        restarted_at = time.time()
        sentinels.wait_replica_of(old_node, new[1], timeout=40)
        assert _offload_calls(old_node) == 0, "offload wrote to the old master after its restart"

        wait_until(lambda: producer.proc.poll() is not None or len(producer.acknowledged()) >= JOBS, 120,
                   what=f"{JOBS} jobs acknowledged")
        acknowledged = set(producer.acknowledged())
        assert len(acknowledged) == JOBS, producer.proc.poll()
        if min_replicas:
            wait_until(lambda: ledger.count_done(book) >= JOBS, 120, what="every acknowledged job run")
            done = {job for job, runs in ledger.by_job(ledger.read(book)).items() if any(r.ended for r in runs)}
            assert acknowledged <= done, f"{len(acknowledged - done)} acknowledged job(s) never ran"
        assert worker.alive(), worker.log()[-3000:]
        assert producer.proc.poll() in (None, 0)
        assert _offload_calls(old_node) == 0
        assert "Traceback" not in worker.log(), worker.log()[-3000:]
        print(f"killed at +0, promoted at +{promoted_at - killed_at:.1f} s, old master back at "
              f"+{restarted_at - killed_at:.1f} s")
    finally:
        producer.stop()
        workers.stop_all()
