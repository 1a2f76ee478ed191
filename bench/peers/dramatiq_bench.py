"""Dramatiq adapter (runs in bench/.venvs/dramatiq), Redis broker.

One worker process (``--processes 1``) with 2 threads for drain/latency, 32 threads for io.
Completion: the broker's own queue size (``do_qsize``: messages waiting plus delivered but not yet
acknowledged; Dramatiq acknowledges after the actor ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _harness
import dramatiq_jobs

ACTORS = {
    "noop": dramatiq_jobs.noop, "sleep": dramatiq_jobs.sleep,
    "stamp": dramatiq_jobs.stamp, "mark": dramatiq_jobs.mark, "record": dramatiq_jobs.record,
}


class DramatiqAdapter(_harness.Adapter):
    system = "dramatiq"
    stores = ("redis",)
    packages = ("dramatiq", "redis")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        self.broker = dramatiq_jobs.broker

    def reset(self) -> None:
        self.broker.client.flushdb()

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        send = ACTORS[kind].send
        for args in args_list:
            send(*args)

    def remaining(self, total: int) -> int:
        return int(self.broker.do_qsize("default"))

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        threads = _harness.IO_SLOTS if mode == "io" else _harness.slots(mode)
        argv = [self.script("dramatiq"), "dramatiq_jobs", "--processes", "1", "--threads", str(threads),
                "--queues", "default"]
        return argv, {}, f"dramatiq --processes 1 --threads {threads}; default logging (INFO, no per-job lines)"

    def server_info(self) -> dict[str, str]:
        return {"redis": str(self.broker.client.info("server")["redis_version"])}


if __name__ == "__main__":
    _harness.main(DramatiqAdapter)
