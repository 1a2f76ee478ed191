"""Webhook actions: ``webhook_create``, ``webhook_list``, ``webhook_show``, ``webhook_delete``, ``webhook_test``
and ``webhook_delivery_list``. Writes need the admin role; the read role sees subscriptions with their URL
cut to scheme and host (webhook paths often carry secrets) and never a secret, except the one
``webhook_create`` returns once."""

from __future__ import annotations

from typing import Any

from offload.events import webhooks
from offload.events.event import check_patterns
from offload.web.actions import (
    ActionContext,
    Boolean,
    Integer,
    NotFound,
    String,
    StringList,
    ValidationError,
    action,
    audit,
)
from offload.web.job_actions import JOB_SCHEMA, job_dict

WEBHOOK_ID = String(required=True, max_length=16, help="the webhook id (or a unique prefix of 4+ characters)")


def _pattern(text: str) -> str:
    check_patterns([text], "event")
    return text


PATTERNS = {"type": "string", "pattern": r"^\S{1,200}$"}

WEBHOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A webhook subscription (times are UTC seconds since the epoch; secrets masked).",
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "routing_keys": {"type": "array", "items": {"type": "string"}},
        "operations": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "active": {"type": "boolean"},
        "secret": {"type": ["string", "null"]},
        "disabled_reason": {"type": ["string", "null"]},
        "health": {"type": "object"},
    },
}


def _view(ctx: ActionContext, record: dict[str, Any]) -> dict[str, Any]:
    view = webhooks.public_view(ctx.offload, record)
    if ctx.role != "admin":
        view["url"] = webhooks.safe_url(view["url"])
    return view


def _get(ctx: ActionContext, webhook_id: str) -> dict[str, Any]:
    try:
        return webhooks.get(ctx.offload, webhook_id)
    except webhooks.WebhookNotFound as exc:
        raise NotFound(str(exc)) from None


@action("webhook_create", role="admin", params={
    "url": String(required=True, max_length=2000, help="where to POST events (http or https)"),
    "routing_keys": StringList(help="routing-key patterns such as Package or Resource* (default: *)",
                               item=_pattern, item_schema=PATTERNS),
    "operations": StringList(help="operation patterns such as changed (default: *)", item=_pattern,
                             item_schema=PATTERNS),
    "description": String(max_length=500, help="what the webhook is for"),
    "secret": String(max_length=200, help="signing secret, 16-200 characters (default: a new random one)"),
    "active": Boolean(default=True, help="deliver to it (default true)"),
}, result=WEBHOOK_SCHEMA)
def webhook_create(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Subscribe a URL to events. The result carries the signing secret, in full, this once only.

    Internal destinations (loopback, private, link-local, multicast) given as literal addresses are refused
    unless ``offload.webhooks.allowed_hosts`` allows them; host names are checked when delivering."""
    try:
        record = webhooks.add(ctx.offload, data["url"], data["routing_keys"] or ["*"], data["operations"] or ["*"],
                              data["description"] or "", data["secret"], active=data["active"])
    except webhooks.DestinationRefused as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    except ValueError as exc:
        field = "secret" if "secret" in str(exc) else "url"
        raise ValidationError({field: [str(exc)]}) from None
    return {**_view(ctx, record), "secret": record["secret"]}


@action("webhook_list", role="read", result={"type": "array", "items": WEBHOOK_SCHEMA})
def webhook_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every webhook of the site, oldest first, secrets masked."""
    return [_view(ctx, record) for record in webhooks.list_all(ctx.offload)]


@action("webhook_show", role="read", params={"id": WEBHOOK_ID}, result=WEBHOOK_SCHEMA)
def webhook_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One webhook with its delivery health (consecutive failures, last success); secrets masked."""
    return _view(ctx, _get(ctx, data["id"]))


@action("webhook_delete", role="admin", params={
    "id": String(required=True, max_length=16, help="the webhook's full id (a prefix is not enough to delete)"),
}, result={"type": "null"})
def webhook_delete(ctx: ActionContext, data: dict[str, Any]) -> None:
    """Delete a webhook and its delivery log; its pending deliveries are skipped. Needs the full id."""
    record = _get(ctx, data["id"])
    if record["id"] != data["id"]:
        raise ValidationError({"id": [f"Give the webhook's full id to delete it ({data['id']!r} is a prefix of "
                                      f"{record['id']!r})"]})
    webhooks.remove(ctx.offload, record["id"])
    audit(ctx, "webhook_delete", f"deleted webhook {record['id']} ({webhooks.safe_url(record['url'])}) and its "
                                 "delivery log")


@action("webhook_test", role="admin", params={"id": WEBHOOK_ID}, result=JOB_SCHEMA)
def webhook_test(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Queue a test event (routing key ``offload``, operation ``test``) for one webhook, even a disabled
    one. Returns the delivery job; its result, and ``webhook_delivery_list``, tell how it went."""
    record = _get(ctx, data["id"])
    return job_dict(webhooks.send_test(ctx.offload, record["id"]))


@action("webhook_delivery_list", role="read", params={
    "id": WEBHOOK_ID,
    "limit": Integer(minimum=1, maximum=1000, default=20, help="at most this many attempts (default 20)"),
}, result={"type": "array", "items": {"type": "object"}})
def webhook_delivery_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The last delivery attempts of a webhook, newest first: time, event, attempt, outcome (delivered,
    retrying, failed), HTTP status, latency, response excerpt and error."""
    record = _get(ctx, data["id"])
    return webhooks.deliveries(ctx.offload, record["id"], data["limit"])
