"""The Redis store's connections, made by redis-py (with the hiredis reply parser when it is installed): the URL
forms, a small pool, exchanges of one round trip whose error replies are values, and what a failure means.

URL forms (what redis-py and Celery read, plus Sentinel's host list)::

    redis://[[user]:password@]host[:port][/db]             TCP
    rediss://[[user]:password@]host[:port][/db]            TLS (the ``ssl_*`` options below)
    unix:///path/redis.sock[?db=0]                         a unix socket (also ``redis+unix://``)
    redis+sentinel://[[user]:password@]host:26379,host:26380/<service>[/<db>]
                                                           the master Sentinel names (``rediss+sentinel://``: TLS)
    redis+cluster://[[user]:password@]host:port[,host:port...]
                                                           a Redis Cluster (``ClusterLink``; ``rediss+cluster://``)

Query options: ``prefix`` (read by the store), ``timeout`` and ``connect_timeout`` (seconds), ``db`` (for
socket URLs, which have no path of their own for it), ``min_replicas`` (a write is acknowledged once that many
replicas have it: ``WAIT``, read by the store), ``sentinel_password`` (when the sentinels ask for one of their
own) and, with TLS, redis-py's ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_ca_path``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_password``, ``ssl_check_hostname`` and ``ssl_ciphers``. Any other option is refused by name.

The pool is a list of idle redis-py connections made by a redis-py pool (for Sentinel, its
``SentinelConnectionPool``, whose connections ask the sentinels for the master each time they connect). It is
kept here rather than taken from redis-py's pool, whose bookkeeping costs each call ~5 us: a command is never
resent after it may have run, and a connection the server closed is noticed before use and reopened. Commands are
written to the connection's socket and replies read from its (hiredis) parser directly, for the same reason.
"""

from __future__ import annotations

import os
import select
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
_POLL = hasattr(select, "poll")
SCHEMES = ("redis", "rediss", "unix", "redis+unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
           "rediss+cluster")

#: Failures that mean the store cannot serve now (StoreUnavailable): no connection, a timeout, a server loading
#: its data, refusing our credentials or at its client limit, a replica (READONLY), a master without its
#: replicas (MASTERDOWN), no master known to the sentinels, a cluster without a node serving the slot.
DOWN: tuple[type[BaseException], ...] = (rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError,
                                         rx.MasterDownError, rx.ClusterDownError, rx.TryAgainError,
                                         rx.RedisClusterException, OSError)

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
    hosts: list[tuple[str, int]] = field(default_factory=list)  # the sentinels, or the cluster's nodes
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
    if "cluster" in scheme:
        return _cluster_target(hosts, parts.path, options, connection, safe_url)
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
    service, _, db = path.strip("/").partition("/")
    try:
        sentinels = _hosts(hosts, 26379)
        connection["db"] = int(db or "0")
    except ValueError:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: use {form}") from None
    if not sentinels or not service:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: name the sentinels and the service, as in {form}")
    return Target("sentinel", options, connection, sentinels, unquote(service))


def _hosts(hosts: str, default_port: int) -> list[tuple[str, int]]:
    """``host:port,host:port`` (``[v6]:port`` too) as pairs; ValueError for a port that is not a number."""
    out = []
    for host in filter(None, hosts.split(",")):
        name, port = host, ""
        if host.startswith("["):
            name, _, port = host[1:].partition("]")
            port = port.lstrip(":")
        elif ":" in host:
            name, port = host.rsplit(":", 1)
        out.append((name or "localhost", int(port) if port else default_port))
    return out


def _cluster_target(hosts: str, path: str, options: dict[str, str], connection: dict[str, Any],
                    safe_url: str) -> Target:
    form = "redis+cluster://[:password@]host:port[,host:port...]"
    try:
        nodes = _hosts(hosts, 6379)
    except ValueError:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: use {form} with numeric ports") from None
    if not nodes:
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: name at least one node, as in {form}")
    if path.strip("/") not in ("", "0"):
        raise StoreURLError(f"invalid Redis URL {safe_url!r}: a Redis Cluster has only database 0")
    return Target("cluster", options, connection, nodes)


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


