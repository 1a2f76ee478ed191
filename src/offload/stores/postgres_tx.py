"""Transactional enqueue: an application's own database connection, in its open transaction, as offload's.

``join(connection)`` accepts what applications hold while they write their own rows: a psycopg 3
``Connection``, a psycopg2 connection (CKAN's driver), an SQLAlchemy ``Connection`` or ``Session`` (or a
``scoped_session``) whose driver is psycopg or psycopg2. The store then writes its job rows through that
connection, so they commit with the application's transaction, vanish if it rolls back (a savepoint rolled
back removes only the jobs enqueued after it), and wake workers (``NOTIFY`` is transactional) only at commit.

Refused, each with a message saying what to do: any other object, an async or closed connection, one in
autocommit mode outside an explicit transaction, a transaction that already failed, a driver other than
psycopg or psycopg2. The store checks (once per connection) that it reaches the store's own database.
"""

from __future__ import annotations

import weakref
from typing import Any

from offload.errors import StoreError

# SQLSTATE of a unique violation: an enqueue round lost a race and is tried again.
UNIQUE_VIOLATION = "23505"
_SAVEPOINT = "offload_enqueue"


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def error_state(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg, psycopg2 or SQLAlchemy-wrapped error (None if it has none)."""
    inner = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
    if isinstance(inner, BaseException):
        return error_state(inner)
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


class CallerTransaction:
    """The application's connection, joined: runs offload's statements in its transaction."""

    def __init__(self, driver: str, raw: Any, sqlalchemy: Any = None) -> None:
        self.driver = driver  # "psycopg" or "psycopg2"
        self.raw = raw  # the DBAPI connection
        self.sqlalchemy = sqlalchemy  # the SQLAlchemy Connection it came through, if any

    def execute(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement in the caller's transaction; its rows as tuples (whatever row type the
        application configured)."""
        if self.sqlalchemy is not None:
            result = self.sqlalchemy.exec_driver_sql(statement, params) if params is not None \
                else self.sqlalchemy.exec_driver_sql(statement)
            return [tuple(row) for row in result] if result.returns_rows else []
        if self.driver == "psycopg":
            from psycopg.rows import tuple_row

            with self.raw.cursor(row_factory=tuple_row) as cur:
                # Never prepared: the application's connection may go through a transaction pooler.
                cur.execute(statement, params, prepare=False)
                return list(cur.fetchall()) if cur.description else []
        import psycopg2.extensions

        with self.raw.cursor(cursor_factory=psycopg2.extensions.cursor) as cur:
            cur.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []

    def execute_guarded(self, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """``execute`` under a savepoint: a failure leaves the caller's transaction as it was. None when the
        statement lost a race for a unique id or key (to be tried again)."""
        self.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            rows = self.execute(statement, params)
        except Exception as exc:
            self.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            self.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            if error_state(exc) == UNIQUE_VIOLATION:
                return None
            raise
        self.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return rows


_HOW = ("pass the connection (psycopg 3 or psycopg2), or the SQLAlchemy Connection or Session, that holds "
        "your open transaction")


def join(connection: Any) -> CallerTransaction:
    """The application's connection as a CallerTransaction; TypeError or StoreError when it cannot be one."""
    module = _module(connection)
    if module.startswith("sqlalchemy"):
        return _join_sqlalchemy(connection)
    if module.startswith("psycopg2"):
        _check_psycopg2(connection)
        return CallerTransaction("psycopg2", connection)
    if module.startswith("psycopg"):
        import psycopg

        if isinstance(connection, psycopg.AsyncConnection):
            raise TypeError("transactional enqueue needs a synchronous psycopg Connection, not an AsyncConnection")
        if not isinstance(connection, psycopg.Connection):
            raise TypeError(f"connection= got a {type(connection).__name__} from psycopg: {_HOW}")
        _check_psycopg(connection)
        return CallerTransaction("psycopg", connection)
    raise TypeError(f"connection= got {type(connection).__module__}.{type(connection).__name__}: {_HOW}")


def _not_open(why: str) -> StoreError:
    return StoreError(f"cannot enqueue inside the connection's transaction: {why}")


def _check_psycopg(conn: Any) -> None:
    from psycopg.pq import TransactionStatus

    status = conn.info.transaction_status
    if conn.closed or status == TransactionStatus.UNKNOWN:
        raise _not_open("the connection is closed; enqueue while its transaction is open")
    _check_status(status.name, bool(conn.autocommit))


def _check_psycopg2(conn: Any) -> None:
    import psycopg2.extensions as ext

    if not hasattr(conn, "get_transaction_status"):
        raise TypeError(f"connection= got a {type(conn).__name__} from psycopg2: {_HOW}")
    if conn.closed:
        raise _not_open("the connection is closed; enqueue while its transaction is open")
    names = {ext.TRANSACTION_STATUS_IDLE: "IDLE", ext.TRANSACTION_STATUS_ACTIVE: "ACTIVE",
             ext.TRANSACTION_STATUS_INTRANS: "INTRANS", ext.TRANSACTION_STATUS_INERROR: "INERROR"}
    status = names.get(conn.get_transaction_status(), "UNKNOWN")
    if status == "UNKNOWN":
        raise _not_open("the connection is broken; enqueue while its transaction is open")
    _check_status(status, bool(conn.autocommit))


def _check_status(status: str, autocommit: bool) -> None:
    if status == "INERROR":
        raise _not_open("its transaction has already failed (an earlier statement raised); roll it back first")
    if status == "ACTIVE":
        raise _not_open("a query is still running on it")
    if status == "IDLE" and autocommit:
        raise _not_open(
            "it is in autocommit mode, so there is no transaction for the job to join: open one first "
            "(psycopg: `with conn.transaction():`; psycopg2: conn.autocommit = False; SQLAlchemy: a "
            "Connection or Session without isolation_level='AUTOCOMMIT')"
        )


def _join_sqlalchemy(obj: Any) -> CallerTransaction:
    if not hasattr(obj, "exec_driver_sql"):
        if hasattr(obj, "connection") and hasattr(obj, "commit") and _module(obj).startswith("sqlalchemy.orm"):
            try:
                obj = obj.connection()  # a Session (or scoped_session): the connection of its transaction
            except Exception as exc:
                raise StoreError(
                    f"cannot enqueue inside the Session's transaction: it has no connection for offload's "
                    f"database ({exc}); pass session.connection(...) for that engine instead"
                ) from exc
        else:
            raise TypeError(f"connection= got a SQLAlchemy {type(obj).__name__}: {_HOW} (an Engine has none)")
    if obj.closed or getattr(obj, "invalidated", False):
        raise _not_open("the SQLAlchemy Connection is closed; enqueue while its transaction is open")
    if not obj.in_transaction() and _legacy_autocommit(obj):
        raise _not_open("the SQLAlchemy Connection has no transaction: begin one (`with conn.begin():`)")
    dialect = f"{obj.dialect.name}+{obj.dialect.driver}"
    if dialect not in ("postgresql+psycopg", "postgresql+psycopg2"):
        raise StoreError(
            f"cannot enqueue through a {dialect} connection: transactional enqueue needs the store's own "
            "PostgreSQL database through psycopg (postgresql+psycopg://) or psycopg2 (postgresql+psycopg2://)"
        )
    fairy = obj.connection
    raw = getattr(fairy, "dbapi_connection", None) or fairy.connection
    if obj.dialect.driver == "psycopg2":
        _check_psycopg2(raw)
        return CallerTransaction("psycopg2", raw, obj)
    _check_psycopg(raw)
    return CallerTransaction("psycopg", raw, obj)


def _legacy_autocommit(conn: Any) -> bool:
    """True for SQLAlchemy 1.x's legacy Connection, which commits each statement run outside a begin()
    (a 2.0-style Connection begins a transaction on first use instead, as offload's statement will)."""
    import sqlalchemy

    return int(sqlalchemy.__version__.split(".")[0]) < 2 and not getattr(conn, "_is_future", False)


class Verified:
    """The application connections already checked to reach the store's database (weakly held)."""

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()

    def get(self, raw: Any) -> tuple[str, str] | None:
        try:
            return self._seen.get(raw)
        except TypeError:  # not weakly referenceable: checked every time
            return None

    def add(self, raw: Any, identity: tuple[str, str]) -> None:
        try:
            self._seen[raw] = identity
        except TypeError:
            pass
