from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from offload.jobs import QUEUED, SCHEDULED, Job, new_id
from offload.stores import Store, open_store
from tests.conftest import engine_url

ENGINES = ["memory", "sqlite", "redis", "redis-unix", "redis-tls", "redis-sentinel", "redis-cluster", "postgresql",
           "postgresql-pgbouncer", "postgresql-pgbouncer-statement"]
#: Engine variants on servers of tests/ha (started once per run): their tests are marked ``ha``.
REDIS_VARIANTS = ("redis-unix", "redis-tls", "redis-sentinel", "redis-cluster")


@pytest.hookimpl(tryfirst=True)  # before -m selects on markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("engine") in REDIS_VARIANTS:
            item.add_marker(pytest.mark.ha)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(engine: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    if engine.startswith("postgresql-pgbouncer"):
        mode = "statement" if engine.endswith("statement") else "transaction"
        return str(request.getfixturevalue("pgbouncers")(mode))
    if engine in REDIS_VARIANTS:
        return str(request.getfixturevalue("redis_servers")(engine))
    return engine_url(engine, tmp_path)


@pytest.fixture(scope="session")
def redis_servers() -> Iterator[Callable[[str], str]]:
    """Store URLs of the Redis variants, each on its own servers from tests/ha (free loopback ports), started on
    first use and kept for the run: a unix socket only (``unix://``), TLS only with client certificates
    (``rediss://`` with the ``ssl_*`` options), a master, a replica and three sentinels (``redis+sentinel://``),
    three cluster masters (``redis+cluster://`` naming one of them)."""
    from tests.ha.servers import RedisCluster, RedisSentinelSet, RedisTLS, RedisUnixSocket

    started: dict[str, Any] = {}

    def url(engine: str) -> str:
        if engine not in started:
            server = {"redis-unix": RedisUnixSocket, "redis-tls": RedisTLS, "redis-sentinel": RedisSentinelSet,
                      "redis-cluster": RedisCluster}[engine]()
            started[engine] = server
            server.start()
        server = started[engine]
        if engine == "redis-tls":
            return (f"rediss://localhost:{server.port}/0?prefix=offload-test&ssl_ca_certs={server.ca}"
                    f"&ssl_certfile={server.client_cert}&ssl_keyfile={server.client_key}")
        if engine == "redis-sentinel":
            return f"{server.sentinel_url}?prefix=offload-test"
        if engine == "redis-cluster":
            return f"redis+cluster://{server.addrs[0][0]}:{server.addrs[0][1]}?prefix=offload-test"
        return f"{server.url}&prefix=offload-test"

    try:
        yield url
    finally:
        for server in started.values():
            server.cleanup()


@pytest.fixture(scope="session")
def pgbouncers() -> Iterator[Callable[[str], str]]:
    """Store URLs through PgBouncer (private, before a private PostgreSQL, on free loopback ports) in a pool
    mode, started on first use and kept for the run: ``pooler=<mode>`` makes the store keep no session state
    (and its idle workers poll)."""
    from tests.ha.servers import PgBouncer

    started: dict[str, Any] = {}

    def url(mode: str) -> str:
        if mode not in started:
            started[mode] = PgBouncer(pool_mode=mode, default_pool_size=10)
            started[mode].start()
        return f"{started[mode].url}?schema=offload_pgbouncer&pooler={mode}"

    try:
        yield url
    finally:
        for bouncer in started.values():
            bouncer.cleanup()


@pytest.fixture
def site() -> str:
    # A fresh site id per test: tests share a run-wide namespace on the server engines but never data.
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_store(store_url: str, site: str) -> Iterator[Callable[..., Store]]:
    opened: list[Store] = []

    def make(site_id: str | None = None) -> Store:
        store = open_store(store_url, site_id or site)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


def make_job(queue: str = "default", *, now: float | None = None, run_at: float | None = None, **fields: Any) -> Job:
    now = time.time() if now is None else now
    state = SCHEDULED if run_at is not None and run_at > now else QUEUED
    defaults: dict[str, Any] = {
        "id": new_id(),
        "queue": queue,
        "func": "tests.jobfuncs:noop",
        "payload": '[[1,"two"],{"x":3}]',
        "title": None,
        "state": state,
        "created_at": now,
        "run_at": run_at,
        "max_attempts": 3,
        "timeout": 180.0,
    }
    defaults.update(fields)
    return Job(**defaults)
