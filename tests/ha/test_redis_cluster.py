"""The Redis store on a Redis Cluster of three masters (``redis+cluster://``): sites on different shards, every
node usable as the one the URL names, redirections followed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import key_slot

from offload import Offload
from offload.errors import StoreError
from offload.jobs import new_id
from offload.stores import open_store
from tests.faults import ledger
from tests.faults.harness import WorkerSet
from tests.stores.conftest import make_job

JOBS = 5000
BATCH = 100


def _sites_on_two_shards(cluster: Any) -> list[str]:
    """Two site ids whose keys live on different masters (``offload:{<site>}:...``)."""
    client = cluster.cluster_client()
    try:
        owners: dict[str, str] = {}
        for n in range(1000):
            site = f"s{n}"
            owner = client.get_node_from_key(f"offload:{{{site}}}:").name
            if owner not in owners.values():
                owners[site] = owner
            if len(owners) == 2:
                return list(owners)
    finally:
        client.close()
    raise AssertionError("no two sites on different shards")


def _url(cluster: Any, index: int) -> str:
    host, port = cluster.addrs[index % len(cluster.addrs)]
    return f"redis+cluster://{host}:{port}?timeout=10"


def test_two_sites_on_different_shards_lose_and_repeat_nothing(redis_cluster: Any, tmp_path: Path) -> None:
    sites = _sites_on_two_shards(redis_cluster)
    book = ledger.create(tmp_path / "ledger.db")
    apps = {(site, i): Offload(store=_url(redis_cluster, i), site_id=site) for site in sites for i in range(3)}
    enqueued: dict[str, set[str]] = {site: set() for site in sites}
    for n in range(JOBS // BATCH):  # each batch through the next node named in the URL, sites alternating
        site = sites[n % 2]
        ids = [new_id() for _ in range(BATCH)]
        apps[site, n % 3].enqueue_many(
            [{"fn": "tests.faults.jobs:record", "args": [str(book), 0.0], "job_id": job_id} for job_id in ids],
            queue="faults")
        enqueued[site].update(ids)
    for app in apps.values():
        app.close()
    workers = [WorkerSet(_url(redis_cluster, i + 1), site, tmp_path).start("--burst") for i, site in enumerate(sites)]
    for worker in workers:
        assert worker.proc.wait(180) == 0, worker.log()[-3000:]
    runs = ledger.by_job(ledger.read(book))
    everything = enqueued[sites[0]] | enqueued[sites[1]]
    assert len(everything) == JOBS
    assert not everything - set(runs), f"{len(everything - set(runs))} job(s) lost"
    twice = [job for job, done in runs.items() if len(done) != 1 or done[0].ended is None]
    assert not twice, f"{len(twice)} job(s) run more than once or unfinished"
    # Each site's jobs were on its own shard: the keys of both sites are spread over two masters.
    holders = set()
    for node in redis_cluster.nodes:
        client = node.client()
        if any(client.scan_iter(match="offload:{s*}:schema", count=1000)):
            holders.add(node.address)
        client.close()
    assert len(holders) == 2


def test_a_moved_slot_is_followed(redis_cluster: Any) -> None:
    """Move the slot of a site to another master under an open store: its next calls get MOVED, read the
    slot map again and go to the new owner; nothing is lost."""
    site = "moving"
    store = open_store(_url(redis_cluster, 0) + "&prefix=mv", site)
    try:
        job = store.enqueue(make_job(), time.time())
        slot = key_slot(f"mv:{{{site}}}:".encode())
        client = redis_cluster.cluster_client()
        source = client.get_node_from_key(f"mv:{{{site}}}:")
        target = next(n for n in client.get_primaries() if n.name != source.name)
        src, dst = source.redis_connection, target.redis_connection
        ids = {n.name: n.redis_connection.execute_command("CLUSTER", "MYID") for n in (source, target)}
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.name])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.name])
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
            src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
        for node in client.get_primaries():
            node.redis_connection.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.name])
        client.close()

        assert store.get(job.id) is not None
        assert [j.id for j in store.claim(["default"], "w", 30.0, 5, time.time())] == [job.id]
        assert target.name in store._link.where()  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_cluster_node_named_as_one_server_says_so(redis_cluster: Any) -> None:
    """A redis:// URL naming a cluster node: the redirection is named (MOVED) with what to do, never taken for a
    schema from another offload version."""
    host, port = redis_cluster.addrs[0]
    client = redis_cluster.cluster_client()
    try:
        prefix = next(f"p{n}" for n in range(1000)
                      if client.get_node_from_key(f"p{n}:schema").name != f"{host}:{port}")
    finally:
        client.close()
    with pytest.raises(StoreError) as info:
        open_store(f"redis://{host}:{port}/0?prefix={prefix}", "site")
    message = str(info.value)
    assert "MOVED" in message and "redis+cluster://" in message and "upgrade" not in message
