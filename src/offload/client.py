"""``offload.client``: the import path of ``Client`` and its errors before events became a package; the code is in
``offload.events.client``."""

from offload.events.client import APIError, APIUnavailable, Client, NotAuthorized, NotFound, ValidationError

__all__ = ["APIError", "APIUnavailable", "Client", "NotAuthorized", "NotFound", "ValidationError"]
