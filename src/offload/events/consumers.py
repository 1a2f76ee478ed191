"""Consumers: classes that receive events, run by workers, one durable queue each.

    class Archiver(offload.Consumer):
        name = "archiver"
        routing_keys = ("Package", "Resource")
        operations = ("new", "changed")

        def consume(self, routing_key, operation, payload):
            archive(payload["id"])

Registered through the ``offload.consumers`` entry-point group (``archiver = "myext.consumers:Archiver"``)
or the ``offload.consumers`` setting (``myext.consumers:Archiver, ...``). ``notify`` adds a delivery job
for each registered consumer whose patterns match to the queue ``consumer.<name>``; a worker started
without queue names serves those queues, ``offload consumers run NAME`` runs a worker dedicated to some.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import threading
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from offload.entrypoints import entry_points
from offload.errors import ConfigError, OffloadError
from offload.events.event import (
    Event,
    check_patterns,
    consumer_queue,
    current_event,
    delivering,
    matches,
)
from offload.retry import RetryPolicy

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.config import Config

log = logging.getLogger("offload.events")

ENTRY_POINT_GROUP = "offload.consumers"
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,89}")


class ConsumerNotFound(OffloadError):
    """No consumer is registered under that name."""


class Consumer:
    """Base class of consumers. Subclasses set ``routing_keys`` (patterns such as ``Package``,
    ``Resource*`` or ``*``), optionally ``operations`` (None: all) and implement ``consume``.

    Delivery options, each None for the site's default: ``max_attempts`` (the first run included),
    ``retry`` (a ``RetryPolicy``) and ``timeout`` (seconds). ``skip_own_events`` (default True) leaves out
    events this consumer caused, directly or through other consumers or callbacks (see
    ``offload.events``). One instance serves every delivery of an executor process; with
    ``worker --threads`` several deliveries may call ``consume`` at once.
    """

    name: ClassVar[str] = ""
    routing_keys: ClassVar[Sequence[str]] = ("*",)
    operations: ClassVar[Sequence[str] | None] = None
    max_attempts: ClassVar[int | None] = None
    retry: ClassVar[RetryPolicy | None] = None
    timeout: ClassVar[float | None] = None
    skip_own_events: ClassVar[bool] = True

    def consume(self, routing_key: str, operation: str, payload: Any) -> Any:
        """Handle one event. Return None or a JSON value (kept as the delivery job's result); raise to
        have the delivery retried."""
        raise NotImplementedError(f"{type(self).__name__} must implement consume(routing_key, operation, payload)")

    @property
    def event(self) -> Event | None:
        """The whole event being delivered (id, timestamp, origin chain), inside ``consume``."""
        return current_event()

    @classmethod
    def accepts(cls, routing_key: str, operation: str) -> bool:
        return matches(cls.routing_keys, routing_key) and matches(cls.operations, operation)


@dataclass(frozen=True)
class RegisteredConsumer:
    """A consumer class as the registry knows it: its name, where it is and how it was registered."""

    name: str
    cls: type[Consumer]
    path: str
    source: str

    @property
    def queue(self) -> str:
        return consumer_queue(self.name)

    @property
    def marker(self) -> str:
        return f"consumer:{self.name}"

    def wants(self, event: Event) -> bool:
        if self.cls.skip_own_events and event.caused_by(self.marker):
            return False
        return self.cls.accepts(event.routing_key, event.operation)

    def job_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.cls.max_attempts is not None:
            options["max_attempts"] = self.cls.max_attempts
        if self.cls.retry is not None:
            options["retry"] = self.cls.retry
        if self.cls.timeout is not None:
            options["timeout"] = self.cls.timeout
        return options


_lock = threading.Lock()
_from_entry_points: list[RegisteredConsumer] | None = None
_by_path: dict[str, RegisteredConsumer] = {}


def _path_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _describe(cls: object, name: str | None, source: str, value: str) -> RegisteredConsumer:
    if not (isinstance(cls, type) and issubclass(cls, Consumer)):
        raise ConfigError(f"{source}: {value!r} is not an offload.Consumer subclass")
    if cls.consume is Consumer.consume:
        raise ConfigError(f"{source}: {value!r} does not implement consume(routing_key, operation, payload)")
    consumer_name = cls.name or name or cls.__name__.lower()
    if not _NAME_RE.fullmatch(consumer_name):
        raise ConfigError(f"{source}: invalid consumer name {consumer_name!r}: use 1-90 letters, digits, "
                          "'_', '-' or '.'")
    check_patterns(cls.routing_keys, "routing key")
    if cls.operations is not None:
        check_patterns(cls.operations, "operation")
    return RegisteredConsumer(consumer_name, cls, _path_of(cls), source)


def _load_entry_points() -> list[RegisteredConsumer]:
    global _from_entry_points
    if _from_entry_points is None:
        found = []
        for ep in entry_points(ENTRY_POINT_GROUP):
            source = f"entry point {ep.name} ({ep.dist_name})"
            try:
                cls = ep.load()
            except Exception as exc:
                raise ConfigError(f"{source}: cannot load {ep.value!r}: {exc}") from exc
            found.append(_describe(cls, ep.name, source, ep.value))
        _from_entry_points = found
    return _from_entry_points


def _load_path(path: str) -> RegisteredConsumer:
    registered = _by_path.get(path)
    if registered is None:
        source = "setting offload.consumers"
        module_name, _, qualname = path.strip().partition(":")
        if not module_name or not qualname:
            raise ConfigError(f"{source}: {path!r} is not an import path; write it as 'package.module:Class'")
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{source}: cannot import {path!r}: {exc}") from exc
        registered = _by_path[path] = _describe(target, None, source, path)
    return registered


def registered(config: Config) -> dict[str, RegisteredConsumer]:
    """Every registered consumer by name (entry points, then the ``offload.consumers`` setting), sorted."""
    with _lock:
        candidates = [*_load_entry_points(), *(_load_path(path) for path in config["offload.consumers"])]
    found: dict[str, RegisteredConsumer] = {}
    for candidate in candidates:
        existing = found.get(candidate.name)
        if existing is not None and existing.cls is not candidate.cls:
            raise ConfigError(f"two consumers are named {candidate.name!r}: {existing.path} ({existing.source}) "
                              f"and {candidate.path} ({candidate.source}); give one another name")
        found.setdefault(candidate.name, candidate)
    return {name: found[name] for name in sorted(found)}


def lookup(config: Config, name: str) -> RegisteredConsumer:
    found = registered(config)
    try:
        return found[name]
    except KeyError:
        known = ", ".join(found) or "none"
        raise ConsumerNotFound(f"Unknown consumer {name!r}; registered consumers: {known}") from None


def consumer_class(path: str) -> type[Consumer]:
    """The consumer class at import ``path`` (used by delivery jobs, which carry the path)."""
    return _load_path(path).cls


def delivery_calls(app: Offload, event: Event) -> list[dict[str, Any]]:
    """``enqueue_many`` calls delivering ``event`` to each registered consumer that wants it."""
    calls = []
    for consumer in registered(app.config).values():
        if not consumer.wants(event):
            continue
        title = f"{event.describe()} -> {consumer.name}"
        meta = {"event_id": event.id, "routing_key": event.routing_key, "operation": event.operation,
                "subscriber": consumer.marker}
        calls.append({"fn": deliver_to_consumer, "args": [event.to_dict(), consumer.name, consumer.path],
                      "title": title, "queue": consumer.queue, "meta": meta, **consumer.job_options()})
    return calls


# -- the delivery job ------------------------------------------------------------------------------------------
_instances: dict[type[Consumer], Consumer] = {}
_instances_lock = threading.Lock()


def _consumer_instance(cls: type[Consumer]) -> Consumer:
    """One instance per consumer class and process, so a consumer may keep connections between events."""
    instance = _instances.get(cls)
    if instance is None:
        with _instances_lock:
            instance = _instances.get(cls)
            if instance is None:
                instance = _instances[cls] = cls()
    return instance


def deliver_to_consumer(event: dict[str, Any], name: str, path: str) -> Any:
    """Job function: hand ``event`` to the consumer ``name`` (class at import ``path``); returns what
    ``consume`` returns. An exception fails this delivery only; it is retried per the consumer's policy."""
    cls = consumer_class(path)
    delivered = Event.from_dict(event)
    marker = f"consumer:{name}"
    if cls.skip_own_events and delivered.caused_by(marker):
        log.info("Consumer %s skips event %s (%s): it caused it", name, delivered.id, delivered.describe())
        return {"skipped": "caused by this consumer"}
    consumer = _consumer_instance(cls)
    with delivering(delivered, marker):
        result = consumer.consume(delivered.routing_key, delivered.operation, delivered.payload)
    if inspect.isawaitable(result):  # an async consume: the executor awaits it; keep the origin for it
        return _awaited_within(delivered, marker, result)
    return result


async def _awaited_within(event: Event, marker: str, awaitable: Awaitable[Any]) -> Any:
    with delivering(event, marker):
        return await awaitable
