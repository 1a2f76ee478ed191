"""Transactional enqueue on PostgreSQL: jobs written inside the application's own transaction, through its own
connection (psycopg 3, psycopg2, SQLAlchemy Connection and Session), against the real server.

What each test proves is seen from outside that transaction: another connection (the store's, a worker's) and
a LISTENing connection on the site's wake-up channel. Commit: the job exists, a worker (a real ``offload worker``
process) runs it, and the wake-up arrives. Rollback: no job, no wake-up. A rolled-back savepoint: only its jobs
are gone. Refusals leave the application's transaction usable and write nothing.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from offload import Offload
from offload.errors import StoreError
from offload.events.publish import notify
from offload.stores.postgres import PostgresStore
from tests.conftest import engine_url

psycopg = pytest.importorskip("psycopg")
psycopg2 = pytest.importorskip("psycopg2")
sqlalchemy = pytest.importorskip("sqlalchemy")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = ["psycopg", "psycopg2", "sqlalchemy-connection", "sqlalchemy-session"]


def plain_url(store_url: str, database: str | None = None) -> str:
    """The libpq URL of the store (no offload options), optionally naming another database."""
    parts = urlsplit(store_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), parts.fragment))


class Caller:
    """An application's connection in one of the supported shapes, with its transaction verbs."""

    def __init__(self, driver: str, url: str) -> None:
        self.driver = driver
        self.engine: Any = None
        self._closers: list[Callable[[], Any]] = []
        if driver == "psycopg":
            self.conn = self.handle = psycopg.connect(url)
        elif driver == "psycopg2":
            self.conn = self.handle = psycopg2.connect(url)
        else:
            dialect = "psycopg2" if driver == "sqlalchemy-connection" else "psycopg"
            self.engine = create_engine(url.replace("postgresql://", f"postgresql+{dialect}://", 1))
            self._closers.append(self.engine.dispose)
            if driver == "sqlalchemy-connection":
                self.conn = self.handle = self.engine.connect()
            else:
                self.handle = Session(self.engine)
                self.conn = self.handle
        self._closers.insert(0, self.handle.close)

    def execute(self, statement: str) -> Any:
        if self.driver == "psycopg":
            return self.conn.execute(statement).fetchall() if statement.lstrip().upper().startswith("SELECT") \
                else self.conn.execute(statement)
        if self.driver == "psycopg2":
            with self.conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else None
        result = self.handle.execute(text(statement))
        return result.fetchall() if result.returns_rows else None

    def commit(self) -> None:
        self.handle.commit()

    def rollback(self) -> None:
        self.handle.rollback()

    def close(self) -> None:
        for close in self._closers:
            close()


@pytest.fixture
def store_url(tmp_path: Any) -> str:
    return engine_url("postgresql", tmp_path)


@pytest.fixture
def app(store_url: str) -> Iterator[Offload]:
    site = f"t{uuid.uuid4().hex[:12]}"
    app = Offload(store=store_url, site_id=site, offload__consumers=["tests.events.consumer_classes:Recorder"],
                  offload__tasks__imports=["tests.taskmods.echo_tasks"])
    app.store  # noqa: B018 - opened (and migrated) before any caller transaction starts
    yield app
    app.close()


@pytest.fixture(params=DRIVERS)
def caller(request: pytest.FixtureRequest, store_url: str) -> Iterator[Caller]:
    made = Caller(str(request.param), plain_url(store_url))
    yield made
    made.close()


class Wakeups:
    """A LISTEN connection on a site's channel; ``after_marker`` returns what arrived before a marker."""

    def __init__(self, url: str, channel: str) -> None:
        self.channel = channel
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f'LISTEN "{channel}"')
        self.sender = psycopg.connect(url, autocommit=True)

    def received(self) -> list[str]:
        """Every payload notified so far: a marker is sent and read back, so none sent before it is missed."""
        marker = uuid.uuid4().hex
        self.sender.execute("SELECT pg_notify(%s, %s)", (self.channel, marker))
        payloads = []
        for note in self.conn.notifies(timeout=10):
            if note.payload == marker:
                return payloads
            payloads.append(note.payload)
        raise AssertionError("the marker notification never arrived")

    def close(self) -> None:
        self.conn.close()
        self.sender.close()


