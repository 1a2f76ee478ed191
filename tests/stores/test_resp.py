"""The Redis store's connection (``offload.stores.resp``) without a server: the reply parser on streams cut at
every point, long replies, error replies, and a connection that fails, times out or is closed under a reader."""

from __future__ import annotations

import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from offload.stores.resp import (
    Connection,
    Endpoint,
    NoScriptError,
    RedisConnectionError,
    RedisTimeoutError,
    ResponseError,
    UnavailableError,
    encode,
    error_reply,
    tls_context,
)


class Pieces:
    """A socket whose replies arrive in the given pieces (each recv returns at most one)."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = [p for p in pieces if p]
        self.sent = b""
        self.recvs = 0

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def settimeout(self, timeout: float | None) -> None:
        pass

    def _next(self, size: int) -> bytes:
        self.recvs += 1
        if not self.pieces:
            return b""
        piece = self.pieces[0][:size]
        self.pieces[0] = self.pieces[0][size:]
        if not self.pieces[0]:
            self.pieces.pop(0)
        return piece

    def recv(self, size: int) -> bytes:
        return self._next(size)

    def recv_into(self, view: memoryview) -> int:
        piece = self._next(len(view))
        view[: len(piece)] = piece
        return len(piece)

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


def connection(sock: Any) -> Connection:
    conn = Connection(Endpoint("test", 1, timeout=1.0, connect_timeout=1.0))
    conn._sock = sock
    conn._timeout = 1.0
    return conn


def replies(pieces: Sequence[bytes], count: int) -> list[Any]:
    return connection(Pieces(pieces)).exchange(b"", count)


def same(got: Any, want: Any) -> bool:
    """Equality where error replies compare by class and message."""
    if isinstance(want, BaseException):
        return type(got) is type(want) and str(got) == str(want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    return type(got) is type(want) and bool(got == want)


EVERY_KIND = [
    (b"+OK\r\n", "OK"),
    (b"-ERR wrong number of arguments\r\n", ResponseError("wrong number of arguments")),
    (b":42\r\n", 42),
    (b":-7\r\n", -7),
    (b"$5\r\nhello\r\n", "hello"),
    (b"$0\r\n\r\n", ""),
    (b"$-1\r\n", None),
    (b"$4\r\na\r\nb\r\n", "a\r\nb"),
    (b"$2\r\n\xff\xfe\r\n", "\udcff\udcfe"),
    ("$11\r\nPrévu 🚀\r\n".encode(), "Prévu 🚀"),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n$-1\r\n+x\r\n", [1, None, "x"]),
    (b"*2\r\n*2\r\n:1\r\n*0\r\n*1\r\n*-1\r\n", [[1, []], [None]]),
    (b"*3\r\n+a\r\n-NOSCRIPT No matching script\r\n$1\r\nb\r\n", ["a", NoScriptError("No matching script"), "b"]),
    (b"*1\r\n*1\r\n*1\r\n$3\r\nend\r\n", [[["end"]]]),
]
STREAM = b"".join(data for data, _ in EVERY_KIND)
EXPECTED = [value for _, value in EVERY_KIND]


def test_every_kind_of_reply_is_read() -> None:
    got = replies([STREAM], len(EVERY_KIND))
    assert all(map(same, got, EXPECTED)), got


def test_a_stream_cut_anywhere_reads_the_same() -> None:
    for cut in range(1, len(STREAM)):
        got = replies([STREAM[:cut], STREAM[cut:]], len(EVERY_KIND))
        assert all(map(same, got, EXPECTED)), (cut, got)
    got = replies([STREAM[i:i + 1] for i in range(len(STREAM))], len(EVERY_KIND))
    assert all(map(same, got, EXPECTED)), got


def test_replies_are_read_one_exchange_at_a_time() -> None:
    sock = Pieces([STREAM])
    conn = connection(sock)
    got = [conn.exchange(b"x", 1)[0] for _ in EVERY_KIND]
    assert all(map(same, got, EXPECTED)), got
    assert conn._pos == len(conn._buf) and not conn._stack, "nothing left over"


def test_a_long_bulk_string_over_many_reads() -> None:
    data = os.urandom(3_000_000)  # not UTF-8: comes back as surrogates
    stream = b"$%d\r\n%s\r\n:1\r\n" % (len(data), data)
    sock = Pieces([stream[i:i + 1400] for i in range(0, len(stream), 1400)])
    value, one = connection(sock).exchange(b"", 2)
    assert value.encode("utf-8", "surrogateescape") == data and one == 1
    assert sock.recvs <= len(stream) // 1400 + 3


def test_a_long_array_over_many_reads_is_read_in_linear_time() -> None:
    items = [b"$%d\r\n%s\r\n" % (len(str(i)), str(i).encode()) for i in range(200_000)]
    stream = b"*%d\r\n" % len(items) + b"".join(items)
    started = time.monotonic()
    (value,) = replies([stream[i:i + 1400] for i in range(0, len(stream), 1400)], 1)
    assert value == [str(i) for i in range(200_000)]
    assert time.monotonic() - started < 5, "each piece is parsed once, not the whole reply again"


def test_random_replies_cut_at_random() -> None:
    rng = random.Random(5)

    def reply(depth: int) -> tuple[bytes, Any]:
        kind = rng.randrange(7 if depth < 3 else 5)
        if kind == 0:
            return b":%d\r\n" % (n := rng.randint(-10**12, 10**12)), n
        if kind == 1:
            text = "".join(rng.choice(["a", "\r\n", "é", "\udcff", "$", "*"]) for _ in range(rng.randrange(40)))
            data = text.encode("utf-8", "surrogateescape")
            return b"$%d\r\n%s\r\n" % (len(data), data), text
        if kind == 2:
            return b"$-1\r\n", None
        if kind == 3:
            return b"+PONG\r\n", "PONG"
        if kind == 4:
            return b"-WRONGTYPE Operation against a key\r\n", ResponseError("WRONGTYPE Operation against a key")
        if kind == 5:
            return b"*-1\r\n", None
        parts = [reply(depth + 1) for _ in range(rng.randrange(5))]
        return b"*%d\r\n" % len(parts) + b"".join(p for p, _ in parts), [v for _, v in parts]

    for _ in range(300):
        made = [reply(0) for _ in range(rng.randint(1, 4))]
        stream = b"".join(p for p, _ in made)
        cuts = sorted(rng.sample(range(1, len(stream)), k=min(len(stream) - 1, rng.randint(0, 6))))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        got = replies(pieces, len(made))
        assert all(same(g, v) for g, (_, v) in zip(got, made, strict=True)), (stream, got)


@pytest.mark.parametrize(
    ("line", "kind", "message"),
    [
        (b"ERR Function not found", ResponseError, "Function not found"),
        (b"ERR unknown command 'FCALL', with args beginning with: ", ResponseError,
         "unknown command 'FCALL', with args beginning with: "),
        (b"NOSCRIPT No matching script. Please use EVAL.", NoScriptError, "No matching script. Please use EVAL."),
        (b"LOADING Redis is loading the dataset in memory", UnavailableError, "Redis is loading the dataset in memory"),
        (b"READONLY You can't write against a read only replica.", UnavailableError,
         "You can't write against a read only replica."),
        (b"WRONGPASS invalid username-password pair or user is disabled.", UnavailableError,
         "invalid username-password pair or user is disabled."),
        (b"NOAUTH Authentication required.", UnavailableError, "Authentication required."),
        (b"ERR max number of clients reached", UnavailableError, "max number of clients reached"),
        # BUSY (another client's long script) is an error reply like any other, as it was with redis-py.
        (b"BUSY Redis is busy running a script.", ResponseError, "BUSY Redis is busy running a script."),
        (b"OOM command not allowed when used memory > 'maxmemory'.", ResponseError,
         "command not allowed when used memory > 'maxmemory'."),
        (b"WRONGTYPE Operation against a key", ResponseError, "WRONGTYPE Operation against a key"),
        (b"ERR bad \xff byte", ResponseError, "bad \ufffd byte"),
        (b"ERR", ResponseError, ""),
    ],
)
def test_error_replies_are_classified_as_redis_py_did(line: bytes, kind: type[ResponseError], message: str) -> None:
    error = error_reply(line)
    assert type(error) is kind and str(error) == message and error.code == line.split(b" ")[0].decode()


@pytest.mark.parametrize("stream", [b"?what\r\n", b"$abc\r\n", b":1.5\r\n", b"*2\r\n:1\r\n*x\r\n"])
def test_a_protocol_error_closes_the_connection(stream: bytes) -> None:
    conn = connection(Pieces([stream]))
    with pytest.raises(RedisConnectionError, match="Protocol error"):
        conn.exchange(b"", 1)
    assert conn._sock is None and conn._buf == b"" and not conn._stack


def test_a_reply_cut_short_by_the_server_fails_cleanly() -> None:
    conn = connection(Pieces([b"*2\r\n:1\r\n$10\r\nabc"]))
    with pytest.raises(RedisConnectionError, match="closed by server"):
        conn.exchange(b"", 1)
    assert conn._sock is None
    conn = connection(Pieces([b"$200000\r\n" + b"x" * 1000]))
    with pytest.raises(RedisConnectionError, match="closed by server"):
        conn.exchange(b"", 1)


def test_commands_are_encoded_with_byte_lengths() -> None:
    assert encode(["SET", "k", "é\udcff"]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\xc3\xa9\xff\r\n"


def test_the_session_setup_is_auth_then_select_and_only_what_is_needed() -> None:
    def setup(**kwargs: Any) -> tuple[bytes, int]:
        endpoint = Endpoint("h", 1, timeout=1, connect_timeout=1, **kwargs)
        assert "pw" not in repr(endpoint)
        return endpoint.setup, endpoint.setup_count

    assert setup() == (b"", 0)
    assert setup(password="pw") == (encode(["AUTH", "pw"]), 1)
    assert setup(username="u", password="pw", db=3) == (encode(["AUTH", "u", "pw"]) + encode(["SELECT", "3"]), 2)


# -- with a socket -------------------------------------------------------------------------------------------
@pytest.fixture(params=["polled", "timeout"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Connection, socket.socket]]:
    """A connection and the server's end of it (the test plays the server): a plain TCP connection, non-blocking
    and polled, or a socket with a timeout (as TLS is run)."""
    if request.param == "polled":
        with socket.create_server(("127.0.0.1", 0)) as listener:
            conn = Connection(Endpoint("127.0.0.1", listener.getsockname()[1], timeout=1.0, connect_timeout=1.0))
            conn._connect()
            theirs, _ = listener.accept()
        assert conn._polled
    else:
        ours, theirs = socket.socketpair()
        ours.settimeout(1.0)
        conn = connection(ours)
    yield conn, theirs
    conn.disconnect()
    theirs.close()


def test_an_idle_connection_is_stale_once_the_server_closes_it_or_sends_unasked(
    pair: tuple[Connection, socket.socket],
) -> None:
    conn, server = pair
    server.sendall(b"+PONG\r\n")
    assert conn.exchange(b"PING", 1) == ["PONG"] and not conn.stale()
    server.sendall(b"+surprise\r\n")
    assert conn.stale()
    assert conn.exchange(b"PING", 1) == ["surprise"], "not dropped: the caller decides"
    assert not conn.stale()
    server.close()
    assert conn.stale()
    conn.disconnect()
    assert not conn.stale(), "a closed connection is simply reopened by the next exchange"


def test_a_long_pipeline_is_sent_as_the_server_reads_it(pair: tuple[Connection, socket.socket]) -> None:
    conn, server = pair
    data = b"x" * 20_000_000  # more than the socket buffers hold
    received = bytearray()

    def serve() -> None:
        while len(received) < len(data):
            received.extend(server.recv(1 << 20))
        server.sendall(b"+OK\r\n")

    thread = threading.Thread(target=serve)
    thread.start()
    assert conn.exchange(data, 1, timeout=10.0) == ["OK"]
    thread.join(10)
    assert received == data


def test_a_read_times_out_per_call(pair: tuple[Connection, socket.socket]) -> None:
    conn, _ = pair
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError):
        conn.exchange(b"BLPOP", 1, timeout=0.2)
    assert 0.15 < time.monotonic() - started < 1.0
    assert conn._sock is None


def test_interrupt_ends_a_read_blocked_in_another_thread(pair: tuple[Connection, socket.socket]) -> None:
    conn, _ = pair
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            conn.exchange(b"BLPOP", 1, timeout=10.0)
        except RedisConnectionError as exc:
            failed.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    conn.interrupt()
    thread.join(5)
    assert failed and time.monotonic() - started < 2.0


def test_connecting_where_nothing_listens_is_one_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = Connection(Endpoint("127.0.0.1", port, timeout=1, connect_timeout=1, password="pw"))
    with pytest.raises(RedisConnectionError, match=f"Error 111 connecting to 127.0.0.1:{port}. Connection refused"):
        conn.exchange(b"", 1)


# -- TLS options ---------------------------------------------------------------------------------------------
def test_tls_options_make_the_context_redis_py_made() -> None:
    required = tls_context()
    assert required.verify_mode == ssl.CERT_REQUIRED and required.check_hostname
    optional = tls_context("optional")
    assert optional.verify_mode == ssl.CERT_OPTIONAL and optional.check_hostname
    none = tls_context("NONE")
    assert none.verify_mode == ssl.CERT_NONE and not none.check_hostname


def test_bad_tls_options_are_refused() -> None:
    with pytest.raises(ValueError, match="ssl_cert_reqs must be none, optional or required"):
        tls_context("sometimes")
    with pytest.raises(ValueError, match="ssl_keyfile needs ssl_certfile"):
        tls_context(keyfile="/tmp/key.pem")
    with pytest.raises(OSError):
        tls_context(ca_certs="/nonexistent/ca.pem")
