"""Events: ``notify(routing_key, operation, payload)`` fans one event out as one job per subscriber.

An event is ``("Package", "changed", {...})``: what kind of thing changed (the routing key), what happened
to it (the operation) and the thing itself (the payload, any value offload's JSON can carry). Subscribers
are consumer classes (``offload.Consumer``, run by workers) and webhooks (signed HTTP POSTs). ``notify``
finds the subscribers whose patterns match and adds one delivery job per subscriber in one ``enqueue_many``
call, so either every delivery is stored or none is; after that each delivery lives on its own (its own
retries, timeout and history), and a slow or failing subscriber never holds up another.

Queues: a consumer's deliveries go to ``consumer.<name>`` (CKAN's per-worker durable queue), webhook
deliveries to ``webhooks``. ``delivery_queues(app)`` names them all; a worker started without queue names
serves ``default`` and these.

Origin: every event carries the chain of contexts that caused it (``origin``), outermost first. Inside a
consumer's delivery the chain is the delivered event's chain plus ``consumer:<name>``; inside any other job
it is ``job:<id>``; outside a job it is empty unless the caller says otherwise (``origin="user:alice"``, or
the ``Offload-Origin`` header an ``offload.Client`` sends when a consumer calls back into the application).
A consumer does not receive events whose chain contains its own marker (``skip_own_events``), and an event
whose chain is longer than ``MAX_ORIGIN_DEPTH`` is not published: both stop notification loops.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import inspect
import logging
import re
import threading
import time
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from offload import codec
from offload.context import current_job
from offload.jobs import Job, new_id

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.consumers import Consumer

log = logging.getLogger("offload.events")

WEBHOOK_QUEUE = "webhooks"
CONSUMER_QUEUE_PREFIX = "consumer."
#: The HTTP header that carries an origin chain from a consumer's API call into the application's notify().
ORIGIN_HEADER = "Offload-Origin"
#: An event caused through more hops than this is dropped (logged at WARNING): a loop, almost surely.
MAX_ORIGIN_DEPTH = 10

_NAME_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}")
_MARKER_RE = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,200}")


@dataclass(frozen=True)
class Event:
    """One published event: the envelope every delivery job carries as its first argument."""

    id: str
    timestamp: float
    routing_key: str
    operation: str
    payload: Any = None
    origin: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "timestamp": self.timestamp, "routing_key": self.routing_key,
                "operation": self.operation, "payload": self.payload, "origin": list(self.origin)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(str(data["id"]), float(data["timestamp"]), str(data["routing_key"]), str(data["operation"]),
                   data.get("payload"), tuple(data.get("origin") or ()))

    @property
    def time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp, dt.timezone.utc)

    def caused_by(self, marker: str) -> bool:
        """True when ``marker`` (``consumer:archiver``, ``job:<id>``, ...) is anywhere in the origin chain."""
        return marker in self.origin

    def describe(self) -> str:
        """``Package changed``: how job titles and log lines name the event."""
        return f"{self.routing_key} {self.operation}"


def matches(patterns: Iterable[str] | None, value: str) -> bool:
    """Whether ``value`` matches one of the shell-style ``patterns`` (case-sensitive; ``*`` matches anything,
    ``Package*`` a prefix). ``None`` matches everything; an empty list matches nothing."""
    if patterns is None:
        return True
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def check_patterns(patterns: Iterable[str], what: str) -> list[str]:
    """Validated pattern list (non-empty strings without whitespace)."""
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not _NAME_RE.fullmatch(pattern):
            raise ValueError(f"invalid {what} pattern {pattern!r}: use 1-200 characters without spaces")
        out.append(pattern)
    return out


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: use a string of 1-200 characters without spaces")
    return value


# -- origin ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Delivery:
    event: Event
    marker: str


_delivering: contextvars.ContextVar[_Delivery | None] = contextvars.ContextVar("offload_delivery", default=None)


def current_event() -> Event | None:
    """The event being delivered to the consumer running in this thread, or None."""
    delivery = _delivering.get()
    return delivery.event if delivery is not None else None


def current_origin() -> list[str]:
    """The origin chain an event published here and now would carry."""
    delivery = _delivering.get()
    if delivery is not None:
        return [*delivery.event.origin, delivery.marker]
    job = current_job()
    if job is not None:
        return [f"job:{job.id}"]
    return []


def parse_origin(origin: str | Sequence[str]) -> list[str]:
    """An origin chain from a list of markers or from header text (markers separated by commas)."""
    markers = [part.strip() for part in origin.split(",")] if isinstance(origin, str) else list(origin)
    chain = [marker for marker in markers if marker != ""]
    for marker in chain:
        if not isinstance(marker, str) or not _MARKER_RE.fullmatch(marker):
            raise ValueError(f"invalid origin marker {marker!r}: use 1-200 letters, digits and _.:@/+=-")
    return chain


def format_origin(chain: Sequence[str]) -> str:
    """Header text for an origin chain (the inverse of ``parse_origin``)."""
    return ", ".join(chain)


@contextmanager
def delivering(event: Event, marker: str) -> Iterator[None]:
    """Make ``event`` the current event (and ``marker`` the next hop of the origin chain) in this block."""
    token = _delivering.set(_Delivery(event, marker))
    try:
        yield
    finally:
        _delivering.reset(token)


# -- publishing --------------------------------------------------------------------------------------------------
def consumer_queue(name: str) -> str:
    return f"{CONSUMER_QUEUE_PREFIX}{name}"


def delivery_queues(app: Offload) -> list[str]:
    """The queues deliveries go to: ``webhooks``, then ``consumer.<name>`` for each registered consumer."""
    from offload import consumers

    return [WEBHOOK_QUEUE, *(consumer_queue(name) for name in consumers.registered(app.config))]


def notify(app: Offload, routing_key: str, operation: str, payload: Any = None,
           origin: str | Sequence[str] | None = None) -> list[Job]:
    """Publish an event on ``app``'s site: one delivery job per matching consumer and active webhook, all
    added at once. Returns the delivery jobs (empty when nothing subscribes). ``origin`` overrides the
    origin chain (default ``current_origin()``); see the module docstring."""
    from offload import consumers, webhooks

    _check_name(routing_key, "routing_key")
    _check_name(operation, "operation")
    codec.dumps(payload, "payload")  # the same error whether or not anything subscribes
    chain = tuple(parse_origin(origin)) if origin is not None else tuple(current_origin())
    if len(chain) > MAX_ORIGIN_DEPTH:
        log.warning("Event %s %s not published: it was caused through %d hops (%s), which looks like a "
                    "notification loop", routing_key, operation, len(chain), format_origin(chain[-4:]))
        return []
    event = Event(new_id(), time.time(), routing_key, operation, payload, chain)
    calls = [*consumers.delivery_calls(app, event), *webhooks.delivery_calls(app, event)]
    if not calls:
        log.debug("Event %s (%s) has no subscribers", event.id, event.describe())
        return []
    jobs = app.enqueue_many(calls)
    log.info("Event %s (%s) published: %d deliver%s (%s)", event.id, event.describe(), len(jobs),
             "y" if len(jobs) == 1 else "ies", ", ".join(str(job.meta.get("subscriber")) for job in jobs))
    return jobs


# -- delivery jobs -----------------------------------------------------------------------------------------------
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
    from offload.consumers import consumer_class

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


def deliver_to_webhook(event: dict[str, Any], webhook_id: str, test: bool = False) -> dict[str, Any]:
    """Job function: POST ``event`` to webhook ``webhook_id`` (see ``offload.webhook_delivery``)."""
    from offload import default_app

    try:
        from offload import webhook_delivery
    except ImportError as exc:
        from offload.webhooks import WebhookError

        raise WebhookError(f"webhook deliveries need httpx: pip install 'offload[webhooks]' ({exc})") from exc
    return webhook_delivery.deliver(default_app(), Event.from_dict(event), webhook_id, test=test)
