"""HTTP routes of the API: CKAN's action envelope, errors, token auth, ``/healthz``, ``/metrics`` and the
OpenAPI document.

    {"help": ".../api/3/action/help_show?name=job_show", "success": true, "result": {...}}
    {"help": "...", "success": false, "error": {"__type": "Not Found Error", "message": "Not found: ..."}}

Status codes follow CKAN: 400 bad request (a body that is neither a JSON object nor a form, unknown action), 403
authorization, 404 not found, 409 validation (``{"__type": "Validation Error", "id": ["Missing value"]}``, unknown
parameters included) and state conflicts; 503 when the store cannot be reached. Bad input never produces a 500.

How a POST body is read (docs/api.md, "Request bodies"): JSON with ``Content-Type: application/json``; without
it (curl's ``-d`` sends ``application/x-www-form-urlencoded``, ``requests.post(data=str)`` sends none) a body that
starts with ``{`` is JSON too, a form of a single key holding JSON is that JSON (CKAN's rule, what curl's
``--data-urlencode`` sends), and anything else must be a well-formed form.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import HTTPException

from offload.errors import StoreError
from offload.web import metrics, openapi
from offload.web.actions import ActionContext, ActionError, BadRequest, NotAuthorized, get_action
from offload.web.auth import TOKEN_HEADERS, token_from_headers
from offload.web.state import web_state

log = logging.getLogger("offload.web")

bp = Blueprint("offload_api", __name__)

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
# Read as JSON or form by their content: what clients send when they do not say (curl -d, requests' str data).
GUESSED_TYPES = ("", FORM_TYPE, "text/plain")
MAX_FORM_FIELDS = 1000


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=JSON_TYPE)


def request_role() -> str | None:
    """The role of the token this request carries, or None."""
    headers = {name: request.headers.get(name, "") for name in TOKEN_HEADERS}
    return web_state().tokens.role_for(token_from_headers(headers))


def request_caller() -> str:
    """Who sends this request, for the log of destructive actions: which configured token (its place in
    ``offload.api.tokens``, never the token) and the client's address."""
    headers = {name: request.headers.get(name, "") for name in TOKEN_HEADERS}
    token = web_state().tokens.describe(token_from_headers(headers))
    return f"{token} from {request.remote_addr or 'an unknown address'} (API)"


def help_url(name: str) -> str:
    return url_for("offload_api.call_action", name="help_show", _external=True) + "?" + urlencode({"name": name})


def error_response(exc: ActionError, name: str = "") -> Response:
    body: dict[str, Any] = {"success": False, "error": exc.body()}
    if name:
        body = {"help": help_url(name), **body}
    return json_response(body, exc.status)


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


def request_data() -> tuple[dict[str, Any], bool]:
    """The action's parameters and whether they came as text (query string or form) rather than JSON."""
    if request.method == "GET":
        return _multi(request.args), True
    if request.args:
        raise BadRequest(f"parameters in the URL of a POST are not read ({', '.join(sorted(request.args))[:200]}): "
                         "send them in the body, as a JSON object or a form")
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        data = _multi(request.form)
        data.update((name, "(a file)") for name in request.files)
        return _single_json_key(data) or (data, True)
    body = request.get_data(cache=False)
    if not body.strip():
        return {}, False
    if mimetype == JSON_TYPE or mimetype.endswith("+json"):
        return _json_object(body), False
    if mimetype not in GUESSED_TYPES:
        raise BadRequest(f"cannot read a body of type {mimetype}: send a JSON object (Content-Type: {JSON_TYPE}) "
                         f"or a form ({FORM_TYPE})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text: send a JSON object or a form") from None
    if text.lstrip().startswith(("{", "[")):
        return _json_object(text), False
    return _form(text)


