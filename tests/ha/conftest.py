"""Fixtures for the servers of ``tests/ha/servers.py``, one setup per test.

Each fixture builds its class, starts it, hands it to the test and removes it afterwards (processes killed,
temporary directory deleted), also when the test fails or the start itself fails half-way. A missing binary
skips the test locally and fails it in CI (``service_missing``). Keyword arguments for the class come from
indirect parametrization, for example::

    @pytest.mark.parametrize("pgbouncer", [{"pool_mode": "session"}], indirect=True)
    def test_something(pgbouncer): ...

Every test that uses one of these fixtures is marked ``ha`` (``pytest -m "not ha"`` leaves them out). Each
server object gets ``setup_seconds``: construction (initdb, certificates...) plus start, as the test paid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ha.servers import (
    PgBouncer,
    PostgresPrimaryStandby,
    RedisCluster,
    RedisSentinelSet,
    RedisTLS,
    RedisUnixSocket,
)

HA_FIXTURES = {
    "redis_sentinel_set": RedisSentinelSet,
    "redis_cluster": RedisCluster,
    "redis_unix_socket": RedisUnixSocket,
    "redis_tls": RedisTLS,
    "pgbouncer": PgBouncer,
    "postgres_primary_standby": PostgresPrimaryStandby,
}


@pytest.hookimpl(tryfirst=True)  # before -m selects on markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HA_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ha)


def _serve(cls: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    kwargs = getattr(request, "param", None) or {}
    began = time.monotonic()
    server = cls(**kwargs)
    try:
        server.start()
        server.setup_seconds = time.monotonic() - began
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_sentinel_set(request: pytest.FixtureRequest) -> Iterator[RedisSentinelSet]:
    """Master + replica + three sentinels (service ``mymaster``, quorum 2), AOF on."""
    yield from _serve(RedisSentinelSet, request)


@pytest.fixture
def redis_cluster(request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    """Three cluster masters, no replicas, ``cluster_state:ok`` on each."""
    yield from _serve(RedisCluster, request)


@pytest.fixture
def redis_unix_socket(request: pytest.FixtureRequest) -> Iterator[RedisUnixSocket]:
    """redis-server on a unix socket only (``url`` is ``unix:///...redis.sock?db=0``)."""
    yield from _serve(RedisUnixSocket, request)


@pytest.fixture
def redis_tls(request: pytest.FixtureRequest) -> Iterator[RedisTLS]:
    """redis-server on TLS only, client certificates required (param ``{"auth_clients": False}``: optional)."""
    yield from _serve(RedisTLS, request)


@pytest.fixture
def pgbouncer(request: pytest.FixtureRequest) -> Iterator[PgBouncer]:
    """PgBouncer (transaction pooling, pool size 4) in front of a private PostgreSQL."""
    yield from _serve(PgBouncer, request)


@pytest.fixture
def postgres_primary_standby(request: pytest.FixtureRequest) -> Iterator[PostgresPrimaryStandby]:
    """A PostgreSQL primary and a streaming hot standby."""
    yield from _serve(PostgresPrimaryStandby, request)