def _connection_kwargs(target: Target) -> dict[str, Any]:
    kwargs = dict(target.connection)
    kwargs.pop("connection_class", None)
    kwargs.update(
        decode_responses=True,
        # Bytes that are not UTF-8 (a foreign or corrupted record) must not break a reply: they come back as
        # surrogates, which the store's packer turns back into the same bytes.
        encoding_errors="surrogateescape",
        retry=Retry(NoBackoff(), 0),  # never resend: a command may have run before its reply was lost
        protocol=2,
    )
    if target.kind != "unix":
        kwargs["socket_keepalive"] = True
    return kwargs


def _factory(target: Target) -> ConnectionPool:
    """The redis-py pool whose ``make_connection`` makes our connections (it is never asked for one)."""
    from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

    kwargs = _connection_kwargs(target)
    if target.kind == "sentinel":
        from redis.sentinel import Sentinel, SentinelConnectionPool

        sentinel_kwargs = {"socket_timeout": kwargs["socket_connect_timeout"],
                           "socket_connect_timeout": kwargs["socket_connect_timeout"],
                           "password": target.options.get("sentinel_password") or None,
                           "retry": Retry(NoBackoff(), 0)}
        ssl = any(name.startswith("ssl_") for name in kwargs)
        if ssl:  # rediss+sentinel://: the sentinels are asked over TLS too, with the same options
            sentinel_kwargs.update(ssl=True, **{k: v for k, v in kwargs.items() if k.startswith("ssl_")})
        manager = Sentinel(target.hosts, sentinel_kwargs=sentinel_kwargs)
        pool: ConnectionPool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            target.service, manager, is_master=True, check_connection=False, ssl=ssl, **kwargs)
        return pool
    classes = {"tcp": Connection, "ssl": SSLConnection, "unix": UnixDomainSocketConnection}
    return ConnectionPool(connection_class=classes[target.connection.get("connection_class", "tcp")], **kwargs)


class Link:
    """Connections to one Redis target, taken for one exchange and given back (a blocking BLPOP holds one
    meanwhile); reset in a forked child, which never uses its parent's sockets."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._factory: ConnectionPool | None = None
        self._idle: dict[str, list[Any]] = {}
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
            sentinels = ",".join(f"{h}:{p}" for h, p in target.hosts)
            return f"{named}named by sentinels {sentinels} for service {target.service!r}"
        if target.kind == "unix":
            return f"unix socket {target.connection['path']}"
        return f"{target.connection['host']}:{target.connection['port']}"

    def _forked(self) -> None:
        """In a forked child: forget the parent's connections (never used here)."""
        self._idle, self._every, self._pid, self._factory = {}, weakref.WeakSet(), os.getpid(), None

    def _pool(self) -> tuple[str, ConnectionPool]:
        """The name and the redis-py pool of where this exchange goes (called holding the lock)."""
        if self._factory is None:
            self._factory = _factory(self.target)
        return "", self._factory

    def _take(self) -> tuple[Any, str, int]:
        with self._lock:
            if self._pid != os.getpid():
                self._forked()
            generation = self.generation
            name, pool = self._pool()
            idle = self._idle.setdefault(name, [])
            if idle:
                return idle.pop(), name, generation
            conn = pool.make_connection()
            self._every.add(conn)
        return conn, name, generation

    def _give(self, conn: Any, name: str, generation: int) -> None:
        with self._lock:
            if generation == self.generation and self._pid == os.getpid():
                self._idle.setdefault(name, []).append(conn)
                return
        conn.disconnect()

    @staticmethod
    def stale(conn: Any) -> bool:
        """Whether a connection's socket is readable before we asked anything: the server closed it (restart,
        idle timeout, failover) or sent something unasked for. One poll() for a plain socket; a TLS one is asked
        through redis-py, which tells a pending session ticket from a closed connection."""
        sock = conn._sock
        if sock is None:
            return False
        try:
            if _POLL and not hasattr(sock, "pending"):  # not an ssl.SSLSocket
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return bool(poller.poll(0))
            return bool(conn.can_read(0))
        except (OSError, ValueError, rx.ConnectionError):
            return True

    def exchange(self, packed: bytes, count: int, read_timeout: float | None = None) -> list[Any]:
        """Send ``count`` packed commands in one round trip and read their replies; an error reply is returned
        as a value (the rest are still read), except those of ``DOWN``, which are raised with the rest of
        redis-py's failures (the connection is then closed).

        The bytes go to the connection's socket and the replies come from its parser directly: redis-py's
        ``send_packed_command``/``read_response`` add ~3 us of bookkeeping per call (and connect without asking
        the sentinels); connecting, TLS, AUTH/SELECT and parsing stay redis-py's."""
        conn, name, generation = self._take()
        replies: list[Any] = []
        try:
            if conn._sock is not None and self.stale(conn):
                conn.disconnect()
            if conn._sock is None:
                conn.connect()
            conn._sock.sendall(packed)
            read = conn._parser.read_response
            for _ in range(count):
                reply = read() if read_timeout is None else read(timeout=read_timeout)
                if isinstance(reply, rx.ResponseError) and (
                        isinstance(reply, DOWN) or str(reply).startswith("UNBLOCKED")):
                    # UNBLOCKED: a master turning into a replica ends its clients' BLPOPs with it.
                    raise reply
                replies.append(reply)
        except BaseException as exc:
            conn.disconnect()
            if isinstance(exc, DOWN):
                # The server went away or changed role (a failover): the idle connections to it would each fail
                # once more; the next call connects afresh (for Sentinel, asking the sentinels again).
                self._drop_idle(name)
            raise
        finally:
            self._give(conn, name, generation)
        return replies

    def _drop_idle(self, name: str) -> None:
        with self._lock:
            idle = self._idle.pop(name, []) if self._pid == os.getpid() else []
        for conn in idle:
            conn.disconnect()

    def close(self) -> None:
        with self._lock:
            mine = self._pid == os.getpid()
            idle = [conn for conns in self._idle.values() for conn in conns] if mine else []
            busy = [conn for conn in self._every if conn not in idle] if mine else []
            self._idle, self._every = {}, weakref.WeakSet()
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


