"""A PostgreSQL store's connections: one for the verbs, one for waiting, and what their failures mean.

- **The verbs' connection** (``session()``) is used under a lock, in autocommit mode: every verb is one
  statement. A connection the server closed while it was idle (a restart, a failover, an administrator) is
  noticed before use and replaced; one that fails during a call is dropped, and the next call connects again.
  Connections never cross ``fork()``.
- **Failures** become ``StoreUnavailable`` (an outage: the worker waits it out with backoff) when no server
  answered or the server said it cannot serve now: a lost or refused connection, an administrator's or a
  crash's shutdown, a server in recovery, a read-only server (a standby: with a multi-host URL the next
  connection may reach the new primary). Anything else is ``StoreError``. Either way the message holds the
  whole reason (libpq lists every host it tried) and what to do, passwords hidden.
- **Waiting for work** (``wait()``): a connection of its own LISTENs on the site's channel, checks for work,
  then sleeps on its socket until a notification for its queues or the next scheduled job's due time. It
  connects to ``listen_url`` when the URL gives one (a direct connection beside a transaction pooler, checked
  to reach the same database). Behind a transaction or statement pooler without one, LISTEN cannot work (the
  pooler hands the session to other clients), so the waiting connection polls instead: every ``poll`` seconds
  (1 ms) within a second of the last work found, then doubling up to ``idle_poll`` (50 ms).
"""

from __future__ import annotations

import collections
import os
import select
import selectors
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from offload.errors import StoreError, StoreUnavailable, StoreURLError
from offload.stores.postgres_sql import IDENTITY as IDENTITY_SQL
from offload.stores.postgres_url import StoreURL, advice, is_outage, reason

Connection = psycopg.Connection[TupleRow]

#: How long after the last work found a polling store keeps polling at its fastest (seconds).
BUSY_WINDOW = 1.0


def readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``fd`` to become readable."""
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except ValueError:  # a descriptor number beyond select()'s limit
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            return bool(selector.select(timeout))


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, None when no server answered."""
    diag = getattr(exc, "diag", None)
    return getattr(exc, "sqlstate", None) or (diag.sqlstate if diag is not None else None)


