"""One webhook delivery attempt: the guarded HTTP POST, what its answer means, and what is recorded.

On httpx, a dependency of offload's core install. Redirects are never followed and proxies from the
environment are ignored, so the address checked is the address the request goes to. The check runs in
the connection pool's network backend: the host name is resolved once, each resolved address is checked,
and the socket is opened to that checked address (TLS still verifies the certificate against the host
name), so a DNS answer that changes between a check and the connection (DNS rebinding) cannot slip through.

Outcomes: 2xx delivered; 5xx, 429 and network errors (refused, reset, timed out) are retried with the
subscription's exponential backoff, or after ``Retry-After`` when the receiver sends one; 3xx and other 4xx
fail at once (410 Gone also disables the webhook); a refused destination fails at once. Each attempt is
appended to the webhook's bounded delivery log; consecutive failed deliveries disable the webhook.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offload.events.webhooks import WebhookError

try:
    import httpcore
    import httpx
except ImportError as exc:  # installed without its dependencies (pip --no-deps): say what to install
    raise WebhookError(f"webhook deliveries need httpx, a dependency of offload: pip install 'httpx>=0.27' ({exc})"
                       ) from exc

from offload.context import current_job
from offload.events.event import Event
from offload.events.webhooks import (
    DELIVERY_KIND_PREFIX,
    HEALTH_KIND,
    KIND,
    DeliveryFailed,
    DestinationPolicy,
    DestinationRefused,
    IPAddress,
    WebhookSettings,
    envelope,
    safe_url,
    sign,
    signing_secrets,
    webhook_settings,
)
from offload.jobs import new_id
from offload.retry import Retry
from offload.version import __version__

if TYPE_CHECKING:
    from offload.app import Offload

log = logging.getLogger("offload.webhooks")

EXCERPT_BYTES = 2048
EXCERPT_CHARS = 500
Resolver = Callable[[str, int], list[IPAddress]]


def system_resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to, in the resolver's order, without duplicates."""
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        try:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except ValueError:
            continue
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to addresses the destination policy allows."""

    def __init__(self, policy: DestinationPolicy, resolve: Resolver = system_resolve) -> None:
        self.policy = policy
        self.resolve = resolve
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self.resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        allowed = []
        refusal: DestinationRefused | None = None
        for address in addresses:
            try:
                self.policy.check(host, address)
                allowed.append(address)
            except DestinationRefused as exc:
                refusal = refusal or exc
        if not allowed:
            assert refusal is not None
            raise refusal
        failure: Exception | None = None
        for address in allowed:
            try:
                return self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise DestinationRefused("webhooks cannot be delivered to Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connection pool uses ``GuardedBackend``. httpx has no public way to
    pass a network backend, so the pool it builds is replaced by an equivalent one that has it."""

    def __init__(self, policy: DestinationPolicy, resolve: Resolver = system_resolve) -> None:
        super().__init__(trust_env=False, retries=0)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedBackend(policy, resolve),
        )


def guarded_client(policy: DestinationPolicy, timeout: float, resolve: Resolver = system_resolve) -> httpx.Client:
    """An httpx client for webhook deliveries: destination guard, no redirects, no environment proxies."""
    return httpx.Client(transport=GuardedTransport(policy, resolve), timeout=httpx.Timeout(timeout),
                        follow_redirects=False, trust_env=False,
                        headers={"user-agent": f"offload-webhooks/{__version__}"})


_clients: dict[tuple[DestinationPolicy, float], httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(settings: WebhookSettings) -> httpx.Client:
    """One client per process and settings, so deliveries to the same receiver reuse connections."""
    key = (settings.policy, settings.timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = guarded_client(settings.policy, settings.timeout)
        return client


# -- one attempt -------------------------------------------------------------------------------------------------
@dataclass
class Attempt:
    """What one POST produced: an HTTP status and response excerpt, or an error."""

    status: int | None = None
    response: str = ""
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    latency_ms: float = 0.0

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], deadline: float) -> Attempt:
    """POST once and classify the answer (never raises for HTTP or network failures)."""
    started = time.perf_counter()
    attempt = Attempt()
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            attempt.status = response.status_code
            attempt.response = _excerpt(response, deadline)
            attempt.retry_after = retry_after_seconds(response.headers.get("retry-after"), time.time())
    except DestinationRefused as exc:
        attempt.error = str(exc)
    except httpx.TimeoutException as exc:
        attempt.error, attempt.retryable = f"timed out ({type(exc).__name__})", True
    except httpx.TransportError as exc:
        attempt.error, attempt.retryable = f"{type(exc).__name__}: {exc}", True
    attempt.latency_ms = round((time.perf_counter() - started) * 1000, 1)
    if attempt.status is not None:
        attempt.retryable = attempt.status == 429 or attempt.status >= 500
        if not attempt.delivered:
            attempt.error = _status_error(attempt.status)
    return attempt


def _excerpt(response: httpx.Response, deadline: float) -> str:
    """The start of the response body; the rest is not read (nor waited for past the deadline)."""
    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= EXCERPT_BYTES or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass
    return data[:EXCERPT_BYTES].decode("utf-8", "replace")[:EXCERPT_CHARS]