class ClusterLink(Link):
    """Connections to the Redis Cluster node that serves the slot of ``route_key`` (every key of a call shares
    its hash tag), found from redis-py's map of the slots. A MOVED or ASK reply means the command did not run:
    the map is read again and the exchange sent to the node now named, up to three times; a connection error
    has the map read again before the next call."""

    def __init__(self, target: Target, route_key: str) -> None:
        super().__init__(target)
        self.route_key = route_key
        self._cluster: Any = None
        self._node = ""
        self._refresh = False

    def _forked(self) -> None:
        super()._forked()
        self._cluster = None

    def _pool(self) -> tuple[str, ConnectionPool]:
        if self._cluster is None:
            from redis.cluster import ClusterNode, RedisCluster

            kwargs = _connection_kwargs(self.target)
            kwargs["ssl"] = any(name.startswith("ssl_") for name in kwargs)
            nodes = [ClusterNode(h, p) for h, p in self.target.hosts]  # type: ignore[no-untyped-call]
            self._cluster = RedisCluster(startup_nodes=nodes, **kwargs)
        elif self._refresh:
            self._cluster.nodes_manager.initialize()
        self._refresh = False
        node = self._cluster.get_node_from_key(self.route_key)
        self._node = str(node.name)
        pool: ConnectionPool = node.redis_connection.connection_pool
        return self._node, pool

    def where(self) -> str:
        nodes = ",".join(f"{h}:{p}" for h, p in self.target.hosts)
        node = f"node {self._node} " if self._node else "the node "
        return f"{node}serving the slot of {self.route_key!r} in the cluster of {nodes}"

    def exchange(self, packed: bytes, count: int, read_timeout: float | None = None) -> list[Any]:
        moved: BaseException | None = None
        for _ in range(3):
            try:
                replies = super().exchange(packed, count, read_timeout)
            except DOWN:
                self._refresh = True
                raise
            moved = next((r for r in replies if isinstance(r, rx.AskError)), None)  # MOVED is an ASK subclass
            if moved is None:
                return replies
            self._refresh = True
        raise rx.ClusterDownError(f"the slot of {self.route_key!r} kept moving: {error_text(moved or Exception())}")

    def close(self) -> None:
        super().close()
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()
