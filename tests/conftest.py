"""Shared fixtures: service URLs for the server-backed engines, and the skip-locally/fail-in-CI rule."""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("OFFLOAD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("OFFLOAD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("OFFLOAD_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")

# One namespace per test run (a Redis key prefix, a PostgreSQL schema) so parallel runs cannot collide.
RUN_ID = uuid.uuid4().hex[:10]


def service_missing(name: str, reason: str) -> None:
    """Skip locally; fail when OFFLOAD_REQUIRE_SERVICES is set (CI), so store tests cannot silently vanish."""
    message = f"{name} unavailable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (OFFLOAD_REQUIRE_SERVICES is set, so this is a failure)", pytrace=False)
    pytest.skip(message)


def _redis_reason() -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package (the tests' own client) is not installed (pip install 'offload[test]')"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"{REDIS_URL}: {exc}"
    return None


def _postgres_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "the psycopg package is not installed (pip install 'offload[postgres]')"
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except Exception as exc:
        return f"{POSTGRES_URL}: {str(exc).strip().splitlines()[0]}"
    return None


_reasons: dict[str, str | None] = {}


def engine_url(engine: str, tmp_path: object) -> str:
    """A store URL for ``engine`` private to this test run; skips or fails when the server is missing."""
    if engine == "memory":
        return f"memory://{uuid.uuid4().hex}"
    if engine == "sqlite":
        return f"sqlite:///{tmp_path}/offload.db"
    if engine == "redis":
        if "redis" not in _reasons:
            _reasons["redis"] = _redis_reason()
        if _reasons["redis"]:
            service_missing("Redis", _reasons["redis"])
        sep = "&" if "?" in REDIS_URL else "?"
        return f"{REDIS_URL}{sep}prefix=offload-test-{RUN_ID}"
    if engine == "postgresql":
        if "postgresql" not in _reasons:
            _reasons["postgresql"] = _postgres_reason()
        if _reasons["postgresql"]:
            service_missing("PostgreSQL", _reasons["postgresql"])
        sep = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{sep}schema=offload_test_{RUN_ID}"
    raise ValueError(engine)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this run's Redis keys and PostgreSQL schema."""
    if _reasons.get("redis") is None and "redis" in _reasons:
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"offload-test-{RUN_ID}*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
        except Exception:
            pass
    if _reasons.get("postgresql") is None and "postgresql" in _reasons:
        try:
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS offload_test_{RUN_ID} CASCADE")
        except Exception:
            pass


# Fixtures for private, restartable servers (tests/servers.py); imported last: that module uses the above.
from tests.servers import private_postgres, private_redis  # noqa: E402, F401
