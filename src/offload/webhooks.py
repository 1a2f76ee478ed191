"""``offload.webhooks``: where webhook receivers find ``verify`` (and its error); the code is in
``offload.events.webhooks``."""

from offload.events.webhooks import (
    DeliveryFailed,
    DestinationPolicy,
    DestinationRefused,
    WebhookError,
    WebhookNotFound,
    WebhookVerificationError,
    sign,
    verify,
)

__all__ = [
    "DeliveryFailed",
    "DestinationPolicy",
    "DestinationRefused",
    "WebhookError",
    "WebhookNotFound",
    "WebhookVerificationError",
    "sign",
    "verify",
]
