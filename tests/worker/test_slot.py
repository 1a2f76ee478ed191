"""The executor's slot is read by the supervisor while the executor writes it: no torn reading, ever.

Regression test: the first version wrote the slot with one ``struct.pack_into``, which clears the record before
filling it, so the supervisor sometimes read a job as started at 0.0 and killed it as 180 s overdue.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys

from offload.worker.slot import SLOT, read_slot
from offload.worker.spawn import _slot_fd

WRITER = """
import mmap, sys
from offload.worker.slot import SLOT, write_slot
slot = mmap.mmap(int(sys.argv[1]), SLOT.size)
version = 0
for n in range(1, 300_001):
    version = write_slot(slot, version, n, 1 + n % 2, float(n))
"""


def test_readings_are_never_torn() -> None:
    fd = _slot_fd()
    slot = mmap.mmap(fd, SLOT.size)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(fd)], pass_fds=(fd,))
    readings = 0
    try:
        while writer.poll() is None:
            fields = read_slot(slot)
            if fields is None or fields[0] == 0:
                continue
            seq, state, started = fields
            assert started == float(seq) and state == 1 + seq % 2, fields
            readings += 1
    finally:
        writer.wait(60)
        os.close(fd)
    assert writer.returncode == 0
    assert readings > 100
    assert read_slot(slot) == (300_000, 1, 300_000.0)
