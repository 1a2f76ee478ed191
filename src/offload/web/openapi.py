"""The OpenAPI 3 document of the API, generated from the action registry."""

from __future__ import annotations

from typing import Any

from offload.version import __version__
from offload.web.actions import Action, registered_actions

_ERROR = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "help": {"type": "string"},
        "success": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["__type"],
            "properties": {"__type": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": True,
        },
    },
}

_ERROR_RESPONSES = {
    "400": ("Bad request: the body is neither a JSON object nor a form, parameters were sent in the URL of a POST, "
            "the action is unknown, or GET was used for an action that changes data"),
    "403": "Authorization error: no valid token, or the token's role does not allow the action",
    "404": "Not found: the job (or other object) does not exist",
    "409": 'Validation error: parameters are missing, invalid or unknown ({"id": ["Missing value"]}, '
           '{"queue": ["Unknown parameter: did you mean queues?"]}), or the job\'s state does not allow the action '
           "(Conflict Error)",
    "503": "The job store cannot be reached",
}


def _envelope(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["help", "success", "result"],
        "properties": {"help": {"type": "string"}, "success": {"type": "boolean", "enum": [True]}, "result": result},
    }


def _responses(act: Action) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "Success", "content": {"application/json": {"schema": _envelope(act.result)}}},
    }
    for code, text in _ERROR_RESPONSES.items():
        responses[code] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    return responses


def _operation(act: Action, method: str) -> dict[str, Any]:
    summary, _, _ = act.help.partition("\n")
    op: dict[str, Any] = {
        "operationId": f"{act.name}_{method}",
        "summary": summary,
        "description": f"{act.help}\n\nRole: `{act.role}`.",
        "tags": ["actions"],
        "responses": _responses(act),
    }
    if method == "get":
        op["parameters"] = [
            {"name": name, "in": "query", "required": p.required, "description": p.help,
             "schema": p.query_schema(), **({"style": "form", "explode": True}
                                            if p.query_schema().get("type") == "array" else {})}
            for name, p in act.params.items()
        ]
    else:
        properties = {name: {**p.schema(), "description": p.help} for name, p in act.params.items()}
        required = [name for name, p in act.params.items() if p.required]
        body_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            body_schema["required"] = required
        op["requestBody"] = {"required": bool(required),
                             "content": {"application/json": {"schema": body_schema}}}
    return op


def document(server_url: str) -> dict[str, Any]:
    """The OpenAPI document; ``server_url`` is where the app is mounted (its script root)."""
    paths: dict[str, Any] = {}
    for name, act in registered_actions().items():
        item: dict[str, Any] = {}
        if act.side_effect_free:
            item["get"] = _operation(act, "get")
        item["post"] = _operation(act, "post")
        paths[f"/api/3/action/{name}"] = item
    paths["/healthz"] = {"get": {
        "operationId": "healthz", "summary": "Whether the job store answers (no token needed)", "security": [],
        "tags": ["operations"],
        "responses": {
            "200": {"description": "The store answers",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "503": {"description": "The store cannot be reached",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
        }}}
    paths["/metrics"] = {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (text exposition format 0.0.4)",
        "tags": ["operations"],
        "responses": {
            "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "403": {"description": "No valid token", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "503": {"description": "The store cannot be reached",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
        }}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "offload API",
            "version": __version__,
            "description": "CKAN-compatible action API of offload's background jobs. Every action is "
                           "`/api/3/action/<name>`: GET with query parameters (actions that change nothing) or "
                           "POST with a JSON object (with or without `Content-Type: application/json`) or a form. "
                           "Unknown parameters are refused. Send the token as `Authorization: <token>`.",
        },
        "servers": [{"url": server_url or "/"}],
        "security": [{"apiToken": []}],
        "components": {"securitySchemes": {"apiToken": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
        "paths": paths,
    }
