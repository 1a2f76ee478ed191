"""PostgreSQL engine specifics, against the real server: URLs and errors, migrations, plans, retention, wake-ups.

The shared behaviour is in test_contract.py; these tests check what only this engine promises.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from offload.errors import StoreUnavailable, StoreURLError
from offload.jobs import FINISHED, QUEUED, Outcome
from offload.stores import open_store
from tests.conftest import engine_url
from tests.stores.conftest import make_job

psycopg = pytest.importorskip("psycopg")

from psycopg import sql  # noqa: E402

from offload.stores.postgres import PostgresStore, migrations  # noqa: E402

LEASE = 30.0

# The contract suite's ``engine`` parameter, fixed: ids end in [postgresql], so ``-k postgresql`` selects these too.
pytestmark = pytest.mark.parametrize("engine", ["postgresql"])


@pytest.fixture(autouse=True)
def _engine(engine: str) -> str:
    return engine


def with_options(url: str, **options: str) -> str:
    """``url`` with query options replaced or added."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(options)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def server_url(url: str) -> str:
    """The plain libpq URL (no offload options), for a direct psycopg connection."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


@pytest.fixture
def pg_url(store_url: str) -> str:
    """This run's shared test schema (skips, or fails in CI, without a server)."""
    return store_url


@pytest.fixture
def admin(pg_url: str) -> Iterator[Any]:
    """A direct autocommit connection to the test database."""
    with psycopg.connect(server_url(pg_url), autocommit=True) as conn:
        yield conn


@pytest.fixture
def fresh_url(pg_url: str, admin: Any) -> Iterator[str]:
    """A URL naming a schema of its own that does not exist yet; dropped afterwards."""
    schema = f"{dict(parse_qsl(urlsplit(pg_url).query))['schema']}_{uuid.uuid4().hex[:8]}"
    yield with_options(pg_url, schema=schema)
    admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


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


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["schema"]


# -- URLs and errors ----------------------------------------------------------------------------------
def test_unreachable_server_is_a_clear_store_unavailable_without_the_password() -> None:
    url = "postgresql://offload:s3cret-pw@127.0.0.1:1/jobs?schema=offload&connect_timeout=2"
    store = PostgresStore(url, "site")
    with pytest.raises(StoreUnavailable) as caught:
        store.open()
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql://offload:***@127.0.0.1:1/jobs" in message
    assert "\n" not in message and "Connection refused" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(StoreUnavailable):  # later calls say the same, they do not crash
        store.get("job")
    assert "s3cret-pw" not in repr(store)


def test_schema_option_is_ours_and_the_rest_goes_to_libpq(
    pg_url: str, admin: Any, make_store: Callable[..., Any]
) -> None:
    name = f"offload-test-{uuid.uuid4().hex[:8]}"
    store = make_store(with_options(pg_url, application_name=name, connect_timeout="5"))
    assert store.schema == schema_of(pg_url)
    assert "schema=" not in store.options.conninfo and f"application_name={name}" in store.options.conninfo
    store.ping()
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()
    assert row[0] >= 1


def test_spaces_in_libpq_options_survive(pg_url: str, make_store: Callable[..., Any]) -> None:
    store = make_store(with_options(pg_url, options="-c statement_timeout=12345"))
    with store.link.session() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "12345ms"


def test_bad_schema_names_and_unknown_libpq_options_are_url_errors(pg_url: str) -> None:
    with pytest.raises(StoreURLError, match="invalid schema"):
        PostgresStore(with_options(pg_url, schema='x"; DROP TABLE jobs; --'))
    store = PostgresStore(with_options(pg_url, no_such_option="1"))
    with pytest.raises(StoreURLError, match="no_such_option"):
        store.open()


def test_postgres_scheme_alias(pg_url: str, make_store: Callable[..., Any]) -> None:
    store = make_store("postgres://" + pg_url.split("://", 1)[1])
    store.enqueue(make_job(), time.time())
    assert store.count() == 1