@pytest.fixture
def wakeups(app: Offload, store_url: str) -> Iterator[Wakeups]:
    store = app.store
    assert isinstance(store, PostgresStore)
    listener = Wakeups(plain_url(store_url), store.channel)
    yield listener
    listener.close()


def run_worker(app: Offload, store_url: str) -> None:
    """A real ``offload worker --burst`` on the site: runs what is queued, then exits."""
    cmd = [sys.executable, "-m", "offload", "--store", store_url, "--site-id", app.site_id, "worker", "default",
           "--burst", "--without-scheduler", "-n", "1"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# -- commit, rollback, savepoints ----------------------------------------------------------------------------
def test_committed_jobs_exist_wake_workers_and_run(app: Offload, caller: Caller, wakeups: Wakeups,
                                                   store_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ran.txt"
    caller.execute("SELECT 1")  # the application has started its transaction
    job = app.enqueue("tests.jobfuncs:ledger", [str(ledger), "committed"], connection=caller.conn)
    assert not job.duplicate
    assert app.store.get(job.id) is None, "invisible outside the transaction before it commits"
    assert wakeups.received() == [], "no wake-up before the commit"
    caller.commit()
    assert wakeups.received() == [f"{app.site_id}:default"]
    got = app.store.get(job.id)
    assert got is not None and got.state == "queued"
    run_worker(app, store_url)
    (line,) = ledger.read_text().splitlines()
    assert line.split()[0] == job.id and line.endswith(" committed")
    done = app.store.get(job.id)
    assert done is not None and done.state == "finished"


def test_rolled_back_jobs_are_gone_and_woke_no_one(app: Offload, caller: Caller, wakeups: Wakeups) -> None:
    jobs = [app.enqueue("tests.jobfuncs:noop", connection=caller.conn),
            *app.enqueue_many(["tests.jobfuncs:noop", "tests.jobfuncs:noop"], connection=caller.conn)]
    caller.rollback()
    assert [app.store.get(job.id) for job in jobs] == [None, None, None]
    assert app.store.count() == 0
    assert wakeups.received() == []


def test_a_rolled_back_savepoint_removes_only_its_jobs(app: Offload, caller: Caller, wakeups: Wakeups) -> None:
    before = app.enqueue("tests.jobfuncs:noop", ["before"], connection=caller.conn)
    caller.execute("SAVEPOINT inner_work")
    inside = [app.enqueue("tests.jobfuncs:noop", ["inside"], queue="other", connection=caller.conn),
              *app.enqueue_many([("tests.jobfuncs:noop", ["inside"])] * 2, queue="other", connection=caller.conn)]
    caller.execute("ROLLBACK TO SAVEPOINT inner_work")
    after = app.enqueue("tests.jobfuncs:noop", ["after"], connection=caller.conn)
    caller.commit()
    assert {j.id for j in app.list_jobs()} == {before.id, after.id}
    assert all(app.store.get(job.id) is None for job in inside)
    assert wakeups.received() == [f"{app.site_id}:default"], "the rolled-back queue was not woken"


def test_duplicates_inside_the_transaction_are_found(app: Offload, caller: Caller) -> None:
    first = app.enqueue("tests.jobfuncs:noop", unique_key="nightly", connection=caller.conn)
    again = app.enqueue("tests.jobfuncs:noop", unique_key="nightly", connection=caller.conn)
    batch = app.enqueue_many([{"fn": "tests.jobfuncs:noop", "unique_key": "nightly"},
                              {"fn": "tests.jobfuncs:noop", "unique_key": "weekly"},
                              {"fn": "tests.jobfuncs:noop", "unique_key": "weekly"}], connection=caller.conn)
    assert again.duplicate and again.id == first.id
    assert [j.duplicate for j in batch] == [True, False, True] and batch[0].id == first.id
    assert batch[2].id == batch[1].id
    caller.commit()
    assert app.store.count() == 2


def test_send_task_and_notify_join_the_transaction(app: Offload, caller: Caller) -> None:
    sent = app.send_task("tests.echo", ["hello"], connection=caller.conn)
    deliveries = notify(app, "package", "create", {"id": "p1"}, connection=caller.conn)
    assert len(deliveries) == 1 and deliveries[0].queue == "consumer.recorder"
    assert app.store.get(sent.id) is None and app.store.get(deliveries[0].id) is None
    caller.commit()
    assert app.store.get(sent.id) is not None and app.store.get(deliveries[0].id) is not None


# -- refusals ---------------------------------------------------------------------------------------------
def assert_nothing_written(app: Offload) -> None:
    assert app.store.count() == 0


def test_an_autocommit_connection_is_refused(app: Offload, store_url: str) -> None:
    url = plain_url(store_url)
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(StoreError, match="autocommit mode, so there is no transaction"):
            app.enqueue("tests.jobfuncs:noop", connection=conn)
        with conn.transaction():  # an explicit transaction on an autocommit connection is one to join
            job = app.enqueue("tests.jobfuncs:noop", connection=conn)
        assert app.store.get(job.id) is not None
    legacy = psycopg2.connect(url)
    legacy.autocommit = True
    try:
        with pytest.raises(StoreError, match="autocommit mode"):
            app.enqueue("tests.jobfuncs:noop", connection=legacy)
    finally:
        legacy.close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn, pytest.raises(StoreError, match="autocommit mode"):
            app.enqueue("tests.jobfuncs:noop", connection=conn)
    finally:
        engine.dispose()
    assert app.store.count() == 1


def test_closed_and_failed_connections_are_refused(app: Offload, store_url: str) -> None:
    conn = psycopg2.connect(plain_url(store_url))
    with conn.cursor() as cur, pytest.raises(psycopg2.Error):
        cur.execute("SELECT 1/0")
    with pytest.raises(StoreError, match=r"already failed .* roll it back first"):
        app.enqueue("tests.jobfuncs:noop", connection=conn)
    conn.close()
    with pytest.raises(StoreError, match="the connection is closed"):
        app.enqueue("tests.jobfuncs:noop", connection=conn)
    assert_nothing_written(app)


def test_a_connection_to_another_database_is_refused_and_its_transaction_kept(app: Offload, store_url: str) -> None:
    with psycopg.connect(plain_url(store_url, "postgres")) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(StoreError) as caught:
            app.enqueue("tests.jobfuncs:noop", connection=conn)
        message = str(caught.value)
        assert "reaches database 'postgres'" in message and "no worker would see the jobs" in message
        assert conn.execute("SELECT 2").fetchone() == (2,), "the application's transaction is still usable"
    assert_nothing_written(app)


def test_other_objects_and_engines_are_refused(app: Offload, store_url: str, tmp_path: Path) -> None:
    url = plain_url(store_url)
    with pytest.raises(TypeError, match="pass the connection"):
        app.enqueue("tests.jobfuncs:noop", connection="postgresql://elsewhere")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with pytest.raises(TypeError, match="an Engine has none"):
            app.enqueue("tests.jobfuncs:noop", connection=engine)
    finally:
        engine.dispose()
    lite = create_engine(f"sqlite:///{tmp_path}/app.db")
    try:
        with lite.connect() as conn, pytest.raises(StoreError, match=r"through a sqlite\+pysqlite connection"):
            app.enqueue("tests.jobfuncs:noop", connection=conn)
    finally:
        lite.dispose()
    assert_nothing_written(app)


def test_a_store_other_than_postgresql_refuses_connection(store_url: str, tmp_path: Path) -> None:
    app = Offload(store=f"sqlite:///{tmp_path}/jobs.db")
    with psycopg.connect(plain_url(store_url)) as conn, pytest.raises(StoreError, match="needs the PostgreSQL store"):
        app.enqueue("tests.jobfuncs:noop", connection=conn)
    assert app.store.count() == 0
    app.close()


def test_the_applications_row_types_do_not_matter(app: Offload, store_url: str) -> None:
    from psycopg.rows import dict_row
    from psycopg2.extras import RealDictCursor

    url = plain_url(store_url)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        first = app.enqueue("tests.jobfuncs:noop", unique_key="k", connection=conn)
        assert app.enqueue("tests.jobfuncs:noop", unique_key="k", connection=conn).id == first.id
    legacy = psycopg2.connect(url, cursor_factory=RealDictCursor)
    try:
        dup = app.enqueue_many([{"fn": "tests.jobfuncs:noop", "unique_key": "k"}] * 2, connection=legacy)
        assert [j.duplicate for j in dup] == [True, True] and dup[0].id == first.id
        legacy.commit()
    finally:
        legacy.close()
    assert app.store.count() == 1
