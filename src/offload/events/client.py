"""``offload.Client``: a small client for CKAN-style action APIs (``/api/3/action/<name>``).

It speaks to offload's management API and, since the envelope is CKAN's, to the host application's own
action API: the pattern for a consumer that calls back into the application.

    with offload.Client("http://localhost:8800", token) as api:
        api.call("job_list", state=["failed"])
        api.job_show("0123abcd...")

Inside a consumer's delivery the client sends the ``Offload-Origin`` header (the event's origin chain plus
this consumer); the application passes it to ``offload.notify(..., origin=request.headers.get("Offload-Origin"))``
so the events the callback causes are not delivered back to the consumer that caused them.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from offload.errors import OffloadError
from offload.events.event import ORIGIN_HEADER, current_origin, format_origin, parse_origin
from offload.version import __version__

if TYPE_CHECKING:
    import httpx


class APIError(OffloadError):
    """The API answered with an error (``success: false``) or not at all.

    ``status`` is the HTTP status (None when the API could not be reached), ``error_type`` CKAN's
    ``__type`` and ``error`` the whole error object (for a validation error, the field messages)."""

    def __init__(self, message: str | None = None, status: int | None = None, error_type: str | None = None,
                 error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.error = error or {}


class APIUnavailable(APIError):
    """The API cannot be reached, or answered with something that is not its JSON envelope."""


class NotAuthorized(APIError):
    """The token is missing or invalid, or its role does not allow the action."""


class NotFound(APIError):
    """The object does not exist."""


class ValidationError(APIError):
    """The parameters are not valid; ``error`` maps each field to its messages."""


_BY_STATUS: dict[int, type[APIError]] = {401: NotAuthorized, 403: NotAuthorized, 404: NotFound,
                                         409: ValidationError}
_BY_TYPE: dict[str, type[APIError]] = {"Authorization Error": NotAuthorized, "Not Found Error": NotFound,
                                       "Validation Error": ValidationError}


class Client:
    """Calls actions on ``url`` (the site root, e.g. ``https://data.example.org``) with ``token``.

    ``origin`` is the origin chain sent as ``Offload-Origin`` (default: the chain of the delivery running in
    this thread, if any). ``transport`` replaces httpx's (tests)."""

    def __init__(self, url: str, token: str | None = None, *, origin: str | Sequence[str] | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - depends on the installation
            raise OffloadError("offload.Client needs httpx: pip install 'offload[webhooks]'") from None
        self.url = url.rstrip("/")
        self.origin = parse_origin(origin) if origin is not None else current_origin()
        headers = {"user-agent": f"offload-client/{__version__}", "accept": "application/json"}
        if token:
            headers["authorization"] = token
        if self.origin:
            headers[ORIGIN_HEADER.lower()] = format_origin(self.origin)
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, action: str, **params: Any) -> Any:
        """POST ``params`` as JSON to ``/api/3/action/<action>``; return ``result`` or raise an ``APIError``."""
        import httpx

        endpoint = f"{self.url}/api/3/action/{action}"
        try:
            response = self._http.post(endpoint, json=params)
        except httpx.HTTPError as exc:
            raise APIUnavailable(f"{action}: cannot reach {self.url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "success" not in body:
            raise APIUnavailable(f"{action}: HTTP {response.status_code} without an action API envelope "
                                 f"from {endpoint}: {response.text[:200]!r}", status=response.status_code)
        if body["success"] is True:
            return body.get("result")
        raw_error = body.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        error_type = error.get("__type")
        cls = _BY_TYPE.get(str(error_type)) or _BY_STATUS.get(response.status_code, APIError)
        message = error.get("message") or "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in error.items() if k != "__type")
        raise cls(f"{action}: {error_type or 'Error'}: {message}", status=response.status_code,
                  error_type=error_type, error=error)

    # -- offload's own actions ---------------------------------------------------------------------------------
    def job_show(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("job_show", id=job_id)
        return result

    def job_list(self, **params: Any) -> list[Any]:
        result: list[Any] = self.call("job_list", **params)
        return result

    def job_cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("job_cancel", id=job_id)
        return result

    def job_retry(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("job_retry", id=job_id)
        return result
