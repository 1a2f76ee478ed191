"""PostgreSQL store URL options and error texts, against the real server: ``pooler=`` (no session state),
``prepare_threshold=`` (psycopg's, passed through), ``listen_url=`` (a direct LISTEN connection, checked to
reach the same database), ``poll=``/``idle_poll=``; outages (read-only, terminated, unreachable hosts) as
``StoreUnavailable`` with the whole reason and what to do. PgBouncer itself is in tests/ha."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from offload.errors import StoreError, StoreUnavailable, StoreURLError
from offload.jobs import Outcome
from offload.stores import open_store
from offload.stores.postgres_url import parse_url
from tests.conftest import engine_url
from tests.stores.conftest import make_job

psycopg = pytest.importorskip("psycopg")

from offload.stores.postgres import PostgresStore  # noqa: E402

LEASE = 30.0


def with_options(url: str, **options: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(options)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def plain(url: str, database: str | None = None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}" if database else parts.path, urlencode(query), ""))


@pytest.fixture
def pg_url(tmp_path: Any) -> str:
    return engine_url("postgresql", tmp_path)


@pytest.fixture
def admin(pg_url: str) -> Iterator[Any]:
    with psycopg.connect(plain(pg_url), autocommit=True) as conn:
        yield conn


@pytest.fixture
def make_store(pg_url: str) -> Iterator[Callable[..., PostgresStore]]:
    opened: list[PostgresStore] = []

    def make(url: str | None = None, site: str | None = None) -> PostgresStore:
        store = open_store(url or pg_url, site or f"t{uuid.uuid4().hex[:12]}")
        assert isinstance(store, PostgresStore)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def drive(store: PostgresStore, rounds: int = 8) -> None:
    """Every hot verb, more times than psycopg's prepare threshold (5 uses)."""
    for _ in range(rounds):
        store.enqueue(make_job(), time.time())
        store.enqueue_many([make_job(), make_job()], time.time())
        claimed = store.claim(["default"], "w", LEASE, 3, time.time())
        store.extend_leases("w", {j.id: j.lease_token or "" for j in claimed}, LEASE, time.time())
        store.settle([Outcome(j.id, j.lease_token or "", "finish") for j in claimed], time.time())
        store.count(states=["queued"])
        store.wait_for_work(["default"], 0.0)


def prepared(store: PostgresStore) -> int:
    with store.link.session() as conn:
        return int(conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0])


# -- options ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("option", "value", "says"), [
    ("pooler", "pgbouncer", "use pooler=transaction or pooler=statement"),
    ("prepare_threshold", "often", "give a whole number of uses"),
    ("poll", "0", "give seconds, more than 0"),
    ("idle_poll", "soon", "give seconds"),
    ("listen_url", "redis://127.0.0.1/0", "give a postgresql:// URL reaching the same database directly"),
])
def test_bad_options_are_url_errors_that_say_what_to_give(option: str, value: str, says: str) -> None:
    url = f"postgresql://offload:s3cret@127.0.0.1:1/jobs?{option}={quote(value, safe='')}"
    with pytest.raises(StoreURLError) as caught:
        PostgresStore(url, "site")
    assert says in str(caught.value) and option in str(caught.value) and "s3cret" not in str(caught.value)


def test_offload_options_never_reach_libpq_and_psycopg_gets_prepare_threshold() -> None:
    listen = "postgresql://listener:p%40ss@127.0.0.1:5433/jobs"
    url = (f"postgresql://offload:pw@127.0.0.1:6432/jobs?schema=q&pooler=transaction&sslmode=prefer"
           f"&listen_url={quote(listen, safe='')}&poll=0.002&idle_poll=0.1")
    options = parse_url(url)
    assert options.conninfo == "postgresql://offload:pw@127.0.0.1:6432/jobs?sslmode=prefer"
    assert (options.schema, options.pooler, options.listen_conninfo) == ("q", "transaction", listen)
    assert (options.poll, options.idle_poll) == (0.002, 0.1)
    assert options.connect_options["prepare_threshold"] is None, "behind a transaction pooler: never prepare"
    assert "prepare_threshold" not in options.listen_options
    assert not options.polls, "a listen URL: LISTEN, not polling"
    assert parse_url(url + "&prepare_threshold=3").connect_options["prepare_threshold"] == 3
    assert "prepare_threshold" not in parse_url("postgresql://h/db").connect_options, "psycopg's default"
    assert parse_url("postgresql://h/db?pooler=statement").polls


def test_passwords_of_both_urls_are_hidden() -> None:
    listen = "postgresql://listener:li%40sten-pw@127.0.0.1:1/jobs"
    store = PostgresStore(f"postgresql://offload:main-pw@127.0.0.1:1/jobs?listen_url={quote(listen, safe='')}"
                          "&connect_timeout=1", "site")
    assert "main-pw" not in store.safe_url and "li" + "%40sten-pw" not in store.safe_url
    assert "sten-pw" not in repr(store)
    with pytest.raises(StoreUnavailable) as caught:
        store.open()
    assert "main-pw" not in str(caught.value) and "sten-pw" not in str(caught.value)


def test_behind_a_pooler_the_store_keeps_no_session_state(make_store: Callable[..., Any], pg_url: str,
                                                          admin: Any) -> None:
    store = make_store(with_options(pg_url, pooler="transaction"))
    drive(store)
    assert prepared(store) == 0, "no server-side prepared statements"
    with store.link.session() as conn:
        assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "auto", "no SET on the session"
    listener = store.link.listener
    assert listener is not None, "the waiting connection is open"
    held = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
    assert held == 0, "no advisory lock outlives a statement"
    with listener.cursor() as cur:
        assert cur.execute("SELECT pg_listening_channels()").fetchall() == [], "polls: LISTENs on nothing"