def _status_error(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; give the webhook its final URL"
    if status == 410:
        return "HTTP 410 Gone: the receiver asked for no more deliveries; the webhook is disabled"
    return f"HTTP {status}"


# -- the delivery job --------------------------------------------------------------------------------------------
def deliver(app: Offload, event: Event, webhook_id: str, test: bool = False,
            client: httpx.Client | None = None) -> dict[str, Any]:
    """Deliver ``event`` to one webhook (one attempt). Inside a job, a retryable failure raises ``Retry``
    or a retryable ``DeliveryFailed``, a permanent one a non-retryable ``DeliveryFailed``; returns
    ``{"status", "latency_ms"}`` when delivered, ``{"skipped": reason}`` for a removed or disabled webhook."""
    subscription = app.store.get_record(KIND, webhook_id)
    if subscription is None:
        log.info("Delivery of event %s to webhook %s skipped: the webhook was removed", event.id, webhook_id)
        return {"skipped": "the webhook was removed"}
    if not subscription.get("active") and not test:
        log.info("Delivery of event %s to webhook %s skipped: the webhook is disabled", event.id, webhook_id)
        return {"skipped": "the webhook is disabled"}
    settings = webhook_settings(app.config)
    job = current_job()
    message_id = f"msg_{job.id if job is not None else new_id()}"
    attempt_no, last = (job.attempt, job.attempt >= job.max_attempts) if job is not None else (1, True)
    body = envelope(event)
    now = time.time()
    timestamp = int(now)
    signature = " ".join(sign(s, message_id, timestamp, body) for s in signing_secrets(subscription, now))
    headers = {"content-type": "application/json", "webhook-id": message_id,
               "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    result = post(client or _client(settings), subscription["url"], body, headers,
                  time.monotonic() + settings.timeout)
    will_retry = result.retryable and not last
    outcome = "delivered" if result.delivered else ("retrying" if will_retry else "failed")
    _record(app, settings, subscription, event, job.id if job is not None else None, message_id, attempt_no,
            result, outcome, test)
    if result.delivered:
        log.info("Event %s delivered to webhook %s (%s): HTTP %s in %.0f ms", event.id, webhook_id,
                 safe_url(subscription["url"]), result.status, result.latency_ms)
        if not test:
            _succeeded(app, webhook_id)
        return {"status": result.status, "latency_ms": result.latency_ms}
    if not test:
        _failed(app, settings, subscription, result, final=not will_retry)
    failure = DeliveryFailed(f"webhook {webhook_id} ({safe_url(subscription['url'])}): {result.error}",
                             retryable=result.retryable)
    if will_retry and result.retry_after is not None:
        raise Retry(countdown=min(result.retry_after, settings.retry.max_delay), exc=failure)
    raise failure


def _record(app: Offload, settings: WebhookSettings, subscription: dict[str, Any], event: Event,
            job_id: str | None, message_id: str, attempt: int, result: Attempt, outcome: str, test: bool) -> None:
    """Append the attempt to the webhook's delivery log and drop the oldest entries beyond its size."""
    kind = DELIVERY_KIND_PREFIX + subscription["id"]
    now = time.time()
    entry = {"at": now, "job_id": job_id, "message_id": message_id, "event_id": event.id,
             "routing_key": event.routing_key, "operation": event.operation, "attempt": attempt,
             "status": result.status, "latency_ms": result.latency_ms, "response": result.response,
             "error": result.error, "outcome": outcome, "test": test}
    app.store.put_record(kind, f"{int(now * 1e6):020d}-{message_id}-{attempt}", entry)
    entries = app.store.list_records(kind)
    for key, _ in entries[: max(0, len(entries) - settings.log_size)]:
        app.store.delete_record(kind, key)


def _succeeded(app: Offload, webhook_id: str) -> None:
    health = app.store.get_record(HEALTH_KIND, webhook_id) or {}
    if health.get("failures") or health.get("failing_since") or not health.get("last_success_at"):
        app.store.put_record(HEALTH_KIND, webhook_id, {**health, "failures": 0, "failing_since": None,
                                                       "last_success_at": time.time()})


def _failed(app: Offload, settings: WebhookSettings, subscription: dict[str, Any], result: Attempt,
            final: bool) -> None:
    """Count a failed attempt (``final``: the delivery gave up) and disable the webhook when it has failed
    too often or too long. Concurrent deliveries may race on the counter; it is a threshold, not a ledger."""
    webhook_id = subscription["id"]
    now = time.time()
    health = app.store.get_record(HEALTH_KIND, webhook_id) or {}
    failures = int(health.get("failures") or 0) + (1 if final else 0)
    since = health.get("failing_since") or now
    app.store.put_record(HEALTH_KIND, webhook_id, {**health, "failures": failures, "failing_since": since,
                                                   "last_failure_at": now, "last_error": result.error})
    reason = None
    if result.status == 410:
        reason = "the receiver answered 410 Gone"
    elif final and settings.disable_after and failures >= settings.disable_after:
        reason = f"{failures} consecutive deliveries failed"
    elif settings.disable_after_time and now - float(since) >= settings.disable_after_time:
        reason = f"no delivery succeeded for {(now - float(since)) / 86400:.1f} days"
    if reason is not None:
        _disable(app, webhook_id, f"{reason}; last error: {result.error}")


def _disable(app: Offload, webhook_id: str, reason: str) -> None:
    record = app.store.get_record(KIND, webhook_id)  # read again: an administrator may have changed it
    if record is None or not record.get("active"):
        return
    now = time.time()
    record.update(active=False, disabled_reason=reason, disabled_at=now, updated_at=now)
    app.store.put_record(KIND, webhook_id, record)
    log.error("Webhook %s (%s) disabled: %s. Fix the receiver, then: offload webhooks enable %s",
              webhook_id, safe_url(record["url"]), reason, webhook_id)


def deliver_to_webhook(event: dict[str, Any], webhook_id: str, test: bool = False) -> dict[str, Any]:
    """Job function: POST ``event`` to webhook ``webhook_id`` on the default site."""
    from offload.default import default_app

    return deliver(default_app(), Event.from_dict(event), webhook_id, test=test)
