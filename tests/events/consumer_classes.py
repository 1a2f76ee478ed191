"""Consumers used by the notification tests. Each appends what it receives, one JSON line per delivery, to
``<OFFLOAD_TEST_LEDGER_DIR>/<name>.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import offload
from offload.retry import RetryPolicy


def record(name: str, routing_key: str, operation: str, payload: Any, consumer: offload.Consumer) -> None:
    event = consumer.event
    line = {"routing_key": routing_key, "operation": operation, "payload": payload,
            "types": {k: type(v).__name__ for k, v in payload.items()} if isinstance(payload, dict) else None,
            "event_id": event.id if event else None, "origin": list(event.origin) if event else None,
            "pid": os.getpid()}
    path = Path(os.environ["OFFLOAD_TEST_LEDGER_DIR"]) / f"{name}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line, default=_iso) + "\n").encode())
    finally:
        os.close(fd)


def _iso(value: Any) -> str:
    return str(value.isoformat())


class Recorder(offload.Consumer):
    """Every event."""

    name = "recorder"

    def consume(self, routing_key: str, operation: str, payload: Any) -> Any:
        record(self.name, routing_key, operation, payload, self)
        return {"recorded": True}


class Archiver(offload.Consumer):
    """New and changed packages only."""

    name = "archiver"
    routing_keys = ("Package",)
    operations = ("new", "changed")

    def consume(self, routing_key: str, operation: str, payload: Any) -> None:
        record(self.name, routing_key, operation, payload, self)


class Broken(offload.Consumer):
    """Always fails: two attempts, 50 ms apart."""

    name = "broken"
    max_attempts = 2
    retry = RetryPolicy("fixed", 0.05, jitter=False)

    def consume(self, routing_key: str, operation: str, payload: Any) -> None:
        record(self.name, routing_key, operation, payload, self)
        raise RuntimeError("broken consumer")


class Echoer(offload.Consumer):
    """Publishes a changed package again for every changed package: a loop without the origin guard."""

    name = "echoer"
    routing_keys = ("Package",)
    operations = ("changed",)

    def consume(self, routing_key: str, operation: str, payload: Any) -> None:
        record(self.name, routing_key, operation, payload, self)
        offload.notify("Package", "changed", {**payload, "echoed": True})


class Patcher(offload.Consumer):
    """Calls back into the application's API (a test server), which publishes the change it makes."""

    name = "patcher"
    routing_keys = ("Package",)

    def consume(self, routing_key: str, operation: str, payload: Any) -> Any:
        record(self.name, routing_key, operation, payload, self)
        with offload.Client(os.environ["OFFLOAD_TEST_API_URL"], "site-token") as api:
            return api.call("package_patch", id=payload["id"], archived=True)


class AsyncOrigin(offload.Consumer):
    """An async consume: returns the origin chain it would give to events it publishes."""

    name = "async-origin"

    async def consume(self, routing_key: str, operation: str, payload: Any) -> Any:
        from offload import events

        return {"event": self.event.id if self.event else None, "origin": events.current_origin()}


class Unnamed(offload.Consumer):
    """No name: the registry calls it by its class name."""

    def consume(self, routing_key: str, operation: str, payload: Any) -> None:
        return None


class NotAConsumer:
    def consume(self, routing_key: str, operation: str, payload: Any) -> None:
        return None
