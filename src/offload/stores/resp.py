"""A minimal Redis connection for the Redis store: RESP2 over TCP, or TLS with the standard ``ssl`` module.

It sends what the caller packed and reads the replies: simple strings and bulk strings as text (UTF-8, with bytes
that are not UTF-8 kept as surrogates, so a packed command gives them back unchanged), integers as int, null as
None, arrays as lists, and error replies as ``ResponseError`` values, never raised, so every reply of a pipeline is
read and the connection stays in step. A full Redis client (redis-py) costs a worker ~0.1 s to import and more CPU
per call than the round trip itself; this is the part of it offload needs.

Errors::

    RedisConnectionError      cannot connect, the session's setup (AUTH, SELECT) was refused with an error that
    |                         means the server is unavailable, or the connection failed mid-exchange (closed
    |                         by the server, reset): the connection is closed; what was sent may have run
    +-- RedisTimeoutError     connecting, writing or reading took longer than the timeout
    ResponseError             an error reply (``code``: its first word); returned as a value, raised only when it
    |                         refuses the session's setup otherwise (SELECT of a database the server lacks)
    +-- NoScriptError         NOSCRIPT: the script called is not in the server's cache (nothing ran)
    +-- UnavailableError      the server cannot serve commands now (nothing ran): LOADING, READONLY (a replica),
                              credentials refused (WRONGPASS, NOAUTH), too many clients
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

#: Bytes asked of one recv(); a bulk string longer than this is read into a buffer of its size.
CHUNK = 65536


class RedisConnectionError(Exception):
    """The connection to the Redis server could not be made or failed; it is closed."""


class RedisTimeoutError(RedisConnectionError):
    """The Redis server did not answer within the timeout; the connection is closed."""


class ResponseError(Exception):
    """An error reply from the Redis server; ``code`` is its first word (``ERR``, ``WRONGTYPE``...)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class NoScriptError(ResponseError):
    """NOSCRIPT: the script called is not in the server's script cache; nothing ran."""


class UnavailableError(ResponseError):
    """The server cannot serve commands now (loading its data, a read-only replica, credentials refused, too many
    clients); nothing ran."""


#: The codes whose word is left out of the message (as redis-py does, so messages read as they did with it).
_STRIPPED = frozenset({"ERR", "OOM", "WRONGPASS", "EXECABORT", "LOADING", "NOSCRIPT", "READONLY", "NOAUTH", "NOPERM",
                       "ASK", "TRYAGAIN", "MOVED", "CLUSTERDOWN", "CROSSSLOT", "MASTERDOWN"})
_CLASSES: dict[str, type[ResponseError]] = {
    "NOSCRIPT": NoScriptError, "LOADING": UnavailableError, "READONLY": UnavailableError,
    "WRONGPASS": UnavailableError, "NOAUTH": UnavailableError,
}
#: ``ERR`` messages that mean the server will not serve this connection.
_ERR_UNAVAILABLE = frozenset({
    "max number of clients reached",
    "invalid password",
    "AUTH <password> called without any password configured for the default user. Are you sure your configuration "
    "is correct?",
    "Client sent AUTH, but no password is set",
})


def error_reply(line: bytes | bytearray) -> ResponseError:
    """The exception for an error reply's line (without its ``-`` and CRLF)."""
    text = line.decode("utf-8", "replace")
    code, _, rest = text.partition(" ")
    if code not in _STRIPPED:
        return ResponseError(text, code)
    if code == "ERR":
        return (UnavailableError if rest in _ERR_UNAVAILABLE else ResponseError)(rest, code)
    return _CLASSES.get(code, ResponseError)(rest, code)