def _json_object(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"JSON Error: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"JSON Error: the request body must be a JSON object, not {type(data).__name__}")
    return data


def _single_json_key(form: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """CKAN's rule: a form whose only field is named by JSON text, with an empty value (or "1"), is that JSON.
    What ``curl --data-urlencode '{...}'`` and some browser code send. None for any other form."""
    if len(form) != 1:
        return None
    key, value = next(iter(form.items()))
    if value not in ("", "1") or not key.lstrip().startswith(("{", "[")):
        return None
    return _json_object(key), False


def _form(text: str) -> tuple[dict[str, Any], bool]:
    """A form body (``name=value&...``), strictly: every field has a name and an ``=``."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8 once decoded: send a JSON object or a UTF-8 form") from None
    except ValueError:
        raise BadRequest(f"the form has more than {MAX_FORM_FIELDS} fields") from None
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key not in data:
            data[key] = value
        elif isinstance(data[key], list):
            data[key].append(value)
        else:
            data[key] = [data[key], value]
    single = _single_json_key(data)
    if single is not None:
        return single
    for field in text.split("&"):
        if field and ("=" not in field or field.startswith("=")):
            shown = field if len(field) <= 60 else field[:60] + "..."
            raise BadRequest(f"the body is neither a JSON object nor a form: {shown!r} is not a name=value field")
    return data, True


def _multi(values: Any) -> dict[str, Any]:
    """A MultiDict as a dict: one value stays a string, a repeated key becomes a list."""
    out: dict[str, Any] = {}
    for key in values:
        items = values.getlist(key)
        out[key] = items[0] if len(items) == 1 else items
    return out


@bp.route("/api/action/<name>", methods=["GET", "POST"])
@bp.route("/api/3/action/<name>", methods=["GET", "POST"])
def call_action(name: str) -> Response:
    try:
        role = request_role()
        if role is None:
            raise NotAuthorized("send a valid API token in the Authorization header")
        try:
            act = get_action(name)
        except KeyError:
            raise BadRequest(f"Action name not known: {name}") from None
        if not act.allowed(role):
            raise NotAuthorized(f"the {role} role may not call {name}")
        if request.method == "GET" and not act.side_effect_free:
            raise BadRequest(f"{name} changes data: call it with POST")
        data, from_text = request_data()
        result = act(ActionContext(web_state().offload, role, request_caller()), data, from_text)
    except ActionError as exc:
        if exc.status == 409:
            log.info("Validation error (action API, %s): %s", name, exc.detail)
        return error_response(exc, name)
    except StoreError as exc:
        log.error("Action %s: the store failed: %s", name, exc)
        return json_response({"help": help_url(name), "success": False, "error": {
            "__type": "Service Unavailable", "message": "The job store cannot be reached; try again later"}}, 503)
    return json_response({"help": help_url(name), "success": True, "result": result})


@bp.route("/api/3/openapi.json")
def openapi_document() -> Response:
    if request_role() is None:
        return error_response(NotAuthorized("send a valid API token in the Authorization header"))
    return json_response(openapi.document(request.script_root))


@bp.route("/healthz")
def healthz() -> Response:
    """Whether the store answers; no token needed, and nothing about the store is revealed."""
    try:
        web_state().offload.store.ping()
    except Exception as exc:
        log.error("Health check: the store failed: %s", exc)
        return json_response({"status": "unavailable", "store": "unreachable"}, 503)
    return json_response({"status": "ok", "store": "reachable"})


@bp.route("/metrics")
def metrics_text() -> Response:
    if request_role() is None:
        return Response("Access denied: send a valid API token in the Authorization header\n", 403,
                        mimetype="text/plain")
    try:
        text = metrics.render(web_state().offload, time.time())
    except StoreError as exc:
        log.error("Metrics: the store failed: %s", exc)
        return Response("The job store cannot be reached\n", 503, mimetype="text/plain")
    return Response(text, 200, content_type=metrics.CONTENT_TYPE)


def api_http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors (404 route, 405 method, 413 body too large) in the envelope, for API paths."""
    name = type(exc).__name__
    error = ActionError(exc.description or name)
    error.status = exc.code or 400
    error.type_name = exc.name
    error.prefix = exc.name
    return error_response(error)
