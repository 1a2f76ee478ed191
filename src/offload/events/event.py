"""An event, how subscribers' patterns match it, and the origin chain that stops notification loops.

See ``offload.events`` for what events are and how they are delivered.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from offload.context import current_job

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


def check_name(value: object, what: str) -> str:
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


# -- queues ------------------------------------------------------------------------------------------------------
def consumer_queue(name: str) -> str:
    return f"{CONSUMER_QUEUE_PREFIX}{name}"