def test_without_a_pooler_statements_are_prepared_and_prepare_threshold_is_passed_through(
        make_store: Callable[..., Any], pg_url: str) -> None:
    direct = make_store()
    drive(direct)
    assert prepared(direct) > 0
    never = make_store(with_options(pg_url, prepare_threshold="none"))
    drive(never)
    assert prepared(never) == 0
    at_once = make_store(with_options(pg_url, pooler="transaction", prepare_threshold="0"))
    at_once.count(states=["queued"])
    assert prepared(at_once) >= 1, "prepare_threshold=0 prepares on first use, pooler or not"


def test_a_polling_store_is_woken_by_an_enqueue_and_by_close(make_store: Callable[..., Any], pg_url: str) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    url = with_options(pg_url, pooler="transaction", poll="0.001", idle_poll="0.02")
    waiter, producer = make_store(url, site), make_store(url, site)
    assert not waiter.wait_for_work(["default"], 0.05)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait_for_work(["default"], 10.0)))
    thread.start()
    producer.enqueue(make_job(), time.time())
    thread.join(10)
    assert result == [True]
    assert waiter.claim(["default"], "w", LEASE, 1, time.time())
    thread = threading.Thread(target=lambda: result.append(waiter.wait_for_work(["default"], 10.0)))
    thread.start()
    time.sleep(0.1)
    waiter.close()  # the wait in progress ends at once, quietly
    thread.join(2)
    assert result == [True, False] and not thread.is_alive()


def test_a_listen_url_is_listened_on_and_must_reach_the_same_database(make_store: Callable[..., Any],
                                                                       pg_url: str) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    url = with_options(pg_url, pooler="transaction", listen_url=plain(pg_url))
    waiter, producer = make_store(url, site), make_store(url, site)
    assert not waiter.wait_for_work(["default"], 0.01)
    listener = waiter.link.listener
    assert listener is not None
    with listener.cursor() as cur:
        assert cur.execute("SELECT pg_listening_channels()").fetchall() == [(waiter.channel,)]
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait_for_work(["default"], 10.0)))
    thread.start()
    producer.enqueue(make_job(), time.time())
    thread.join(10)
    assert result == [True]
    elsewhere = make_store(with_options(pg_url, listen_url=plain(pg_url, "postgres")), site)
    with pytest.raises(StoreURLError) as caught:
        elsewhere.wait_for_work(["default"], 0.01)
    assert "reaches database 'postgres'" in str(caught.value) and "give a listen_url" in str(caught.value)


# -- outages and error texts ----------------------------------------------------------------------------------
def test_a_read_only_server_is_an_outage_that_says_what_to_do(make_store: Callable[..., Any], pg_url: str) -> None:
    parts = urlsplit(pg_url)
    two_hosts = pg_url.replace(parts.netloc, f"{parts.netloc},{parts.netloc.split('@')[-1]}", 1)
    store = make_store(with_options(two_hosts, options="-c default_transaction_read_only=on"))
    with store.link.session() as conn:
        pid = conn.info.backend_pid
    with pytest.raises(StoreUnavailable) as caught:
        store.enqueue(make_job(), time.time())
    message = str(caught.value)
    assert "read-only transaction" in message and "the next call connects again" in message
    assert "add target_session_attrs=read-write" in message and "\n" not in message
    with store.link.session() as conn:
        assert conn.info.backend_pid != pid, "the read-only connection was dropped: the next call connects again"
    pinned = make_store(with_options(pg_url, options="-c default_transaction_read_only=on"))
    with pytest.raises(StoreUnavailable) as caught:
        pinned.enqueue(make_job(), time.time())
    assert "target_session_attrs" not in str(caught.value), "one host: nothing to choose"


def test_an_administrators_termination_mid_call_is_an_outage(make_store: Callable[..., Any], admin: Any) -> None:
    store = make_store()
    with store.link.session() as conn:
        pid = conn.info.backend_pid
    killer = threading.Timer(0.3, lambda: admin.execute("SELECT pg_terminate_backend(%s)", (pid,)))
    killer.start()
    with pytest.raises(StoreUnavailable) as caught, store.link.session() as conn:
        conn.execute("SELECT pg_sleep(5)")
    killer.join()
    assert "terminating connection due to administrator command" in str(caught.value)
    assert store.count() == 0


def test_every_host_tried_is_in_the_message() -> None:
    ports = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    store = PostgresStore(f"postgresql://offload:pw@{hosts}/jobs?connect_timeout=1", "site")
    with pytest.raises(StoreUnavailable) as caught:
        store.open()
    message = str(caught.value)
    assert len(message) > 400 and "\n" not in message
    assert all(f'port {port} failed' in message for port in ports), message


def test_missing_tables_and_privileges_say_what_to_do(make_store: Callable[..., Any], pg_url: str,
                                                       admin: Any) -> None:
    store = make_store()
    schema = f"gone_{uuid.uuid4().hex[:8]}"
    ghost = PostgresStore(with_options(pg_url, schema=schema), "site")  # never opened, so never migrated
    try:
        with pytest.raises(StoreError) as caught:
            ghost.get("x")
        assert "run `offload migrate` with this store URL" in str(caught.value)
    finally:
        ghost.close()
    role = f"offload_ro_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        parts = urlsplit(pg_url)
        url = pg_url.replace(parts.netloc, f"{role}@{parts.netloc.split('@')[-1]}", 1)
        stranger = PostgresStore(url, store.site_id)
        with pytest.raises(StoreError) as caught:
            stranger.get("x")
        stranger.close()
        assert f"grant the store's user rights on schema '{store.schema}'" in str(caught.value)
    finally:
        admin.execute(f"DROP ROLE {role}")