def test_a_connection_killed_by_the_server_is_replaced_on_the_next_call(
    make_store: Callable[..., Any], admin: Any
) -> None:
    store = make_store()
    job = make_job()
    store.enqueue(job, time.time())
    with store.link.session() as conn:
        pid = conn.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 5
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # What a server restart looks like to an idle client: the next call reconnects and works.
    got = store.get(job.id)
    assert got is not None and got.state == QUEUED
    with store.link.session() as conn:
        assert conn.info.backend_pid != pid


def test_a_young_jobs_table_is_analysed_so_lookups_by_id_use_the_primary_key(fresh_url: str, admin: Any) -> None:
    """Regression: on a never-analysed table the generic plan of a lookup by id scanned an index on the site
    alone, so every enqueue read every job of the site (300 enqueues/s at 10,000 jobs instead of ~1,000)."""
    store = open_store(fresh_url, "young")
    try:
        schema = schema_of(fresh_url)
        for _ in range(3):  # several calls, as a web process would make them
            store.enqueue_many([make_job() for _ in range(400)], time.time())
        reltuples = admin.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
                                  (f'"{schema}".jobs',)).fetchone()[0]
        assert reltuples >= 1000, "the table was analysed once this process had added 1,000 jobs"
        admin.execute("SET plan_cache_mode = force_generic_plan")
        admin.execute(f'PREPARE by_id(text, text) AS SELECT id FROM "{schema}".jobs WHERE site = $1 AND id = $2')
        plan = "\n".join(r[0] for r in admin.execute("EXPLAIN EXECUTE by_id('young', 'x')").fetchall())
        admin.execute("DEALLOCATE by_id")
        assert "jobs_pkey" in plan, plan
    finally:
        store.close()


def test_claim_and_settle_relax_only_their_own_commits(make_store: Callable[..., Any]) -> None:
    """Claims and settles commit without waiting for the WAL flush (at-least-once covers a forgotten one);
    the setting must not leak into the session, where it would make enqueues non-durable."""
    store = make_store()
    job = store.enqueue(make_job(), time.time())
    with store.link.session() as conn:
        server_setting = conn.execute("SHOW synchronous_commit").fetchone()[0]
    (claimed,) = store.claim(["default"], "w1", 30, 1, time.time())
    with store.link.session() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == server_setting
    assert store.settle([Outcome(claimed.id, claimed.lease_token or "", "finish")], time.time()) == [True]
    with store.link.session() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == server_setting
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    got = store.get(job.id)
    assert got is not None and got.state == FINISHED


def test_claim_and_settle_commit_without_the_flush_and_enqueue_with_it(make_store: Callable[..., Any]) -> None:
    """The relaxed setting is part of the claim and settle statements themselves (one round trip each), for
    their own transaction only; an enqueue keeps the server's setting, so an acknowledged job is on disk."""
    store = make_store()
    with store.link.session() as conn:
        server_setting = conn.execute("SHOW synchronous_commit").fetchone()[0]
    assert server_setting != "off"
    # Each verb runs inside a transaction of the test's (the store's lock is reentrant), which shows what the
    # verb set for its transaction. Eight rounds: psycopg prepares a statement after five uses.
    for _ in range(8):
        with store.link.session() as conn, conn.transaction(force_rollback=True):
            store.enqueue(make_job(), time.time())
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == server_setting
        store.enqueue(make_job(), time.time())
        with store.link.session() as conn, conn.transaction(force_rollback=True):
            (claimed,) = store.claim(["default"], "w1", LEASE, 1, time.time())
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        (claimed,) = store.claim(["default"], "w1", LEASE, 1, time.time())
        with store.link.session() as conn, conn.transaction(force_rollback=True):
            assert store.settle([Outcome(claimed.id, claimed.lease_token or "", "finish")], time.time()) == [True]
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        with store.link.session() as conn, conn.transaction(force_rollback=True):
            assert store.claim(["default"], "w1", LEASE, 1, time.time()) == []  # nothing to claim: still relaxed
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        assert store.settle([Outcome(claimed.id, claimed.lease_token or "", "finish")], time.time()) == [True]


def round_trips(store: PostgresStore, action: Callable[[], Any], path: str) -> int:
    """How many times ``action`` waits for the server on the store's verb connection (Sync messages sent)."""
    with store.link.session() as conn, open(path, "w") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            action()
        finally:
            conn.pgconn.untrace()
    with open(path) as trace:
        return len(re.findall(r"^F\t\d+\tSync$", trace.read(), re.MULTILINE))