class Link:
    """The connections of one store (see the module docstring)."""

    def __init__(self, url: StoreURL, site_id: str, channel: str, work_ready: str) -> None:
        self.url = url
        self.site_id = site_id
        self.channel = channel
        self.work_ready = work_ready
        self.lock = threading.RLock()
        self.conn: Connection | None = None
        self.listen_lock = threading.Lock()
        self.listener: Connection | None = None
        self.wakeups: collections.deque[str] = collections.deque()  # notification payloads not yet read
        self.identity: tuple[str, str] | None = None  # (database, server) the verbs' connection reaches
        self._lost: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._pid = os.getpid()
        self.closed = False
        self._stop = threading.Event()  # set by close(): a polling wait returns at once
        self.busy_until = 0.0  # monotonic time until which a polling wait polls at its fastest

    # -- connecting --------------------------------------------------------------------------------------
    def connect(self, listen: bool = False) -> Connection:
        """A new connection for the verbs, or (``listen``) for waiting."""
        direct = listen and self.url.listen_conninfo is not None
        conninfo = self.url.listen_conninfo if direct else self.url.conninfo
        options = self.url.listen_options if direct else self.url.connect_options
        assert conninfo is not None
        try:
            conn = psycopg.connect(conninfo, **options)
        except psycopg.ProgrammingError as exc:  # libpq refused the URL itself (unknown option, bad port ...)
            what = "listen_url of " if direct else ""
            raise StoreURLError(f"invalid PostgreSQL {what}URL {self.url.safe}: {reason(exc, self.url)}") from None
        except psycopg.Error as exc:
            text = reason(exc, self.url)
            hint = "check that the server is up and the store URL is right"
            if "session is read-only" in text or "hot standby" in text:
                hint = "no host of the URL is a writable primary now (a failover under way?)"
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL store {self.url.safe}: {text} ({hint}; the next call tries again)"
            ) from None
        self._watch(conn)
        if not self.url.pooled and "plan_cache_mode" not in conninfo:
            # The hot statements are shaped to need no statistics; left on "auto", PostgreSQL re-plans the
            # claim on every call (about 1 ms, more than running it). A session setting: not behind a pooler.
            try:
                conn.execute("SET plan_cache_mode = force_generic_plan")
            except psycopg.Error as exc:
                error = self.error(exc, conn)
                conn.close()
                raise error from None
        return conn

    def check_fork(self) -> None:
        # A forked child must not touch its parent's sockets; psycopg does not close them from the child either.
        if os.getpid() != self._pid:
            self.conn = self.listener = None
            self._pid = os.getpid()

    def error(self, exc: BaseException, conn: Connection | None) -> StoreError:
        """The StoreError for ``exc``, raised on ``conn`` (dropped when it is no use any more)."""
        state = sqlstate(exc)
        text = reason(exc, self.url)
        hint = advice(state, text, self.url)
        broken = conn is None or conn.broken or conn.closed or conn in self._lost \
            or conn.info.status != psycopg.pq.ConnStatus.OK
        if broken or is_outage(state):
            if conn is not None:
                self.drop(conn)
            hint = hint or "the connection was lost; the next call connects again"
            return StoreUnavailable(f"PostgreSQL store {self.url.safe} is unavailable: {text} ({hint})")
        return StoreError(f"PostgreSQL store {self.url.safe} failed: {text}{f' ({hint})' if hint else ''}")

    def _usable(self, conn: Connection) -> bool:
        """False when an idle connection has been closed by the server (a restart, an administrator).

        An idle autocommit connection receives nothing unless the server is ending it, so one poll of the
        socket (microseconds) lets the first call after a server restart reconnect instead of failing.
        """
        if conn.closed or conn.broken or conn in self._lost:
            return False
        for _ in range(3):  # the server's farewell (FATAL, then end of file) may take more than one read
            try:
                if not readable(conn.fileno(), 0.0):
                    break
            except OSError:
                return False
            try:
                conn.pgconn.consume_input()
                conn.pgconn.is_busy()  # parses what was read: a FATAL reaches _watch's notice handler
            except psycopg.OperationalError:
                return False
        return conn not in self._lost and conn.pgconn.status == psycopg.pq.ConnStatus.OK

    def _watch(self, conn: Connection) -> None:
        """Remember a connection the server said it is ending (a FATAL message received while idle)."""
        ref, lost = weakref.ref(conn), self._lost

        def on_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
            if diagnostic.severity_nonlocalized in ("FATAL", "PANIC") and (dying := ref()) is not None:
                lost.add(dying)

        conn.add_notice_handler(on_notice)

    def drop(self, conn: Connection) -> None:
        if conn is self.conn:
            self.conn = None
            self.identity = None
        elif conn is self.listener:
            self.listener = None
        try:
            conn.close()
        except psycopg.Error:
            pass

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """The verbs' connection (one per store, used under a lock), reconnected after a failure."""
        with self.lock:
            self.check_fork()
            if self.conn is not None and not self._usable(self.conn):
                self.drop(self.conn)
            if self.conn is None:
                self.conn = self.connect()
            conn = self.conn
            try:
                yield conn
            except psycopg.Error as exc:
                error = self.error(exc, conn)
                if isinstance(error, StoreUnavailable):
                    raise error from None
                raise error from exc

    def server_identity(self) -> tuple[str, str]:
        """(database, server) that the verbs' connection reaches, read once per connection."""
        with self.session() as conn:
            if self.identity is None:
                row = conn.execute(IDENTITY_SQL).fetchone()
                assert row is not None
                self.identity = (str(row[0]), str(row[1]))
            return self.identity

    def open(self) -> None:
        self.closed = False
        self._stop.clear()

    def close(self) -> None:
        self.closed = True
        self._stop.set()
        with self.lock:
            conn, self.conn = self.conn, None
            self.identity = None
        listener, self.listener = self.listener, None
        for c in (conn, listener):
            if c is not None and self._pid == os.getpid():
                try:
                    c.close()
                except psycopg.Error:
                    pass

    # -- waiting -----------------------------------------------------------------------------------------
    def wait(self, names: list[str], timeout: float) -> bool:
        """Block until a job may be claimable from the stored queue ``names`` or ``timeout`` seconds pass."""
        deadline = time.monotonic() + max(0.0, timeout)
        if not self.listen_lock.acquire(timeout=max(0.0, timeout)):
            return False  # another thread of this store is waiting; our time is up
        try:
            for attempt in (1, 2):
                conn = self._waiting()
                try:
                    if self.url.polls:
                        return self._poll(conn, names, deadline)
                    return self._wait_on(conn, names, deadline)
                except psycopg.Error as exc:
                    if self.closed:
                        return False
                    error = self.error(exc, conn)
                    # Waiting again on a new connection is always safe (it checks first): do it once, so a
                    # server restart while a worker sleeps costs it nothing.
                    if attempt == 2 or not isinstance(error, StoreUnavailable):
                        raise error from None
            return False  # not reached
        finally:
            self.listen_lock.release()

    def _waiting(self) -> Connection:
        """The waiting connection, connected (and LISTENing, unless the store polls) when it was not."""
        self.check_fork()
        if self.listener is not None and not self.listener.closed:
            return self.listener
        conn = self.connect(listen=True)
        try:
            if self.url.listen_conninfo is not None:
                self._check_same_database(conn)
            if not self.url.polls:
                wakeups = self.wakeups
                wakeups.clear()
                # Notifications that arrive while a query runs on this connection are kept by this handler;
                # those that arrive while it is idle are read in _receive.
                conn.add_notify_handler(lambda note: wakeups.append(note.payload))
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailable(
                f"PostgreSQL store {self.url.safe} cannot LISTEN: {reason(exc, self.url)}"
                + (f" ({hint})" if (hint := advice(sqlstate(exc), str(exc), self.url)) else "")
            ) from None
        except StoreError:
            conn.close()
            raise
        self.listener = conn
        return conn

    def _check_same_database(self, conn: Connection) -> None:
        row = conn.execute(IDENTITY_SQL).fetchone()
        assert row is not None
        theirs = (str(row[0]), str(row[1]))
        ours = self.server_identity()
        if theirs != ours:
            raise StoreURLError(
                f"the listen_url of PostgreSQL store {self.url.safe} reaches database {theirs[0]!r} ({theirs[1]}), "
                f"not the store's database {ours[0]!r} ({ours[1]}): give a listen_url that reaches the same "
                "database directly, or leave it out (idle workers then poll)"
            )

    def _receive(self, conn: Connection, timeout: float) -> None:
        """Add the notifications that arrive within ``timeout`` seconds to ``self.wakeups``."""
        if self.wakeups:
            return
        if not readable(conn.fileno(), timeout):
            return
        conn.pgconn.consume_input()  # raises OperationalError when the server has gone
        while (note := conn.pgconn.notifies()) is not None:
            self.wakeups.append(note.extra.decode(errors="replace"))
        if conn in self._lost or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the server closed the connection")

    def receive(self, timeout: float = 0.0) -> int:
        """Read what notifications arrived on the waiting connection; how many are unread (for tests)."""
        if self.listener is not None:
            self._receive(self.listener, timeout)
        return len(self.wakeups)

    def discard_wakeups(self) -> None:
        """Read and drop the notifications that arrived while no one was waiting.

        A busy worker claims without waiting, and a listener that is never read holds back the server's
        notification queue (and, once that fills, every NOTIFY). Dropping them is safe: a wait checks first.
        """
        listener = self.listener
        if listener is None or self.url.polls or not self.listen_lock.acquire(blocking=False):
            return
        try:
            if listener is self.listener and not listener.closed:
                self._receive(listener, 0.0)
                self.wakeups.clear()
        except psycopg.Error:
            self.drop(listener)
        finally:
            self.listen_lock.release()

    def _check(self, conn: Connection, names: list[str]) -> tuple[bool, float | None]:
        """(whether work is claimable now, when the next scheduled job is due)."""
        row = conn.execute(self.work_ready, {"queues": names, "site": self.site_id}).fetchone()
        assert row is not None
        next_due: float | None = row[1]
        return bool(row[0]) or (next_due is not None and next_due <= time.time()), next_due

    def _wait_on(self, conn: Connection, names: list[str], deadline: float) -> bool:
        wanted = set(names)
        check = True
        next_due: float | None = None
        while True:
            if check:
                # Whatever was notified so far is committed, so the check below sees it: drop those wake-ups.
                # Notifications that arrive from here on are kept, so none is missed between check and sleep.
                self._receive(conn, 0.0)
                self.wakeups.clear()
                ready, next_due = self._check(conn, names)
                if ready:
                    return True
                check = False
            wait = deadline - time.monotonic()
            if wait <= 0 or self.closed:
                return False
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - time.time()) + 0.0005)
            self._receive(conn, wait)
            while self.wakeups:
                payload = self.wakeups.popleft()
                if payload in wanted:
                    return True
                check = check or payload == ""
            if next_due is not None and time.time() >= next_due:
                check = True

    def _poll(self, conn: Connection, names: list[str], deadline: float) -> bool:
        interval = self.url.poll
        while True:
            ready, next_due = self._check(conn, names)
            if ready:
                self.busy_until = time.monotonic() + BUSY_WINDOW
                return True
            now = time.monotonic()
            if now >= deadline or self.closed:
                return False
            interval = self.url.poll if now < self.busy_until else min(self.url.idle_poll, interval * 2)
            pause = min(interval, deadline - now)
            if next_due is not None:
                pause = min(pause, max(0.0, next_due - time.time()) + 0.0005)
            if self._stop.wait(pause):
                return False

    def found_work(self) -> None:
        """A claim found jobs: a polling store polls at its fastest for a while."""
        self.busy_until = time.monotonic() + BUSY_WINDOW

