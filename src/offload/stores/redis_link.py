"""The Redis store's connections, made by redis-py (with the hiredis reply parser when it is installed): the URL
forms, a small pool, exchanges of one round trip whose error replies are values, and what a failure means.

URL forms (what redis-py and Celery read, plus Sentinel's host list)::

    redis://[[user]:password@]host[:port][/db]             TCP
    rediss://[[user]:password@]host[:port][/db]            TLS (the ``ssl_*`` options below)
    unix:///path/redis.sock[?db=0]                         a unix socket (also ``redis+unix://``)
    redis+sentinel://[[user]:password@]host:26379,host:26380/<service>[/<db>]
                                                           the master Sentinel names (``rediss+sentinel://``: TLS)

Query options: ``prefix`` (read by the store), ``timeout`` and ``connect_timeout`` (seconds), ``db`` (for
socket URLs, which have no path of their own for it), ``min_replicas`` (a write is acknowledged once that many
replicas have it: ``WAIT``, read by the store), ``sentinel_password`` (when the sentinels ask for one of their
own) and, with TLS, redis-py's ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_ca_path``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_password``, ``ssl_check_hostname`` and ``ssl_ciphers``. Any other option is refused by name.

The pool is a list of idle redis-py connections made by a redis-py pool (for Sentinel, its
``SentinelConnectionPool``, whose connections ask the sentinels for the master each time they connect). It is
kept here rather than taken from redis-py's pool, whose bookkeeping costs each call ~5 us: a command is never
resent after it may have run, and a connection the server closed is noticed before use and reopened.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool
from redis.retry import Retry

from offload.errors import StoreURLError

COMMON_OPTIONS = ("prefix", "timeout", "connect_timeout", "min_replicas")
SSL_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_password",
               "ssl_check_hostname", "ssl_ciphers")
SCHEMES = ("redis", "rediss", "unix", "redis+unix", "redis+sentinel", "rediss+sentinel")

#: Failures that mean the store cannot serve now (StoreUnavailable): no connection, a timeout, a server loading
#: its data, refusing our credentials or at its client limit, a replica (READONLY), a master without its
#: replicas (MASTERDOWN), no master known to the sentinels.
DOWN: tuple[type[BaseException], ...] = (rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError,
                                         rx.MasterDownError, OSError)

#: The first word of an error reply, which redis-py's parser strips from the message of these classes.
_CODES: dict[type[BaseException], str] = {
    rx.ReadOnlyError: "READONLY", rx.NoScriptError: "NOSCRIPT", rx.OutOfMemoryError: "OOM",
    rx.BusyLoadingError: "LOADING", rx.NoPermissionError: "NOPERM", rx.ExecAbortError: "EXECABORT",
    rx.MasterDownError: "MASTERDOWN", rx.AskError: "ASK", rx.TryAgainError: "TRYAGAIN", rx.MovedError: "MOVED",
    rx.ClusterDownError: "CLUSTERDOWN", rx.ClusterCrossSlotError: "CROSSSLOT",
}


def error_text(exc: BaseException) -> str:
    """An error as one line that says what happened: an error reply with its code (``MOVED 7365 host:port``,
    ``READONLY You can't write against a read only replica.``), which redis-py's message leaves out."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    code = next((_CODES[cls] for cls in type(exc).__mro__ if cls in _CODES), None)  # MOVED is an ASK subclass
    if code is not None and not text.startswith(code):
        text = f"{code} {text}"
    return text


@dataclass
class Target:
    """Where the store connects, read from its URL: ``kind`` is ``tcp``, ``unix`` or ``sentinel``."""

    kind: str
    options: dict[str, str]
    connection: dict[str, Any] = field(default_factory=dict)
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""

    @property
    def password(self) -> str | None:
        password: str | None = self.connection.get("password")
        return password


def parse_url(url: str, safe_url: str) -> Target:
    """The target of a Redis store URL; StoreURLError, naming what is wrong, for a URL it cannot use."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise StoreURLError(f"unknown Redis URL scheme {scheme!r} in {safe_url!r}; known: {', '.join(SCHEMES)}")
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    tls = scheme.startswith("rediss")
    known = COMMON_OPTIONS + (("db",) if "unix" in scheme else ()) + (
        ("sentinel_password",) if "sentinel" in scheme else ()) + (SSL_OPTIONS if tls else ())
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise StoreURLError(
            f"unknown Redis URL option(s) {', '.join(unknown)} in {safe_url!r}; known: {', '.join(known)}"
        )
    netloc = parts.netloc
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    try:
        connection: dict[str, Any] = {
            "username": unquote(username) or None,
            "password": unquote(password) or None,
            "socket_timeout": float(options.get("timeout", "30")),
            "socket_connect_timeout": float(options.get("connect_timeout", "5")),
        }
        int(options.get("min_replicas", "0"))
    except ValueError:
        raise StoreURLError(
            f"invalid Redis URL {safe_url!r}: timeout and connect_timeout must be numbers, min_replicas a whole "
            "number"
        ) from None
    if tls:
        connection.update(_tls_options(options, safe_url))
    if "unix" in scheme:
        return _unix_target(parts.path, options, connection, safe_url)
    if "sentinel" in scheme:
        return _sentinel_target(hosts, parts.path, options, connection, safe_url)
    try:
        connection.update(host=parts.hostname or "localhost", port=parts.port or 6379,
                          db=int(parts.path.strip("/") or "0"))
    except ValueError:
        raise StoreURLError(
            f"invalid Redis URL {safe_url!r}: use redis://[:password@]host:port/db with a numeric port and db"
        ) from None
    connection["connection_class"] = "ssl" if tls else "tcp"
    return Target("tcp", options, connection)


def _unix_target(path: str, options: dict[str, str], connection: dict[str, Any], safe_url: str) -> Target:
    if not path or path == "/":
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: name the socket, as in unix:///run/redis.sock?db=0")
    try:
        connection.update(path=unquote(path), db=int(options.get("db", "0")))
    except ValueError:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: db must be a number") from None
    connection["connection_class"] = "unix"
    return Target("unix", options, connection)


def _sentinel_target(hosts: str, path: str, options: dict[str, str], connection: dict[str, Any],
                     safe_url: str) -> Target:
    form = "redis+sentinel://[:password@]host:26379,host:26379/<service>/<db>"
    sentinels: list[tuple[str, int]] = []
    service, _, db = path.strip("/").partition("/")
    try:
        for host in filter(None, hosts.split(",")):
            name, _, port = host.rpartition(":") if host.rpartition(":")[2].isdigit() else (host, "", "26379")
            sentinels.append((name.strip("[]") or "localhost", int(port)))
        connection["db"] = int(db or "0")
    except ValueError:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: use {form}") from None
    if not sentinels or not service:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: name the sentinels and the service, as in {form}")
    return Target("sentinel", options, connection, sentinels, unquote(service))


def _tls_options(options: dict[str, str], safe_url: str) -> dict[str, Any]:
    """redis-py's TLS keyword arguments from the ``ssl_*`` options, checked now (a bad one is refused before
    anything connects)."""
    cert_reqs = (options.get("ssl_cert_reqs") or "required").lower()
    tls: dict[str, Any] = {"ssl_cert_reqs": cert_reqs}
    for name in ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_ciphers"):
        if options.get(name):
            tls[name] = options[name]
    check = options.get("ssl_check_hostname", "").lower()
    if check not in ("", "true", "false", "1", "0", "yes", "no"):
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: ssl_check_hostname must be true or false")
    tls["ssl_check_hostname"] = check in ("true", "1", "yes") if check else cert_reqs != "none"
    try:
        _check_tls(tls)
    except ValueError as exc:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: {exc}") from None
    except OSError as exc:  # ssl.SSLError too
        raise StoreURLError(
            f"invalid Redis URL {safe_url!r}: cannot load its TLS certificates or key: {error_text(exc)}"
        ) from None
    return tls


def _check_tls(tls: dict[str, Any]) -> None:
    """Build the TLS context the options describe, as redis-py will: ValueError or OSError if it cannot be."""
    import ssl

    if tls["ssl_cert_reqs"] not in ("none", "optional", "required"):
        raise ValueError(f"ssl_cert_reqs must be none, optional or required, not {tls['ssl_cert_reqs']!r}")
    if tls.get("ssl_keyfile") and not tls.get("ssl_certfile"):
        raise ValueError("ssl_keyfile needs ssl_certfile")
    if tls["ssl_check_hostname"] and tls["ssl_cert_reqs"] == "none":
        raise ValueError("ssl_check_hostname needs ssl_cert_reqs optional or required")
    context = ssl.create_default_context()
    if tls.get("ssl_certfile"):
        context.load_cert_chain(tls["ssl_certfile"], tls.get("ssl_keyfile"), tls.get("ssl_password"))
    if tls.get("ssl_ca_certs") or tls.get("ssl_ca_path"):
        context.load_verify_locations(cafile=tls.get("ssl_ca_certs"), capath=tls.get("ssl_ca_path"))
    if tls.get("ssl_ciphers"):
        context.set_ciphers(tls["ssl_ciphers"])


def _factory(target: Target) -> ConnectionPool:
    """The redis-py pool whose ``make_connection`` makes our connections (it is never asked for one)."""
    from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

    kwargs = dict(target.connection)
    kind = kwargs.pop("connection_class", None)
    kwargs.update(
        decode_responses=True,
        # Bytes that are not UTF-8 (a foreign or corrupted record) must not break a reply: they come back as
        # surrogates, which the store's packer turns back into the same bytes.
        encoding_errors="surrogateescape",
        retry=Retry(NoBackoff(), 0),  # never resend: a command may have run before its reply was lost
        protocol=2,
        socket_keepalive=kind != "unix",
    )
    if kind == "unix":
        kwargs.pop("socket_keepalive")
    if target.kind == "sentinel":
        from redis.sentinel import Sentinel, SentinelConnectionPool

        sentinel_kwargs = {"socket_timeout": kwargs["socket_connect_timeout"],
                           "socket_connect_timeout": kwargs["socket_connect_timeout"],
                           "password": target.options.get("sentinel_password") or None,
                           "retry": Retry(NoBackoff(), 0)}
        manager = Sentinel(target.sentinels, sentinel_kwargs=sentinel_kwargs)
        ssl = any(name.startswith("ssl_") for name in kwargs)
        pool: ConnectionPool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            target.service, manager, is_master=True, check_connection=False, ssl=ssl, **kwargs)
        return pool
    classes = {"tcp": Connection, "ssl": SSLConnection, "unix": UnixDomainSocketConnection}
    return ConnectionPool(connection_class=classes[kind or "tcp"], **kwargs)


class Link:
    """Connections to one Redis target, taken for one exchange and given back (a blocking BLPOP holds one
    meanwhile); reset in a forked child, which never uses its parent's sockets."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._factory: ConnectionPool | None = None
        self._idle: list[Any] = []
        self._every: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.generation = 0

    def where(self) -> str:
        """Where the connections go, for error messages."""
        target = self.target
        if target.kind == "sentinel":
            master = getattr(self._factory, "master_address", None)
            named = f"the master {master[0]}:{master[1]} " if master else "the master "
            sentinels = ",".join(f"{h}:{p}" for h, p in target.sentinels)
            return f"{named}named by sentinels {sentinels} for service {target.service!r}"
        if target.kind == "unix":
            return f"unix socket {target.connection['path']}"
        return f"{target.connection['host']}:{target.connection['port']}"

    def _take(self) -> tuple[Any, int]:
        with self._lock:
            if self._pid != os.getpid():
                self._idle, self._every, self._pid, self._factory = [], weakref.WeakSet(), os.getpid(), None
            generation = self.generation
            if self._idle:
                return self._idle.pop(), generation
            if self._factory is None:
                self._factory = _factory(self.target)
            conn = self._factory.make_connection()
            self._every.add(conn)
        return conn, generation

    def _give(self, conn: Any, generation: int) -> None:
        with self._lock:
            if generation == self.generation and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.disconnect()

    @staticmethod
    def stale(conn: Any) -> bool:
        """Whether a connection's socket is readable before we asked anything: the server closed it (restart,
        idle timeout, failover) or sent something unasked for."""
        if conn._sock is None:
            return False
        try:
            return bool(conn.can_read(0))
        except (OSError, rx.ConnectionError):
            return True

    def _drop_if_stale(self, conn: Any) -> None:
        """Disconnect a pooled connection the server has closed so the call reconnects instead of failing."""
        if self.stale(conn):
            conn.disconnect()

    def exchange(self, packed: bytes, count: int, read_timeout: float | None = None) -> list[Any]:
        """Send ``count`` packed commands in one round trip and read their replies; an error reply is returned
        as a value (the rest are still read), except those of ``DOWN``, which are raised with the rest of
        redis-py's failures (the connection is then closed)."""
        conn, generation = self._take()
        replies: list[Any] = []
        try:
            self._drop_if_stale(conn)
            if conn._sock is None:
                # connect() itself: send_packed_command would connect without asking the sentinels.
                conn.connect()
            conn.send_packed_command([packed], check_health=False)
            for _ in range(count):
                try:
                    if read_timeout is None:
                        replies.append(conn.read_response())
                    else:
                        replies.append(conn.read_response(timeout=read_timeout))
                except rx.ResponseError as exc:
                    if isinstance(exc, DOWN):
                        raise
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self._give(conn, generation)
        return replies

    def close(self) -> None:
        with self._lock:
            mine = self._pid == os.getpid()
            idle = self._idle if mine else []
            busy = [conn for conn in self._every if conn not in idle] if mine else []
            self._idle, self._every = [], weakref.WeakSet()
            self.generation += 1
        for conn in idle:
            conn.disconnect()
        # A connection in use (a BLPOP in another thread) is shut down: its reader sees the end of the stream
        # and fails cleanly, and the connection is dropped when given back.
        for conn in busy:
            sock = conn._sock
            if sock is not None:
                try:
                    import socket

                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
