"""Smoke tests for tests/ha/servers.py: each setup does what it claims, seen only through third-party clients
(redis-py, psycopg), so that store tests built on these fixtures can trust them."""

from __future__ import annotations

import stat
import threading
from typing import Any

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as ClusterClient
from redis.retry import Retry

from tests.ha.servers import HOST, PgBouncer, PostgresPrimaryStandby, RedisCluster, RedisSentinelSet, RedisTLS
from tests.waiting import wait_until

pytestmark = pytest.mark.ha


def _or_none(call: Any, *args: Any) -> Any:
    """``call(*args)``, or None while the server it needs is unreachable (during a failover)."""
    try:
        return call(*args)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return None


# Redis Sentinel ------------------------------------------------------------------------------------------------


def test_sentinel_fails_over_to_the_replica_and_takes_the_old_master_back(redis_sentinel_set: RedisSentinelSet) -> None:
    servers = redis_sentinel_set
    first, second = (node.address for node in servers.nodes)
    sentinel = servers.sentinel_client()
    assert sentinel.discover_master(servers.service) == servers.master_addr() == first
    assert sentinel.discover_slaves(servers.service) == [second]

    master = sentinel.master_for(servers.service)
    assert master.config_get("appendonly") == {"appendonly": "yes"}
    master.set("key", "before")
    assert master.execute_command("WAIT", 1, 5000) == 1  # the replica has it before the master dies

    old = servers.kill_master()
    assert old == first
    new = servers.wait_for_failover(old, timeout=20)
    assert new == second
    assert servers.node_at(new).client().info("replication")["role"] == "master"
    assert sentinel.discover_master(servers.service) == new

    # The client made before the failover finds the new master through Sentinel, with the replicated write.
    assert wait_until(lambda: _or_none(master.get, "key"), timeout=10, what="master_for reaching a master") == b"before"
    assert master.connection_pool.get_master_address() == new
    master.set("key", "after")

    assert servers.restart_old_master() == old
    old_node = servers.node_at(old).client()
    assert old_node.info("replication")["role"] == "slave"
    assert wait_until(lambda: old_node.get("key"), timeout=10, what="the old master replicating") == b"after"
    wait_until(lambda: sentinel.discover_slaves(servers.service) == [old], timeout=10,
               what="Sentinel listing the old master as the replica")


# Redis Cluster -------------------------------------------------------------------------------------------------


def test_cluster_spreads_keys_over_its_three_masters(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.addrs) == 3
    for node in redis_cluster.nodes:
        info = redis_cluster.cluster_info(node)
        assert info is not None and info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "3"

    client = ClusterClient.from_url(redis_cluster.url)
    try:
        assert {(n.host, n.port) for n in client.get_primaries()} == set(redis_cluster.addrs)
        for i in range(300):
            client.set(f"key:{i}", i)
        assert client.get("key:7") == b"7"
    finally:
        client.close()
    sizes = [node.client().dbsize() for node in redis_cluster.nodes]
    assert sum(sizes) == 300
    assert all(size > 50 for size in sizes), sizes  # ~100 each: the slots are split evenly


def test_cluster_node_killed_and_restarted(redis_cluster: RedisCluster) -> None:
    client = redis_cluster.cluster_client()
    try:
        client.set("before", 1)
        redis_cluster.kill_node(1)
        redis_cluster.wait_state("fail", timeout=20)  # its slots have no replica to take them over
        redis_cluster.restart_node(1)
        redis_cluster.wait_state("ok", timeout=20)
        assert wait_until(lambda: _or_none(client.set, "after", 2), timeout=10, what="a write to the cluster")
        assert client.get("after") == b"2"
    finally:
        client.close()


# Redis over a unix socket and over TLS -------------------------------------------------------------------------


