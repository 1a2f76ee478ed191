"""Builds the Flask app: API blueprint, dashboard blueprint, error handling, session settings."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from offload import registry
from offload.app import Offload
from offload.web import api, dashboard, jobs_page, pages  # noqa: F401  (they add routes to dashboard.bp)
from offload.web.actions import ActionError, load_action_modules
from offload.web.auth import TokenTable
from offload.web.state import EXTENSION_KEY, WebState

log = logging.getLogger("offload.web")

MAX_BODY_BYTES = 1024 * 1024
API_PREFIXES = ("/api/", "/metrics", "/healthz")


def build_app(offload_app: Offload | None = None, config: Mapping[str, Any] | None = None) -> Flask:
    offload = offload_app if offload_app is not None else Offload()
    tokens = TokenTable(offload.config["offload.api.tokens"])
    # Named tasks must be registered here for job_enqueue: the API enqueues by name only.
    registry.load_registry(offload.config["offload.tasks.imports"])
    load_action_modules()

    app = Flask("offload.web")
    secret = offload.config["offload.web.secret"] or secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret,
        SESSION_COOKIE_NAME="offload_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    app.config.update(dict(config or {}))
    app.extensions[EXTENSION_KEY] = WebState(offload, tokens)
    app.register_blueprint(api.bp)
    app.register_blueprint(dashboard.bp)  # with the routes of ``pages``
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _is_api() -> bool:
    return request.path.startswith(API_PREFIXES)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if _is_api():
        return api.api_http_error(exc)
    return exc


def _unexpected_error(exc: Exception) -> Response:
    log.exception("Unexpected error on %s %s", request.method, request.path)
    if _is_api():
        error = ActionError("Internal server error")
        error.status, error.type_name = 500, "Internal Server Error"
        return api.error_response(error)
    return Response("Internal server error\n", 500, mimetype="text/plain")
