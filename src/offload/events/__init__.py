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

Modules: ``event`` (the envelope, pattern matching, the origin chain), ``publish`` (``notify``), ``consumers``
(consumer classes and their delivery job), ``webhooks`` (subscriptions, signing, ``verify``, the SSRF policy and
the delivery job), ``delivery`` (the HTTP POST itself, on httpx) and ``client`` (``offload.Client``, the HTTP API
client a consumer calls back with). Each imports only those before it; this module re-exports their names.
"""

from __future__ import annotations

from offload.events.consumers import deliver_to_consumer
from offload.events.event import (
    CONSUMER_QUEUE_PREFIX,
    MAX_ORIGIN_DEPTH,
    ORIGIN_HEADER,
    WEBHOOK_QUEUE,
    Event,
    check_patterns,
    consumer_queue,
    current_event,
    current_origin,
    delivering,
    format_origin,
    matches,
    parse_origin,
)
from offload.events.publish import delivery_queues, notify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Jobs stored before this package existed name ``offload.events:deliver_to_consumer`` and
# ``offload.events:deliver_to_webhook``: those paths keep working, through the name imported above and this one.
def deliver_to_webhook(event: dict[str, Any], webhook_id: str, test: bool = False) -> dict[str, Any]:
    """Job function of webhook deliveries stored under its earlier path; see ``offload.events.delivery``."""
    from offload.events.delivery import deliver_to_webhook as deliver

    return deliver(event, webhook_id, test)

__all__ = [
    "CONSUMER_QUEUE_PREFIX",
    "MAX_ORIGIN_DEPTH",
    "ORIGIN_HEADER",
    "WEBHOOK_QUEUE",
    "Event",
    "check_patterns",
    "consumer_queue",
    "current_event",
    "current_origin",
    "deliver_to_consumer",
    "deliver_to_webhook",
    "delivering",
    "delivery_queues",
    "format_origin",
    "matches",
    "notify",
    "parse_origin",
]