def test_unix_socket_only(redis_unix_socket: Any) -> None:
    server = redis_unix_socket
    assert server.url == f"unix://{server.socket}?db=0"
    by_url = redis.Redis.from_url(server.url)
    by_path = redis.Redis(unix_socket_path=str(server.socket))
    by_url.set("key", "value")
    assert by_path.get("key") == b"value"
    assert by_path.config_get("port") == {"port": "0"}  # no TCP listener
    assert stat.S_IMODE(server.socket.stat().st_mode) == 0o700
    by_url.close()
    by_path.close()


def test_tls_requires_a_client_certificate(redis_tls: RedisTLS) -> None:
    assert redis_tls.url == f"rediss://{HOST}:{redis_tls.port}/0"
    client = redis.Redis.from_url(redis_tls.url, ssl_ca_certs=str(redis_tls.ca),
                                  ssl_certfile=str(redis_tls.client_cert), ssl_keyfile=str(redis_tls.client_key))
    client.set("key", "value")
    assert client.get("key") == b"value"
    assert client.config_get("tls-auth-clients") == {"tls-auth-clients": "yes"}
    client.close()

    # TLS 1.3 ends the handshake before the server checks the certificate, so the refusal surfaces as the
    # server's alert or as a reset of the first write, depending on timing: no match on the message.
    with pytest.raises(redis.exceptions.ConnectionError):
        redis_tls.client(with_cert=False).ping()
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis_tls.client(ssl_ca_certs=str(redis_tls.certs.other_ca)).ping()  # a CA that did not sign it
    with pytest.raises(redis.exceptions.ConnectionError, match="reset by peer"):  # plain TCP
        redis.Redis(host=HOST, port=redis_tls.port, socket_timeout=2, retry=Retry(NoBackoff(), 0)).ping()


@pytest.mark.parametrize("redis_tls", [{"auth_clients": False}], indirect=True)
def test_tls_without_client_certificates(redis_tls: RedisTLS) -> None:
    client = redis.Redis.from_url(redis_tls.url, ssl_ca_certs=str(redis_tls.ca))
    assert client.ping()
    assert client.config_get("tls-auth-clients") == {"tls-auth-clients": "no"}
    client.close()


# PgBouncer -----------------------------------------------------------------------------------------------------


