"""The Redis store's URL forms (TCP, TLS, unix socket, Sentinel) as redis-py reads them, the options each one
takes, and errors that say what happened (the contract suite runs over each form: tests/stores/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from offload.errors import StoreUnavailable, StoreURLError
from offload.stores import open_store, store_class
from offload.stores.redis import RedisStore
from offload.stores.redis_link import error_text, parse_url


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("redis://u:p%40ss@db.example:6380/4", "tcp", {"host": "db.example", "port": 6380, "db": 4,
                                                      "username": "u", "password": "p@ss"}),
        ("redis://h", "tcp", {"host": "h", "port": 6379, "db": 0, "password": None}),
        ("unix:///run/redis/redis.sock?db=2", "unix", {"path": "/run/redis/redis.sock", "db": 2}),
        ("redis+unix://:pw@/tmp/r.sock", "unix", {"path": "/tmp/r.sock", "db": 0, "password": "pw"}),
        ("redis+sentinel://:pw@h1:26379,h2:26380/mymaster/3", "sentinel", {"db": 3, "password": "pw"}),
        ("redis+sentinel://h1/cache", "sentinel", {"db": 0, "password": None}),
    ],
)
def test_url_forms(url: str, kind: str, expected: dict[str, Any]) -> None:
    target = parse_url(url, "redacted")
    assert target.kind == kind
    assert {k: target.connection.get(k) for k in expected} == expected
    assert store_class(url) is RedisStore
    if kind == "sentinel":
        assert target.service in ("mymaster", "cache")
        assert target.hosts in ([("h1", 26379), ("h2", 26380)], [("h1", 26379)])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://h/0?colour=blue", "unknown Redis URL option(s) colour"),
        ("redis://h/0?db=3", "unknown Redis URL option(s) db"),  # the path names the database on TCP
        ("redis://h/0?ssl_ca_certs=/ca.pem", "unknown Redis URL option(s) ssl_ca_certs"),  # TLS is rediss://
        ("unix:///r.sock?sentinel_password=x", "unknown Redis URL option(s) sentinel_password"),
        ("redis+sentinel://h:26379/m/0?unix_socket_path=/r.sock", "unknown Redis URL option(s) unix_socket_path"),
        ("unix://", "name the socket"),
        ("unix:///r.sock?db=two", "db must be a number"),
        ("redis+sentinel://h:26379", "name the sentinels and the service"),
        ("redis+sentinel://h:26379/m/zero", "redis+sentinel://"),
        ("redis://h/0?min_replicas=one", "min_replicas a whole number"),
        ("rediss://h/0?ssl_check_hostname=maybe", "ssl_check_hostname must be true or false"),
        ("rediss://h/0?ssl_cert_reqs=none&ssl_check_hostname=true", "ssl_check_hostname needs"),
    ],
)
def test_bad_urls_are_refused_naming_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(StoreURLError) as info:
        RedisStore(url, "site")
    assert says in str(info.value)


def test_options_of_each_form_are_accepted() -> None:
    RedisStore("unix:///tmp/r.sock?db=1&prefix=p&timeout=3&connect_timeout=1", "site")
    RedisStore("redis+sentinel://h:26379/m/0?sentinel_password=s&min_replicas=1", "site")
    store = RedisStore("rediss://h/0?ssl_cert_reqs=none&ssl_check_hostname=false&ssl_ciphers=HIGH", "site")
    assert store.min_replicas == 0


def test_error_replies_keep_their_code() -> None:
    from redis.exceptions import MovedError, ReadOnlyError, ResponseError

    assert error_text(MovedError("7365 127.0.0.1:7202")) == "MOVED 7365 127.0.0.1:7202"
    assert error_text(ReadOnlyError("You can't write against a read only replica.")).startswith("READONLY You")
    assert error_text(ResponseError("WRONGTYPE Operation against a key")) == "WRONGTYPE Operation against a key"


def test_a_missing_socket_is_unavailable_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sock"
    with pytest.raises(StoreUnavailable) as info:
        open_store(f"unix://{path}?db=0", "site")
    assert f"unix socket {path}" in str(info.value) and "upgrade" not in str(info.value)
