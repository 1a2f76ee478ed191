"""The slot an executor shares with its supervisor (a few bytes of shared memory).

A single-threaded executor writes there which job it is on before it starts it and again once it returned,
without a message. Its reports are batched, so the supervisor cannot tell from them which job is running: a
crash or a timeout would be blamed on a job that had finished.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing (~10 ms) is not needed at run time; this module is on a worker's start-up path
if TYPE_CHECKING:
    from typing import Any

#: The slot: a version (odd while being written), then the seq of the job the child is on (1 for the first job
#: sent to it, skipped ones counted), its state (SLOT_RUNNING, then SLOT_DONE) and its start
#: (time.monotonic(), a system-wide clock). The version makes it a seqlock: the supervisor reads the same even
#: version before and after the fields, or reads again, so it never acts on a half-written slot.
SLOT = struct.Struct("=qqqd")
SLOT_VERSION = struct.Struct("=q")
SLOT_FIELDS = struct.Struct("=qqd")
SLOT_RUNNING, SLOT_DONE = 1, 2


def write_slot(slot: Any, version: int, seq: int, state: int, started: float) -> int:
    """Write the slot as a seqlock writer; returns the new (even) version."""
    slot[0:8] = SLOT_VERSION.pack(version + 1)
    slot[8:32] = SLOT_FIELDS.pack(seq, state, started)
    slot[0:8] = SLOT_VERSION.pack(version + 2)
    return version + 2


def read_slot(slot: Any) -> tuple[int, int, float] | None:
    """(seq, state, started) as last written, or None if no consistent reading came after a few tries."""
    for _ in range(1000):
        (before,) = SLOT_VERSION.unpack_from(slot, 0)
        if before % 2:
            continue
        fields = SLOT_FIELDS.unpack_from(slot, 8)
        (after,) = SLOT_VERSION.unpack_from(slot, 0)
        if before == after:
            return fields
    return None
