"""The Redis store on the servers of tests/ha: a unix socket, a Sentinel set (master, replica, three sentinels):
what each URL form reaches, errors that name what happened, and ``min_replicas``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from offload.errors import StoreUnavailable
from offload.stores import open_store
from tests.stores.conftest import make_job


def test_a_store_over_a_unix_socket(redis_unix_socket: Any) -> None:
    store = open_store(f"redis+unix://{redis_unix_socket.socket}?db=3&prefix=sock", "site")
    try:
        job = store.enqueue(make_job(), time.time())
        assert store.get(job.id) is not None
        assert redis_unix_socket.client(db=3).get("sock:schema") == b"1"
    finally:
        store.close()


def test_a_replica_named_directly_refuses_writes_as_readonly(redis_sentinel_set: Any) -> None:
    host, port = redis_sentinel_set.replica_addr()
    with pytest.raises(StoreUnavailable) as info:
        open_store(f"redis://{host}:{port}/0", "site")
    message = str(info.value)
    assert "READONLY" in message and f"{host}:{port}" in message and "upgrade" not in message


def test_sentinel_names_the_master_and_a_wrong_service_is_unavailable(redis_sentinel_set: Any) -> None:
    store = open_store(redis_sentinel_set.sentinel_url + "?prefix=named", "site")
    try:
        store.enqueue(make_job(), time.time())
        host, port = redis_sentinel_set.master_addr()
        assert redis_sentinel_set.node_at((host, port)).client().get("named:schema") == b"1"
    finally:
        store.close()
    wrong = redis_sentinel_set.sentinel_url.replace("/mymaster/", "/nosuch/")
    with pytest.raises(StoreUnavailable, match="No master found for 'nosuch'"):
        open_store(wrong, "site")


def test_min_replicas_waits_for_a_replica_and_says_when_none_acknowledged(redis_sentinel_set: Any) -> None:
    store = open_store(redis_sentinel_set.sentinel_url + "?prefix=acked&min_replicas=1", "site")
    try:
        job = store.enqueue(make_job(), time.time())
        replica = redis_sentinel_set.node_at(redis_sentinel_set.replica_addr()).client()
        # Acknowledged means the replica has it: read there at once, with no wait.
        assert replica.hget(f"acked:{{site}}:j:{job.id}", "state") == b"queued"
    finally:
        store.close()
    two = open_store(redis_sentinel_set.sentinel_url + "?prefix=acked&min_replicas=2&timeout=5", "site")
    try:
        with pytest.raises(StoreUnavailable, match=r"only 1 replica\(s\) of the 2 asked for"):
            two.enqueue(make_job(), time.time())
        assert two.count() == 2, "the write was made; only its acknowledgement fell short (reads wait for none)"
    finally:
        two.close()


def test_a_coordinated_failover_is_followed_without_writing_to_the_demoted_master(redis_sentinel_set: Any) -> None:
    """SENTINEL FAILOVER: the old master stays up as a replica. Connections to it answer READONLY (or are closed
    by the role change): the call fails as unavailable, the idle ones are dropped, and the next call asks the
    sentinels and reaches the new master."""
    sentinels = redis_sentinel_set
    store = open_store(sentinels.sentinel_url + "?prefix=coord", "site")
    try:
        store.enqueue(make_job(), time.time())
        old = sentinels.master_addr()
        sentinels.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", sentinels.service)
        new = sentinels.wait_for_failover(old)
        sentinels.wait_replica_of(sentinels.node_at(old), new[1])
        failures: list[str] = []
        deadline = time.monotonic() + 10
        while True:
            try:
                job = store.enqueue(make_job(), time.time())
                break
            except StoreUnavailable as exc:
                failures.append(str(exc))
                assert time.monotonic() < deadline, failures
        assert len(failures) <= 1, failures  # at most the one call on the pooled connection to the old master
        assert sentinels.node_at(new).client().exists(f"coord:{{site}}:j:{job.id}") == 1
        assert store.count() == 2
    finally:
        store.close()
