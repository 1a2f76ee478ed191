"""The supervisor <-> executor channel: framing across partial reads, several messages per read, EOF."""

from __future__ import annotations

import socket
import threading

import pytest

from offload.worker.wire import Wire


@pytest.fixture
def pair() -> tuple[Wire, socket.socket]:
    a, b = socket.socketpair()
    yield Wire(a), b
    a.close()
    b.close()


def test_round_trip_of_large_and_small_messages() -> None:
    a, b = socket.socketpair()
    left, right = Wire(a), Wire(b)
    big = ("run", ["x" * 200_000, {"k": list(range(1000))}])
    sender = threading.Thread(target=lambda: [left.send(m) for m in (("ready", 1, 2.5), big, ("stop",))])
    sender.start()  # the big one is larger than the socket buffer: it arrives in many reads
    assert right.recv() == ("ready", 1, 2.5)
    assert right.recv() == big
    assert right.recv() == ("stop",)
    sender.join()
    a.close()
    b.close()


def test_poll_waits_for_a_whole_message(pair: tuple[Wire, socket.socket]) -> None:
    wire, raw = pair
    payload = Wire.__new__(Wire)  # only to frame bytes the way send does
    frames: list[bytes] = []
    payload.sock = type("S", (), {"sendall": frames.append})()
    payload.send(("done", [("job", {"ok": True})]))
    payload.send(("progress", "job", None, None))
    data = b"".join(frames)
    assert not wire.poll() and not wire.pending()
    raw.sendall(data[:3])  # not even the header
    assert not wire.poll()
    raw.sendall(data[3:10])  # header and part of the body
    assert not wire.poll() and not wire.pending()
    raw.sendall(data[10:])  # the rest of the first message and all of the second, in one read
    assert wire.poll()
    assert wire.recv() == ("done", [("job", {"ok": True})])
    assert wire.pending(), "the second message was read with the first one and waits in the buffer"
    assert wire.poll() and wire.recv() == ("progress", "job", None, None)
    assert not wire.poll()


def test_end_of_channel_is_eof_after_the_last_message(pair: tuple[Wire, socket.socket]) -> None:
    wire, raw = pair
    left = Wire(raw)
    left.send(("ready", 7, 1.0))
    raw.shutdown(socket.SHUT_WR)
    assert wire.poll() and wire.recv() == ("ready", 7, 1.0)
    assert wire.poll(), "EOF counts as something to receive, so the reader notices the death"
    with pytest.raises(EOFError):
        wire.recv()


def test_poll_with_a_timeout_waits_for_a_message_and_no_longer(pair: tuple[Wire, socket.socket]) -> None:
    wire, raw = pair
    left = Wire(raw)
    assert not wire.poll(0.05), "nothing arrives: False once the timeout is over"
    timer = threading.Timer(0.05, left.send, args=(("done", []),))
    timer.start()
    assert wire.poll(5.0), "a message that arrives while it waits ends the wait"
    assert wire.recv() == ("done", [])
    timer.join()