def test_pgbouncer_transaction_pool_of_four(pgbouncer: PgBouncer) -> None:
    assert pgbouncer.url == f"postgresql://postgres@{HOST}:{pgbouncer.port}/postgres"
    with psycopg.connect(pgbouncer.url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    with psycopg.connect(pgbouncer.backend.url) as conn:  # committed, on the real server
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert pgbouncer.pools()["pool_mode"] == "transaction"

    # Four open transactions take the four server connections; a fifth client's query waits for one, and
    # gets the one that a commit frees (with a bigger pool it would get a fifth, new backend).
    holders = [psycopg.connect(pgbouncer.url) for _ in range(4)]
    try:
        pids = [conn.execute("SELECT pg_backend_pid()").fetchone() for conn in holders]
        assert len(set(pids)) == 4
        result: list[Any] = []
        waiter = threading.Thread(target=lambda: result.append(_query(pgbouncer.url, "SELECT pg_backend_pid()")))
        waiter.start()
        waiting = wait_until(lambda: (lambda p: p if p["cl_waiting"] == 1 else None)(pgbouncer.pools()),
                             timeout=10, what="a client waiting in SHOW POOLS")
        assert (waiting["sv_active"], waiting["sv_idle"], waiting["sv_login"]) == (4, 0, 0) and not result
        holders[0].commit()
        waiter.join(10)
        assert result == [pids[0]]
    finally:
        for conn in holders:
            conn.close()


def _query(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchone()


@pytest.mark.parametrize(("pgbouncer", "held"), [({"pool_mode": "session"}, 1), ({"pool_mode": "transaction"}, 0),
                                                  ({"pool_mode": "statement"}, 0)], indirect=["pgbouncer"])
def test_pgbouncer_pool_mode(pgbouncer: PgBouncer, held: int) -> None:
    """An idle client holds its server connection in session pooling only."""
    with psycopg.connect(pgbouncer.url, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        pools = pgbouncer.pools()
        assert (pools["pool_mode"], pools["sv_active"]) == (pgbouncer.pool_mode, held)


@pytest.mark.parametrize("pgbouncer", [{"pool_mode": "statement"}], indirect=True)
def test_pgbouncer_statement_mode_refuses_transactions(pgbouncer: PgBouncer) -> None:
    with pytest.raises(psycopg.OperationalError, match="statement pooling"), psycopg.connect(pgbouncer.url) as conn:
        conn.execute("SELECT 1")  # psycopg opens a transaction first (not autocommit)


def test_pgbouncer_version_and_prepared_statements_support() -> None:
    """``version`` is what the server reports; max_prepared_statements is refused (skip/fail) before 1.21."""
    version = PgBouncer.installed_version(PgBouncer.find_binary())
    if version < (1, 21):
        with pytest.raises((pytest.skip.Exception, pytest.fail.Exception), match=r"1\.21"):
            PgBouncer(max_prepared_statements=10)
        return
    bouncer = PgBouncer(max_prepared_statements=10)
    try:
        bouncer.start()
        assert {r["key"]: r["value"] for r in bouncer.admin("SHOW CONFIG")}["max_prepared_statements"] == "10"
        # Named prepared statements (prepare_threshold=0) from several clients over a pool of four.
        conns = [psycopg.connect(bouncer.url, autocommit=True, prepare_threshold=0) for _ in range(6)]
        try:
            for i in range(5):
                for n, conn in enumerate(conns):
                    assert conn.execute("SELECT %s::int + %s::int", (i, n)).fetchone() == (i + n,)
        finally:
            for conn in conns:
                conn.close()
    finally:
        bouncer.cleanup()


def test_pgbouncer_reports_its_version(pgbouncer: PgBouncer) -> None:
    (row,) = pgbouncer.admin("SHOW VERSION")
    assert ".".join(map(str, pgbouncer.version)) in row["version"]
    keys = {r["key"] for r in pgbouncer.admin("SHOW CONFIG")}
    assert ("max_prepared_statements" in keys) == pgbouncer.supports_prepared_statements


# PostgreSQL primary + standby ----------------------------------------------------------------------------------


def _recovery(url: str) -> bool:
    return bool(_query(url, "SELECT pg_is_in_recovery()")[0])


def _rows(url: str, sql: str) -> Any:
    """All rows of ``sql``, or None while a table it reads does not exist (yet)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(sql).fetchall()
    except psycopg.errors.UndefinedTable:
        return None


def test_standby_streams_and_takes_over_when_promoted(postgres_primary_standby: PostgresPrimaryStandby) -> None:
    pair = postgres_primary_standby
    assert not _recovery(pair.primary_url) and _recovery(pair.standby_url)
    with psycopg.connect(pair.primary_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert wait_until(lambda: _rows(pair.standby_url, "SELECT x FROM t"), timeout=10,
                      what="the row on the standby") == [(1,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), psycopg.connect(pair.standby_url) as conn:
        conn.execute("INSERT INTO t VALUES (2)")

    primary_port, standby_port = pair.primary.port, pair.standby.port  # type: ignore[union-attr]
    assert pair.multi_host_url() == (f"postgresql://postgres@{HOST}:{primary_port},{HOST}:{standby_port}/postgres")
    with psycopg.connect(pair.multi_host_url("read-write", standby_first=True)) as conn:
        assert conn.info.port == primary_port
    with psycopg.connect(pair.multi_host_url("standby")) as conn:
        assert conn.info.port == standby_port

    pair.stop_primary("immediate")
    with pytest.raises(psycopg.OperationalError):  # only a read-only server is left
        psycopg.connect(pair.multi_host_url("read-write"), connect_timeout=2).close()

    pair.promote_standby()
    assert not _recovery(pair.standby_url)
    with psycopg.connect(pair.multi_host_url("read-write"), autocommit=True) as conn:
        assert conn.info.port == standby_port
        conn.execute("INSERT INTO t VALUES (2)")
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
