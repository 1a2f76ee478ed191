"""Webhooks: subscriptions stored in the store, signed HTTP POST deliveries, and ``verify`` for receivers.

A subscription (store record kind ``webhook``) holds a URL, an event filter (routing-key and operation
patterns), a secret, an active flag and a description. ``notify`` adds one delivery job per matching active
subscription to the ``webhooks`` queue; the job (``offload.webhook_delivery``) POSTs the event as JSON:

    {"id": "<event id>", "timestamp": "2026-01-31T12:00:00.123456Z", "routing_key": "Package",
     "operation": "changed", "payload": {...}}

with the headers of the Standard Webhooks scheme: ``webhook-id`` (unique per delivery, the same on every
retry of it, so receivers can drop duplicates), ``webhook-timestamp`` (Unix seconds of the attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, one per valid secret,
space-separated (during a rotation the previous secret signs too until it expires). Receivers check a
request with ``verify(headers, body, secret)``, which needs nothing but the standard library.

Destinations: by default loopback, private, link-local, multicast and other non-global addresses are
refused (server-side request forgery guard). A literal address is refused when the webhook is added; a
host name is checked on the address actually connected to, at connect time. ``offload.webhooks.allowed_hosts``
lists host names, addresses or networks (``10.1.2.0/24``) a site allows anyway; ``*`` allows everything.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets as _secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from offload.errors import ConfigError, OffloadError
from offload.events.event import WEBHOOK_QUEUE, Event, check_patterns, matches
from offload.jobs import new_id
from offload.retry import RetryPolicy

if TYPE_CHECKING:
    from offload.app import Offload
    from offload.config import Config
    from offload.jobs import Job

log = logging.getLogger("offload.webhooks")

KIND = "webhook"
HEALTH_KIND = "webhook_health"
DELIVERY_KIND_PREFIX = "webhook_delivery:"
SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
TEST_ROUTING_KEY = "offload"
TEST_OPERATION = "test"
#: The job function of a webhook delivery, by import path: the module needs httpx, which only workers load.
DELIVERY_FUNCTION = "offload.events.delivery:deliver_to_webhook"


class WebhookError(OffloadError):
    """A webhook operation failed."""


class WebhookNotFound(WebhookError):
    """There is no webhook with that id."""


class DestinationRefused(WebhookError):
    """The destination address is internal (loopback, private, link-local, multicast); add it to
    offload.webhooks.allowed_hosts to allow it."""

    retryable = False


class DeliveryFailed(WebhookError):
    """A webhook delivery attempt failed."""

    def __init__(self, message: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class WebhookVerificationError(WebhookError):
    """The webhook request is not authentic: a header is missing, the timestamp is outside the tolerance or
    no signature matches."""


# -- settings ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookSettings:
    timeout: float
    max_attempts: int
    retry: RetryPolicy
    disable_after: int
    disable_after_time: float
    log_size: int
    policy: DestinationPolicy

    @property
    def job_timeout(self) -> float:
        """The hard limit of a delivery job: connect, send and response each get ``timeout``, plus slack."""
        return 3 * self.timeout + 10.0


def webhook_settings(config: Config) -> WebhookSettings:
    timeout = float(config["offload.webhooks.timeout"])
    attempts = int(config["offload.webhooks.max_attempts"])
    delay, max_delay = float(config["offload.webhooks.retry_delay"]), float(config["offload.webhooks.max_retry_delay"])
    log_size = int(config["offload.webhooks.log_size"])
    if timeout <= 0 or attempts < 1 or delay < 0 or max_delay < 0 or log_size < 1:
        raise ConfigError("offload.webhooks: timeout must be > 0, max_attempts and log_size >= 1, retry delays >= 0")
    return WebhookSettings(
        timeout=timeout,
        max_attempts=attempts,
        retry=RetryPolicy("exponential", delay, max(delay, max_delay), jitter=True),
        disable_after=max(0, int(config["offload.webhooks.disable_after"])),
        disable_after_time=max(0.0, float(config["offload.webhooks.disable_after_time"])),
        log_size=log_size,
        policy=DestinationPolicy.from_entries(config["offload.webhooks.allowed_hosts"]),
    )


# -- destinations (SSRF guard) -----------------------------------------------------------------------------------
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_internal(address: IPAddress) -> bool:
    """True for every address a webhook must not reach by default: loopback, private, link-local,
    multicast, unspecified, reserved and other non-global ranges (IPv4-mapped IPv6 included)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
            or address.is_unspecified or address.is_reserved or not address.is_global)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` denotes when it is an IP literal (``[::1]``, ``127.0.0.1``, and the legacy
    forms ``2130706433`` or ``0x7f.1`` that resolvers accept), else None."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", bare) and re.search(r"\d", bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """Which internal destinations a site allows (``offload.webhooks.allowed_hosts``)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    allow_all: bool = False

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> DestinationPolicy:
        hosts, networks, allow_all = set(), [], False
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                allow_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks), allow_all)

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is allow-listed (then any address it resolves to is accepted)."""
        return self.allow_all or host.strip("[]").lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        if self.allow_all or not is_internal(address):
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in net for a in candidates for net in self.networks if a.version == net.version)

    def check(self, host: str, address: IPAddress) -> None:
        """Raise ``DestinationRefused`` unless connecting to ``address`` for ``host`` is allowed."""
        if not (self.allows_host(host) or self.allows_address(address)):
            shown = host if host.strip("[]") == str(address) else f"{host} ({address})"
            raise DestinationRefused(
                f"refused to deliver to {shown}: an internal address (loopback, private, link-local or "
                "multicast); add it to offload.webhooks.allowed_hosts to allow it"
            )


def check_url(url: str, policy: DestinationPolicy) -> str:
    """Validate a webhook URL when it is added: http(s), a host, and no refused literal address."""
    if not isinstance(url, str) or len(url) > 2000:
        raise ValueError("the webhook URL must be a string of at most 2000 characters")
    try:
        parts = urlsplit(url.strip())
        if parts.port == 0:  # reading .port also raises ValueError for a malformed one
            raise ValueError("port 0")
    except ValueError as exc:
        raise ValueError(f"invalid webhook URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid webhook URL {url!r}: use http:// or https:// and a host")
    address = literal_address(parts.hostname)
    if address is not None:
        policy.check(parts.hostname, address)
    return url.strip()


def safe_url(url: str) -> str:
    """Scheme, host and port only: webhook paths and query strings often are secrets themselves."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..."
    except ValueError:
        return "(invalid URL)"


# -- signing -----------------------------------------------------------------------------------------------------
def generate_secret() -> str:
    """A new random secret: ``whsec_`` followed by 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except ValueError:
            pass
    return secret.encode("utf-8")


def sign(secret: str | bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 over "<message_id>.<timestamp>.<body>">``. A ``whsec_`` secret's key is the
    base64 text after the prefix; any other secret is used as UTF-8 bytes."""
    digest = hmac.new(_key(secret), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signing_secrets(subscription: dict[str, Any], now: float) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one until it expires."""
    found = [subscription["secret"]]
    previous, until = subscription.get("previous_secret"), subscription.get("previous_secret_expires_at")
    if previous and until is not None and now < float(until):
        found.append(previous)
    return found


class _Headers(Protocol):
    def items(self) -> Iterable[tuple[str, str]]: ...


def verify(headers: _Headers, body: bytes | str, secret: str | bytes | Sequence[str | bytes],
           tolerance: float = 300, now: float | None = None) -> Any:
    """Check a webhook request and return its decoded JSON body; raise ``WebhookVerificationError`` when
    a header is missing, the timestamp is more than ``tolerance`` seconds away from now, or no signature
    matches ``secret`` (or any of several secrets). ``headers`` is anything with ``items()``."""
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if not lower.get(name):
            raise WebhookVerificationError(f"missing header {name}")
    message_id, signatures = lower["webhook-id"], lower["webhook-signature"]
    try:
        timestamp = int(lower["webhook-timestamp"])
    except ValueError:
        raise WebhookVerificationError("the webhook-timestamp header is not an integer") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"the timestamp is {abs(now - timestamp):.0f} s {'old' if timestamp < now else 'in the future'}, "
            f"more than the {tolerance:g} s tolerated (a replayed or delayed request)"
        )
    raw = body.encode("utf-8") if isinstance(body, str) else body
    keys = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    expected = [sign(key, message_id, timestamp, raw).encode("ascii") for key in keys]
    for candidate in signatures.split():
        if any(hmac.compare_digest(candidate.encode("ascii", "replace"), e) for e in expected):
            try:
                return json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no signature matches the secret")


# -- the envelope ------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Offload's JSON extensions as receivers expect them: ISO dates, strings for UUID and Decimal, base64."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def envelope(event: Event) -> bytes:
    """The JSON body of a delivery (the same bytes on every attempt)."""
    stamp = event.time.isoformat(timespec="microseconds").replace("+00:00", "Z")
    body = {"id": event.id, "timestamp": stamp, "routing_key": event.routing_key, "operation": event.operation,
            "payload": _plain(event.payload)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- subscriptions -----------------------------------------------------------------------------------------------
def _check_secret(secret: str) -> str:
    if not isinstance(secret, str) or not 16 <= len(secret) <= 200 or any(c.isspace() for c in secret):
        raise ValueError("a webhook secret must be 16-200 characters without spaces (or leave it out to get one)")
    return secret


def add(app: Offload, url: str, routing_keys: Sequence[str] = ("*",), operations: Sequence[str] = ("*",),
        description: str = "", secret: str | None = None, active: bool = True) -> dict[str, Any]:
    """Store a new subscription and return it, secret included (show it once; it is masked afterwards)."""
    settings = webhook_settings(app.config)
    record: dict[str, Any] = {
        "id": new_id()[:16],
        "url": check_url(url, settings.policy),
        "routing_keys": check_patterns(routing_keys or ["*"], "routing key"),
        "operations": check_patterns(operations or ["*"], "operation"),
        "description": _check_description(description),
        "active": bool(active),
        "secret": _check_secret(secret) if secret is not None else generate_secret(),
        "previous_secret": None,
        "previous_secret_expires_at": None,
        "created_at": time.time(),
        "updated_at": time.time(),
        "disabled_reason": None,
        "disabled_at": None,
    }
    app.store.put_record(KIND, record["id"], record)
    log.info("Webhook %s added: %s", record["id"], safe_url(record["url"]))
    return record


def _check_description(text: str | None) -> str:
    if text is None:
        return ""
    if not isinstance(text, str) or len(text) > 500:
        raise ValueError("the description must be a string of at most 500 characters")
    return text


def get(app: Offload, webhook_id: str) -> dict[str, Any]:
    """The subscription with this id (or unique id prefix of at least 4 characters), secret included."""
    if isinstance(webhook_id, str) and re.fullmatch(r"[0-9a-f]{1,16}", webhook_id):
        record = app.store.get_record(KIND, webhook_id)
        if record is not None:
            return record
        if len(webhook_id) >= 4:
            found = [data for key, data in app.store.list_records(KIND) if key.startswith(webhook_id)]
            if len(found) == 1:
                return found[0]
    raise WebhookNotFound(f'There is no webhook with ID "{webhook_id}"')


def list_all(app: Offload) -> list[dict[str, Any]]:
    """Every subscription of the site (secrets included), oldest first."""
    return sorted((data for _, data in app.store.list_records(KIND)), key=lambda d: d.get("created_at", 0))


def remove(app: Offload, webhook_id: str) -> dict[str, Any]:
    """Delete a subscription with its delivery log; its pending deliveries will be skipped."""
    record = get(app, webhook_id)
    app.store.delete_record(KIND, record["id"])
    app.store.delete_record(HEALTH_KIND, record["id"])
    for key, _ in app.store.list_records(DELIVERY_KIND_PREFIX + record["id"]):
        app.store.delete_record(DELIVERY_KIND_PREFIX + record["id"], key)
    log.info("Webhook %s removed", record["id"])
    return record


def set_active(app: Offload, webhook_id: str, active: bool, reason: str | None = None) -> dict[str, Any]:
    """Enable (failure count reset) or disable a subscription."""
    record = get(app, webhook_id)
    now = time.time()
    record.update(active=active, updated_at=now, disabled_reason=None if active else (reason or "disabled by hand"),
                  disabled_at=None if active else now)
    app.store.put_record(KIND, record["id"], record)
    if active:
        app.store.delete_record(HEALTH_KIND, record["id"])
    log.info("Webhook %s %s", record["id"], "enabled" if active else "disabled")
    return record


def rotate_secret(app: Offload, webhook_id: str, secret: str | None = None,
                  overlap: float = 86400.0) -> dict[str, Any]:
    """Give a subscription a new secret; the old one keeps signing (second signature) for ``overlap`` s."""
    record = get(app, webhook_id)
    now = time.time()
    record.update(previous_secret=record["secret"], previous_secret_expires_at=now + max(0.0, overlap),
                  secret=_check_secret(secret) if secret is not None else generate_secret(), updated_at=now)
    app.store.put_record(KIND, record["id"], record)
    log.info("Webhook %s: secret rotated", record["id"])
    return record


def mask(secret: str | None) -> str | None:
    if not secret:
        return None
    head = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    return f"{head}****{secret[-4:]}"


def health(app: Offload, webhook_id: str) -> dict[str, Any]:
    """Consecutive failed deliveries, when failing started, the last success and failure."""
    return app.store.get_record(HEALTH_KIND, webhook_id) or {}


def public_view(app: Offload, record: dict[str, Any]) -> dict[str, Any]:
    """A subscription as the CLI and the API show it: secrets masked, health added."""
    view = {k: v for k, v in record.items() if k not in ("secret", "previous_secret")}
    view["secret"] = mask(record.get("secret"))
    view["previous_secret"] = mask(record.get("previous_secret"))
    view["health"] = health(app, record["id"])
    return view


def deliveries(app: Offload, webhook_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` delivery attempts of a webhook, newest first (from its bounded log)."""
    record = get(app, webhook_id)
    entries = app.store.list_records(DELIVERY_KIND_PREFIX + record["id"])
    return [data for _, data in reversed(entries[-limit:])] if limit > 0 else []


def send_test(app: Offload, webhook_id: str) -> Job:
    """Enqueue a test event (``offload test``) for one webhook, even a disabled one; returns the job."""
    record = get(app, webhook_id)
    event = make_test_event()
    settings = webhook_settings(app.config)
    return app.enqueue(DELIVERY_FUNCTION, [event.to_dict(), record["id"], True],
                       title=f"{event.describe()} -> webhook {record['id']}", queue=WEBHOOK_QUEUE,
                       timeout=settings.job_timeout, max_attempts=1,
                       meta={"event_id": event.id, "subscriber": f"webhook:{record['id']}", "test": True})


def make_test_event() -> Event:
    return Event(new_id(), time.time(), TEST_ROUTING_KEY, TEST_OPERATION,
                 {"message": "A test event from offload"}, ())


def delivery_calls(app: Offload, event: Event) -> list[dict[str, Any]]:
    """``enqueue_many`` calls delivering ``event`` to each active subscription whose filter matches."""
    subscriptions = [data for _, data in app.store.list_records(KIND)
                     if data.get("active") and matches(data.get("routing_keys"), event.routing_key)
                     and matches(data.get("operations"), event.operation)]
    if not subscriptions:
        return []
    settings = webhook_settings(app.config)
    return [{"fn": DELIVERY_FUNCTION, "args": [event.to_dict(), sub["id"]],
             "title": f"{event.describe()} -> webhook {sub['id']}", "queue": WEBHOOK_QUEUE,
             "max_attempts": settings.max_attempts, "retry": settings.retry, "timeout": settings.job_timeout,
             "meta": {"event_id": event.id, "routing_key": event.routing_key, "operation": event.operation,
                      "subscriber": f"webhook:{sub['id']}"}}
            for sub in sorted(subscriptions, key=lambda s: str(s["id"]))]
