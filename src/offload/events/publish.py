"""Publishing: ``notify`` turns one event into one delivery job per subscriber, all stored at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from offload import codec
from offload.events import consumers, webhooks
from offload.events.event import (
    MAX_ORIGIN_DEPTH,
    WEBHOOK_QUEUE,
    Event,
    check_name,
    consumer_queue,
    current_origin,
    format_origin,
    parse_origin,
)
from offload.jobs import Job, new_id

if TYPE_CHECKING:
    from offload.app import Offload

log = logging.getLogger("offload.events")


def delivery_queues(app: Offload) -> list[str]:
    """The queues deliveries go to: ``webhooks``, then ``consumer.<name>`` for each registered consumer."""
    return [WEBHOOK_QUEUE, *(consumer_queue(name) for name in consumers.registered(app.config))]


def notify(app: Offload, routing_key: str, operation: str, payload: Any = None,
           origin: str | Sequence[str] | None = None, *, connection: Any = None) -> list[Job]:
    """Publish an event on ``app``'s site: one delivery job per matching consumer and active webhook, all
    added at once. Returns the delivery jobs (empty when nothing subscribes). ``origin`` overrides the
    origin chain (default ``current_origin()``); see ``offload.events``. ``connection``: the deliveries are
    written in the application's open transaction, and exist only if it commits (see ``Offload.enqueue``)."""
    check_name(routing_key, "routing_key")
    check_name(operation, "operation")
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
    jobs = app.enqueue_many(calls, connection=connection)
    log.info("Event %s (%s) published: %d deliver%s (%s)", event.id, event.describe(), len(jobs),
             "y" if len(jobs) == 1 else "ies", ", ".join(str(job.meta.get("subscriber")) for job in jobs))
    return jobs
