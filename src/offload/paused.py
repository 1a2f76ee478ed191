"""Paused queues: a paused queue keeps its jobs (they can still be enqueued, listed, canceled) but workers take
none of them until it is resumed. The paused set is a record of the store (kind ``offload.paused``, one record
per queue), so it holds on every engine and for every worker of the site; each worker reads it every
``CHECK_SECONDS`` seconds, so a pause takes effect within that time (a job already claimed runs to its end)."""

from __future__ import annotations

import time

from offload.jobs import check_queue_name
from offload.stores.base import Store

KIND = "offload.paused"
CHECK_SECONDS = 2.0


def pause(store: Store, queue: str, by: str = "") -> None:
    store.put_record(KIND, check_queue_name(queue), {"at": time.time(), "by": by})


def resume(store: Store, queue: str) -> bool:
    """Resume a queue; False if it was not paused."""
    return store.delete_record(KIND, check_queue_name(queue))


def paused(store: Store) -> set[str]:
    return {queue for queue, _ in store.list_records(KIND)}
