"""The supervisor <-> executor channel: pickled messages over a Unix socket, each framed by its length.

``multiprocessing.connection`` does the same but costs an executor tens of milliseconds of imports at boot
(``multiprocessing`` pulls in ``tempfile``, ``shutil``, ``subprocess``...), and every executor boots on the
worker's start-up path. Only trusted processes hold these sockets (a supervisor and the children it spawned),
so pickle is fine here; job arguments inside the messages are already JSON.
"""

from __future__ import annotations

import pickle
import select
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct("!I")
_CHUNK = 1 << 16


class Wire:
    """One end of the channel. ``send`` may be called from several threads only under the caller's lock;
    ``recv``/``poll`` from one thread (which may differ from the sending one).

    ``post`` is ``send`` without ever blocking: what the socket does not take now waits in ``outgoing`` until
    ``flush`` (call it when the socket is writable). A supervisor posts, so that it never waits on an executor
    that is busy running a job and not reading."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.outgoing = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def post(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.outgoing += _HEADER.pack(len(data))
        self.outgoing += data
        self.flush()

    def flush(self) -> None:
        """Write what the socket takes now of the posted messages; OSError if the other end is gone."""
        while self.outgoing:
            try:
                sent = self.sock.send(self.outgoing, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            del self.outgoing[:sent]

    def _frame(self) -> bytes | None:
        if len(self.buf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buf)
        end = _HEADER.size + size
        if len(self.buf) < end:
            return None
        frame = bytes(self.buf[_HEADER.size:end])
        del self.buf[:end]
        return frame

    def _read(self) -> None:
        chunk = self.sock.recv(_CHUNK)
        if not chunk:
            self.eof = True
        self.buf += chunk

    def recv(self) -> Any:
        """The next message, waiting for it; EOFError once the other end has closed."""
        while True:
            frame = self._frame()
            if frame is not None:
                return pickle.loads(frame)
            if self.eof:
                raise EOFError("the other end closed the channel")
            self._read()

    def pending(self) -> bool:
        """True when a whole message (or the end of the channel) has been read and not yet received."""
        return self.eof or (len(self.buf) >= _HEADER.size
                            and len(self.buf) >= _HEADER.size + _HEADER.unpack_from(self.buf)[0])

    def poll(self, timeout: float = 0.0) -> bool:
        """True when ``recv`` would return (or raise EOFError) without waiting; waits up to ``timeout``
        seconds for that to become true, writing posted messages meanwhile as the socket takes them."""
        deadline = time.monotonic() + timeout
        while not self.pending():
            writers = [self.sock] if self.outgoing else []
            readable, writable, _ = select.select([self.sock], writers, [], max(0.0, deadline - time.monotonic()))
            if writable:
                self.flush()
            if readable:
                self._read()
            elif not writable:
                return False
        return True

    def close(self) -> None:
        self.sock.close()