@pytest.mark.skipif(sys.platform != "linux", reason="libpq tracing through psycopg is available on Linux only")
def test_the_latency_path_is_one_round_trip_per_verb(make_store: Callable[..., Any], tmp_path: Any) -> None:
    """An enqueue, a claim and a settle each wait for the server once: an idle worker picks a job up within
    two round trips of its enqueue (plus the notification)."""
    store = make_store()
    trace = str(tmp_path / "libpq.trace")
    # Past psycopg's prepare threshold (five uses) first: preparing costs one more round trip, once.
    claimed: list[Any] = []

    def claim() -> None:
        claimed[:] = store.claim(["default"], "w", LEASE, 1, time.time())

    def settle() -> None:
        store.settle([Outcome(claimed[0].id, claimed[0].lease_token or "", "finish")], time.time())

    for n in range(8):
        counts = [round_trips(store, lambda: store.enqueue(make_job(), time.time()), trace)]
        counts += [round_trips(store, claim, trace), round_trips(store, settle, trace)]
        if n >= 6:
            assert counts == [1, 1, 1], "round trips of enqueue, claim, settle"


def test_a_connection_lost_mid_call_is_store_unavailable_then_reconnects(
    make_store: Callable[..., Any], admin: Any
) -> None:
    store = make_store()
    with store.link.session() as conn:
        pid = conn.info.backend_pid
    killer = threading.Timer(0.3, lambda: admin.execute("SELECT pg_terminate_backend(%s)", (pid,)))
    killer.start()
    with pytest.raises(StoreUnavailable) as caught:  # a call in flight when the server goes away
        with store.link.session() as conn:
            conn.execute("SELECT pg_sleep(5)")
    killer.join()
    message = str(caught.value)
    assert message.startswith(f"PostgreSQL store {store.safe_url} is unavailable: ") and "\n" not in message
    assert store.count() == 0  # the next call opens a new connection


def test_the_listener_reconnects_too(make_store: Callable[..., Any], admin: Any) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    waiter, producer = make_store(site=site), make_store(site=site)
    assert not waiter.wait_for_work(["default"], 0.05)
    assert waiter.link.listener is not None
    admin.execute("SELECT pg_terminate_backend(%s)", (waiter.link.listener.info.backend_pid,))
    time.sleep(0.1)
    producer.enqueue(make_job(), time.time())
    assert waiter.wait_for_work(["default"], 2.0)


def test_a_server_restart_costs_only_the_calls_made_while_it_is_down(make_store: Callable[..., Any]) -> None:
    servers = pytest.importorskip("tests.servers")
    server = servers.PostgresServer()  # a private throwaway cluster: the shared server is never restarted
    server.start()
    try:
        site = f"t{uuid.uuid4().hex[:12]}"
        store, waiter = (
            make_store(f"{server.url}?schema=restart", site),
            make_store(f"{server.url}?schema=restart", site),
        )
        store.enqueue(make_job(), time.time())
        assert waiter.wait_for_work(["default"], 1.0)
        server.stop()
        with pytest.raises(StoreUnavailable) as caught:
            store.count()
        assert store.safe_url in str(caught.value) and "\n" not in str(caught.value)
        with pytest.raises(StoreUnavailable):
            waiter.wait_for_work(["default"], 0.2)
        server.start()
        assert store.count() == 1
        assert waiter.wait_for_work(["default"], 1.0)
        server.restart()  # while both are idle: their next calls simply work
        assert store.count() == 1
        assert waiter.wait_for_work(["default"], 1.0)
    finally:
        server.cleanup()


# -- migrations ---------------------------------------------------------------------------------------
def test_a_fresh_schema_is_created_at_the_latest_version(fresh_url: str, admin: Any) -> None:
    latest = migrations()[-1][0]
    store = PostgresStore(fresh_url, "site")
    try:
        assert store.migrate() == latest
        schema = schema_of(fresh_url)
        tables = {
            r[0]
            for r in admin.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
        }
        assert {"jobs", "workers", "schedule_runs", "records", "schema_version"} <= tables
        versions = [r[0] for r in admin.execute(f'SELECT version FROM "{schema}".schema_version ORDER BY 1')]
        assert versions == list(range(1, latest + 1))
        options = admin.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (f'"{schema}".jobs',)
        ).fetchone()[0]
        assert "fillfactor=70" in options
    finally:
        store.close()