def encode(args: Sequence[str]) -> bytes:
    """One command in RESP (the store packs its own, faster; this is for the session's setup)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8", "surrogateescape")
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


def tls_context(cert_reqs: str = "required", ca_certs: str | None = None, certfile: str | None = None,
                keyfile: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the system's CAs plus ``ca_certs``, ``cert_reqs`` none, optional or required (the
    host name is checked unless none), a client certificate from ``certfile`` (and ``keyfile``). ValueError for a
    bad option, OSError for a file that cannot be read."""
    import ssl

    modes = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    mode = modes.get(cert_reqs.lower())
    if mode is None:
        raise ValueError(f"ssl_cert_reqs must be none, optional or required, not {cert_reqs!r}")
    if keyfile and not certfile:
        raise ValueError("ssl_keyfile needs ssl_certfile")
    context = ssl.create_default_context()
    context.check_hostname = mode != ssl.CERT_NONE
    context.verify_mode = mode
    if certfile:
        context.load_cert_chain(certfile, keyfile or None)
    if ca_certs:
        context.load_verify_locations(cafile=ca_certs)
    return context


class Endpoint:
    """Where a connection goes and how each session starts: address, timeouts (seconds), TLS, and the commands
    sent first (AUTH, SELECT; the password lives only in them)."""

    __slots__ = ("connect_timeout", "host", "port", "setup", "setup_count", "timeout", "tls")

    def __init__(self, host: str, port: int, *, timeout: float, connect_timeout: float, username: str | None = None,
                 password: str | None = None, db: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.timeout, self.connect_timeout, self.tls = host, port, timeout, connect_timeout, tls
        commands: list[list[str]] = []
        if username or password:
            commands.append(["AUTH", username, password or ""] if username else ["AUTH", password or ""])
        if db:
            commands.append(["SELECT", str(db)])
        # One round trip: if AUTH is refused, SELECT's NOAUTH is never looked at.
        self.setup = b"".join(encode(c) for c in commands)
        self.setup_count = len(commands)

    def __repr__(self) -> str:
        return f"Endpoint({self.host!r}, {self.port})"


_MORE: Any = object()  # a reply is not all in the buffer yet


class Connection:
    """One connection to ``endpoint``, opened by the first exchange (and again by the next one after
    ``disconnect()``); used by one thread at a time, but ``interrupt()`` may come from another.

    A plain TCP socket is kept non-blocking and waited on with our own poll(): a send is then one syscall, where
    a socket with a timeout polls before every send as well as every receive. A TLS socket keeps a timeout."""

    __slots__ = ("__weakref__", "_buf", "_need", "_pid", "_polled", "_poller", "_pos", "_sock", "_stack", "_timeout",
                 "endpoint")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._sock: socket.socket | None = None
        self._pid = os.getpid()
        self._reset()

    def _reset(self) -> None:
        self._buf: bytes | bytearray = b""  # what was received and not parsed yet, from _pos
        self._pos = 0
        self._need = 0  # bytes (from _pos) the reply being parsed needs, when a bulk string's length says
        self._stack: list[list[Any]] = []  # the arrays being filled: [items, items still to come]
        self._poller: Any = None  # select.poll() with the socket registered for reading
        self._polled = False  # non-blocking, waited on with _poller
        self._timeout = -1.0  # the socket's timeout, when not _polled

    def __repr__(self) -> str:
        return f"<Connection to {self.endpoint.host}:{self.endpoint.port}{'' if self._sock else ' (closed)'}>"

    def __del__(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- lifecycle ---------------------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        ep = self.endpoint
        try:
            sock = _open_socket(ep)
        except TimeoutError as exc:
            raise RedisTimeoutError(f"Timeout connecting to {ep.host}:{ep.port}") from exc
        except OSError as exc:
            raise RedisConnectionError(_connect_error(ep, exc)) from exc
        self._reset()
        self._sock, self._pid, self._timeout = sock, os.getpid(), ep.timeout
        if _HAS_POLL:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
            if ep.tls is None:
                sock.setblocking(False)
                self._polled = True
        if ep.setup_count:
            for reply in self.exchange(ep.setup, ep.setup_count):
                if isinstance(reply, ResponseError):
                    self.disconnect()
                    if isinstance(reply, UnavailableError):
                        raise RedisConnectionError(str(reply))
                    raise reply
        return sock

    def disconnect(self) -> None:
        """Close the connection (the next exchange opens a new one)."""
        sock, self._sock = self._sock, None
        self._reset()
        if sock is None:
            return
        if self._pid == os.getpid():  # a forked child must not end its parent's session
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            sock.close()
        except OSError:
            pass

    def interrupt(self) -> None:
        """From another thread: end an exchange blocked reading (a BLPOP), which fails as if the server had closed
        the connection."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stale(self) -> bool:
        """Whether an idle connection can no longer carry a command: the server closed it (restart, idle timeout)
        or sent something unasked. One poll(); over TLS, a readable socket may hold only a session ticket, so a
        non-blocking read tells."""
        sock = self._sock
        if sock is None:
            return False
        if self._pos < len(self._buf) or self._stack:
            return True
        try:
            if self._poller is not None:
                readable = bool(self._poller.poll(0))
            else:
                readable = bool(select.select([sock], [], [], 0)[0])
            if self.endpoint.tls is None:
                return readable
            return self._tls_stale(sock, readable)
        except (OSError, ValueError):
            return True

    def _tls_stale(self, sock: Any, readable: bool) -> bool:
        """``stale()`` over TLS: data already decrypted, or a socket whose records hold data or the end."""
        import ssl

        if sock.pending():
            return True
        if not readable:
            return False
        sock.settimeout(0.0)
        try:
            sock.recv(1)  # the end (b""), or data nobody asked for
            return True
        except ssl.SSLWantReadError:  # records without data: a session ticket
            return False
        finally:
            sock.settimeout(self._timeout)

    # -- exchange ----------------------------------------------------------------------------------------
    def exchange(self, data: bytes, count: int, timeout: float | None = None) -> list[Any]:
        """Send ``data`` (``count`` packed commands) and read their replies, waiting at most ``timeout`` seconds
        (default: the endpoint's) for each piece. Error replies come back as ResponseError values.
        RedisConnectionError if the connection fails: it is closed, and the commands may or may not have run."""
        sock = self._sock if self._sock is not None else self._connect()
        if timeout is None:
            timeout = self.endpoint.timeout
        try:
            self._send(sock, data, timeout)
            replies: list[Any] = []
            while True:
                if self._pos == len(self._buf):  # nothing to parse yet
                    self._need = 0
                    self._recv(sock, timeout)
                reply = self._parse()
                if reply is _MORE:
                    self._recv(sock, timeout)
                    continue
                replies.append(reply)
                if len(replies) == count:
                    return replies
        except TimeoutError as exc:
            self.disconnect()
            raise RedisTimeoutError(f"Timeout talking to {self.endpoint.host}:{self.endpoint.port} (nothing for "
                                    f"{timeout:g} s)") from exc
        except OSError as exc:
            self.disconnect()
            raise RedisConnectionError(f"Error while talking to {self.endpoint.host}:{self.endpoint.port}: "
                                       f"{_os_error(exc)}") from exc
        except ValueError as exc:  # a length or integer that is not a number
            self.disconnect()
            raise RedisConnectionError(f"Protocol error: {exc}") from exc

    def _send(self, sock: socket.socket, data: bytes, timeout: float) -> None:
        if self._polled:
            try:
                sent = sock.send(data)  # almost always all of it: the socket's buffer is empty
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            sock.settimeout(timeout)  # a long pipeline: the rest as the server reads it
            try:
                sock.sendall(memoryview(data)[sent:])
            finally:
                sock.setblocking(False)
            return
        if timeout != self._timeout:  # a syscall: only when it changes
            sock.settimeout(timeout)
            self._timeout = timeout
        sock.sendall(data)

    def _recv(self, sock: socket.socket, timeout: float) -> None:
        """Add to the buffer what the server has sent: some bytes, or all of a long bulk string. A connection the
        server closed raises RedisConnectionError. A polled socket is waited on here; a TLS socket waits by itself,
        with its timeout."""
        polled, wait = self._polled, timeout * 1000.0 if timeout < 1e6 else None
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if self._need - have > CHUNK:
            whole = bytearray(self._need)
            whole[:have] = buf[pos:]
            view = memoryview(whole)
            while have < len(whole):
                if polled and not self._poller.poll(wait):
                    raise TimeoutError
                try:
                    got = sock.recv_into(view[have:])
                except BlockingIOError:  # woken for nothing
                    continue
                if not got:
                    break
                have += got
            else:
                self._buf, self._pos = whole, 0
                return
            chunk = b""
        else:
            if polled and not self._poller.poll(wait):
                raise TimeoutError
            try:
                chunk = sock.recv(CHUNK)
            except BlockingIOError:  # woken for nothing
                return
        if not chunk:
            self.disconnect()
            raise RedisConnectionError("Connection closed by server.")
        self._buf = buf[pos:] + chunk if have else chunk
        self._pos = 0

    def _parse(self) -> Any:
        """The next reply from the buffer, or _MORE; the arrays begun stay on ``_stack`` for the next call."""
        buf, pos, stack = self._buf, self._pos, self._stack
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                self._pos, self._need = pos, 0
                return _MORE
            kind = buf[pos]
            value: Any
            if kind == 36:  # $ bulk string
                size = int(buf[pos + 1:eol])
                if size < 0:
                    value = None
                    pos = eol + 2
                else:
                    end = eol + 2 + size
                    if end + 2 > len(buf):
                        self._pos, self._need = pos, end + 2 - pos
                        return _MORE
                    if size > CHUNK:  # no copy of a long one before decoding it
                        value = str(memoryview(buf)[eol + 2:end], "utf-8", "surrogateescape")
                    else:
                        value = buf[eol + 2:end].decode("utf-8", "surrogateescape")
                    pos = end + 2
            elif kind == 42:  # * array
                size = int(buf[pos + 1:eol])
                pos = eol + 2
                if size > 0:
                    stack.append([[], size])
                    continue
                value = None if size < 0 else []
            elif kind == 43:  # + simple string
                value = buf[pos + 1:eol].decode("utf-8", "surrogateescape")
                pos = eol + 2
            elif kind == 58:  # : integer
                value = int(buf[pos + 1:eol])
                pos = eol + 2
            elif kind == 45:  # - error
                value = error_reply(buf[pos + 1:eol])
                pos = eol + 2
            else:
                self.disconnect()
                raise RedisConnectionError(f"Protocol error: unexpected reply {bytes(buf[pos:pos + 40])!r}")
            while stack:
                top = stack[-1]
                top[0].append(value)
                top[1] -= 1
                if top[1]:
                    break
                value = stack.pop()[0]
            else:
                self._pos = pos
                return value


_HAS_POLL = hasattr(select, "poll")


def _open_socket(ep: Endpoint) -> socket.socket:
    """A connected socket (TLS: with its handshake done), trying each address of the host in turn."""
    error: OSError = OSError("getaddrinfo returned no address")
    # An ASCII host goes as bytes: as text, getaddrinfo encodes it with the IDNA codec, whose first use costs a
    # few milliseconds of imports on every process's first connection.
    host: str | bytes = ep.host.encode("ascii") if ep.host.isascii() else ep.host
    for family, kind, proto, _, address in socket.getaddrinfo(host, ep.port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(ep.connect_timeout)
            sock.connect(address)
            if ep.tls is not None:
                sock = ep.tls.wrap_socket(sock, server_hostname=ep.host)
            sock.settimeout(ep.timeout)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error


def _os_error(exc: OSError) -> str:
    return f"{exc.strerror} (error {exc.errno})" if exc.strerror else str(exc) or type(exc).__name__


def _connect_error(ep: Endpoint, exc: OSError) -> str:
    """As redis-py words it: ``Error 111 connecting to host:6379. Connection refused.``"""
    if exc.errno is not None and exc.strerror:
        return f"Error {exc.errno} connecting to {ep.host}:{ep.port}. {exc.strerror}."
    return f"Error connecting to {ep.host}:{ep.port}. {exc or type(exc).__name__}."