def test_migrate_twice_is_a_no_op(fresh_url: str, admin: Any) -> None:
    store = open_store(fresh_url, "site")
    try:
        schema = schema_of(fresh_url)
        before = admin.execute(f'SELECT version, applied_at FROM "{schema}".schema_version ORDER BY 1').fetchall()
        store.enqueue(make_job(), time.time())
        assert store.migrate() == store.migrate() == migrations()[-1][0]
        after = admin.execute(f'SELECT version, applied_at FROM "{schema}".schema_version ORDER BY 1').fetchall()
        assert after == before and store.count() == 1
    finally:
        store.close()


def test_concurrent_migrations_are_serialised(fresh_url: str, admin: Any) -> None:
    stores = [PostgresStore(fresh_url, "site") for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    results: list[int | BaseException] = []
    lock = threading.Lock()

    def migrate(store: PostgresStore) -> None:
        barrier.wait()
        try:
            version: int | BaseException = store.migrate()
        except BaseException as exc:  # reported below, with the others
            version = exc
        with lock:
            results.append(version)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert results == [migrations()[-1][0]] * len(stores)
    schema = schema_of(fresh_url)
    assert admin.execute(f'SELECT count(*) FROM "{schema}".schema_version').fetchone()[0] == migrations()[-1][0]


def test_migrations_are_numbered_without_gaps() -> None:
    found = migrations()
    assert [v for v, _ in found] == list(range(1, len(found) + 1))
    assert all(script.strip() for _, script in found)


# -- plans: claim cost must not grow with history ----------------------------------------------------------
@pytest.fixture(scope="module")
def history_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresStore]:
    """A site with 20,000 finished jobs and 200 waiting ones, in a schema of its own."""
    base = engine_url("postgresql", tmp_path_factory.mktemp("pg"))
    url = with_options(base, schema=f"{schema_of(base)}_history")
    store = open_store(url, "history")
    assert isinstance(store, PostgresStore)
    for _ in range(20):
        now = time.time()
        store.enqueue_many([make_job(now=now) for _ in range(1000)], now)
        claimed = store.claim(["default"], "w", LEASE, 1000, now)
        store.settle(
            [Outcome(j.id, j.lease_token or "", "finish", result_json="1", ended_at=now) for j in claimed], now
        )
    store.enqueue_many([make_job() for _ in range(200)], time.time())
    with store.link.session() as conn:
        conn.execute(f'VACUUM "{store.schema}".jobs')  # what autovacuum does; no column statistics yet
    yield store
    store.close()
    with psycopg.connect(server_url(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')


def hot_statements(store: PostgresStore) -> dict[str, dict[str, Any]]:
    """The statements a worker and a producer run all day, with realistic parameters."""
    now = time.time()
    waiting = store.list(states=[QUEUED], limit=2)
    held = {j.id: "token" for j in waiting}
    outcome = [[j.id, "token", "finish", "1", None, None, now] for j in waiting]
    new = store._enqueue_params([make_job(), make_job(unique_key="k")], [True, True], now)
    return {
        "claim": {
            "queues": [store.qname("default"), store.qname("other")],
            "limit": 10,
            "now": now,
            "lease_until": now + LEASE,
            "worker": "w",
            "promote": 100,
            "channel": store.channel,
        },
        "settle": {"outcomes": json.dumps(outcome), "channel": store.channel},
        "extend": {"held": json.dumps(held), "until": now + LEASE},
        "enqueue": new,
        "requeue_expired": {"now": now, "channel": store.channel},
        "work_ready": {"queues": [store.qname("default")]},
        "purge": {"before": now - 3600, "limit": 100},
    }


def plan(store: PostgresStore, name: str, params: dict[str, Any], generic: bool) -> str:
    """EXPLAIN of a statement: planned for these values, or the generic plan the store's connections run."""
    values = {"site": store.site_id, **params}
    with store.link.session() as conn:
        text = store._enqueue_statement() if name == "enqueue" else store._sql[name]
        if not generic:
            rows = conn.execute("EXPLAIN " + text, values).fetchall()
            return "\n".join(r[0] for r in rows)
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        statement = f"offload_explain_{uuid.uuid4().hex[:8]}"
        conn.execute(f"PREPARE {statement} AS " + re.sub(r"%\((\w+)\)s", number, text))
        try:
            args = sql.SQL(", ").join(sql.Literal(values[n]) for n in names)
            rows = conn.execute(sql.SQL("EXPLAIN EXECUTE {} ({})").format(sql.Identifier(statement), args)).fetchall()
        finally:
            conn.execute(f"DEALLOCATE {statement}")
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_hot_statements_use_indexes_not_table_scans(
    history_store: PostgresStore, analyzed: bool, generic: bool
) -> None:
    if analyzed:
        with history_store.link.session() as conn:
            conn.execute(f'ANALYZE "{history_store.schema}".jobs')
    statements = hot_statements(history_store)
    for name, params in statements.items():
        text = plan(history_store, name, params, generic)
        assert "Seq Scan on jobs" not in text, f"{name}:\n{text}"
        assert "Bitmap Heap Scan on jobs" not in text, f"{name}:\n{text}"
        if name != "work_ready":  # rows are changed where the probe found them, not looked up again
            assert "Tid Scan on jobs" in text, f"{name}:\n{text}"
        if name in ("settle", "extend", "enqueue"):  # probes by id use the primary key
            assert "Index Scan using jobs_pkey on jobs" in text, f"{name}:\n{text}"
    claim = plan(history_store, "claim", statements["claim"], generic)
    assert "Index Scan using jobs_claim on jobs" in claim, claim


def test_claiming_from_a_long_history_touches_few_pages(history_store: PostgresStore) -> None:
    params = hot_statements(history_store)["claim"]
    with history_store.link.session() as conn, conn.transaction(force_rollback=True):
        explained = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + history_store._sql["claim"],
            {"site": history_store.site_id, **params},
        ).fetchone()
        size = conn.execute("SELECT pg_relation_size(%s) / 8192", (f'"{history_store.schema}".jobs',)).fetchone()
    assert explained is not None and size is not None
    result, table_pages = explained[0][0], size[0]
    pages = result["Plan"]["Shared Hit Blocks"] + result["Plan"]["Shared Read Blocks"]
    assert result["Plan"]["Actual Rows"] == 10
    # Claiming ten jobs reads the queue heads and writes ten rows and their index entries: a few dozen pages
    # however long the history (here 21,000 rows on some 1,500 pages).
    assert table_pages > 1000 and pages < 250, (pages, table_pages)


# -- retention -----------------------------------------------------------------------------------------
def test_purge_deletes_oldest_first_in_batches(make_store: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store()
    now = time.time()
    store.enqueue_many([make_job(now=now) for _ in range(23)], now)
    jobs = store.claim(["default"], "w", LEASE, 23, now)
    store.settle(
        [Outcome(j.id, j.lease_token, "finish", result_json="1", ended_at=now - 1000 + i) for i, j in enumerate(jobs)],
        now,
    )
    statements: list[str] = []
    session = store.link.session

    def counting_session() -> Any:
        statements.append("session")
        return session()

    monkeypatch.setattr(store.link, "session", counting_session)
    monkeypatch.setattr(store, "purge_batch", 5)
    assert store.purge(now, limit=12) == 12
    assert len(statements) == 3  # 5 + 5 + 2, each its own short transaction
    remaining = sorted(store.list(states=[FINISHED], limit=100), key=lambda j: j.ended_at)
    assert [j.id for j in remaining] == [j.id for j in jobs[12:]]
    statements.clear()
    assert store.purge(now) == 11
    assert len(statements) == 3  # 5 + 5 + 1 (a short batch means nothing is left)
    assert store.count() == 0


# -- waking idle workers ---------------------------------------------------------------------------------
def waited(store: PostgresStore, queues: list[str], timeout: float, action: Callable[[], object]) -> tuple[bool, float]:
    """Start ``store.wait_for_work`` in a thread, run ``action``, return (result, seconds after the action)."""
    result: list[bool] = []
    started = threading.Event()

    def wait() -> None:
        started.set()
        result.append(store.wait_for_work(queues, timeout))

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait()
    time.sleep(0.1)
    begun = time.monotonic()
    action()
    thread.join(timeout + 5)
    return result[0], time.monotonic() - begun


def test_a_waiting_worker_is_woken_by_release_and_retry_now(make_store: Callable[..., Any]) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    waiter, other = make_store(site=site), make_store(site=site)
    other.enqueue(make_job(), time.time())
    job = other.claim(["default"], "w", LEASE, 1, time.time())[0]
    woke, after = waited(
        waiter, ["default"], 5, lambda: other.settle([Outcome(job.id, job.lease_token, "release")], time.time())
    )
    assert woke and after < 1.0
    job = other.claim(["default"], "w", LEASE, 1, time.time())[0]
    other.settle([Outcome(job.id, job.lease_token, "fail", error={"type": "E"})], time.time())
    woke, after = waited(waiter, ["default"], 5, lambda: other.retry_now(job.id, time.time()))
    assert woke and after < 1.0


def test_work_for_other_queues_or_sites_does_not_wake_a_worker(make_store: Callable[..., Any]) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    waiter, same_site, other_site = make_store(site=site), make_store(site=site), make_store()
    woke, _ = waited(waiter, ["default"], 0.5, lambda: same_site.enqueue(make_job("elsewhere"), time.time()))
    assert not woke
    woke, _ = waited(waiter, ["default"], 0.5, lambda: other_site.enqueue(make_job("default"), time.time()))
    assert not woke
    assert waiter.channel != other_site.channel


def test_a_newly_scheduled_job_shortens_the_wait(make_store: Callable[..., Any]) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    waiter, producer = make_store(site=site), make_store(site=site)
    now = time.time()
    producer.enqueue(make_job(now=now, run_at=now + 3600), now)  # the wait is bounded by this one at first
    woke, after = waited(
        waiter,
        ["default"],
        5,
        lambda: producer.enqueue(make_job(now=time.time(), run_at=time.time() + 0.3), time.time()),
    )
    assert woke and 0.2 <= after < 2.0


def test_a_busy_worker_keeps_its_notifications_drained(make_store: Callable[..., Any]) -> None:
    site = f"t{uuid.uuid4().hex[:12]}"
    worker, producer = make_store(site=site), make_store(site=site)
    assert not worker.wait_for_work(["default"], 0.01)  # now listening
    for _ in range(20):
        producer.enqueue(make_job(), time.time())
        assert worker.claim(["default"], "w", LEASE, 1, time.time())
    time.sleep(0.1)
    assert worker.link.listener is not None
    # Twenty wake-ups were sent; the claims read them as they came (the last may land after the last claim).
    assert worker.link.receive(0.0) <= 2


def test_close_while_waiting_returns_quietly(make_store: Callable[..., Any]) -> None:
    store = make_store()
    result: list[bool | BaseException] = []

    def wait() -> None:
        try:
            result.append(store.wait_for_work(["default"], 1.0))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.2)
    store.close()
    thread.join(5)
    assert result == [False]


# -- concurrency -----------------------------------------------------------------------------------------
def race(make_store: Callable[..., Any], produce: Callable[[PostgresStore], None]) -> PostgresStore:
    """Run ``produce`` in six threads at once, each with its own store on one new site; returns one store."""
    site = f"t{uuid.uuid4().hex[:12]}"
    stores = [make_store(site=site) for _ in range(6)]
    barrier = threading.Barrier(len(stores))

    def run(store: PostgresStore) -> None:
        barrier.wait()
        produce(store)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stores[0]


def test_racing_producers_add_one_job_per_unique_key(make_store: Callable[..., Any]) -> None:
    added: list[str] = []
    lock = threading.Lock()

    def produce(store: PostgresStore) -> None:
        for n in range(10):
            out = store.enqueue_many([make_job(unique_key=f"key-{n}"), make_job(id=f"id-{n}")], time.time())
            with lock:
                added.extend(j.id for j in out if not j.duplicate)

    store = race(make_store, produce)
    assert len(added) == 20 and store.count() == 20


def test_a_duplicate_comes_back_as_stored(make_store: Callable[..., Any]) -> None:
    store = make_store()
    now = time.time()
    first = make_job(now=now, title="first", meta={"b": 1, "a": [1.5, None]}, retry={"delay": 0.25}, timeout=None)
    store.enqueue(first, now)
    dup = store.enqueue_many([make_job(id=first.id, title="second")], now + 1)[0]
    assert dup.duplicate and dup == store.get(first.id)
    assert dup.created_at == first.created_at and list(dup.meta) == ["b", "a"]


def test_a_reused_id_keeps_batch_order(make_store: Callable[..., Any]) -> None:
    store = make_store()
    store.enqueue(make_job(id="report"), time.time())
    running = store.claim(["default"], "w", LEASE, 1, time.time())[0]
    store.settle([Outcome(running.id, running.lease_token, "finish", result_json="1")], time.time())
    now = time.time()
    batch = [make_job(now=now), make_job(id="report", now=now), make_job(now=now)]
    assert [j.duplicate for j in store.enqueue_many(batch, now)] == [False, False, False]
    claimed = store.claim(["default"], "w", LEASE, 10, now)
    assert [j.id for j in claimed] == [j.id for j in batch]
    assert claimed[1].attempts == 1 and claimed[1].result_json is None


def test_racing_single_enqueues_add_one_job_per_id_and_unique_key(make_store: Callable[..., Any]) -> None:
    added: list[str] = []
    seen: dict[str, set[str]] = {}
    lock = threading.Lock()

    def produce(store: PostgresStore) -> None:
        for n in range(10):
            for job in (make_job(unique_key=f"key-{n}"), make_job(id=f"id-{n}")):
                out = store.enqueue(job, time.time())
                with lock:
                    seen.setdefault(job.unique_key or job.id, set()).add(out.id)
                    if not out.duplicate:
                        added.append(out.id)

    store = race(make_store, produce)
    assert len(added) == 20 and store.count() == 20
    assert all(ids <= set(added) and len(ids) == 1 for ids in seen.values()), "every duplicate names the stored job"


def test_a_reused_id_blocked_by_a_pending_unique_key_leaves_the_done_job_as_it_was(
    make_store: Callable[..., Any],
) -> None:
    store = make_store()
    store.enqueue(make_job(id="report", title="first"), time.time())
    running = store.claim(["default"], "w", LEASE, 1, time.time())[0]
    store.settle([Outcome(running.id, running.lease_token or "", "finish", result_json="1")], time.time())
    holder = store.enqueue(make_job(unique_key="nightly"), time.time())
    dup = store.enqueue(make_job(id="report", unique_key="nightly", title="second"), time.time())
    assert dup.duplicate and dup.id == holder.id
    done = store.get("report")
    assert done is not None and done.state == FINISHED and done.title == "first" and done.result_json == "1"


def test_a_single_enqueue_stores_numbers_exactly_under_one_prepared_statement(make_store: Callable[..., Any]) -> None:
    """The single-job INSERT sends numbers as text: they must come back exactly, and NULL or not, small or large,
    the parameter types must not change (each change would be one more statement for psycopg to prepare)."""
    store = make_store()
    now = time.time()
    for n in range(12):
        job = make_job(
            now=now + n / 7,
            run_at=now + 3600 + n / 3 if n % 2 else None,
            timeout=None if n % 3 else 0.1 + n,
            attempts=n,
            max_attempts=40_000 if n % 4 == 0 else 3,
            retry=None if n % 2 else {"delay": 1.5},
        )
        assert not store.enqueue(job, now).duplicate
        got = store.get(job.id)
        assert got is not None
        assert (got.created_at, got.run_at, got.timeout, got.attempts, got.max_attempts, got.retry) == (
            job.created_at, job.run_at, job.timeout, job.attempts, job.max_attempts, job.retry
        )
        assert got.enqueued_at == (None if job.run_at else now)
    with store.link.session() as conn:
        prepared = conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%ON CONFLICT DO NOTHING%'"
        ).fetchone()[0]
    assert prepared == 1
