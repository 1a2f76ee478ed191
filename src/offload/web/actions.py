"""The action registry: what ``/api/3/action/<name>`` can call, with each action's parameters and help.

An action is a function ``fn(ctx, data) -> result`` registered with ``@action(...)``. Its parameter schema
validates the input (every problem is reported at once, in CKAN's ``{"field": ["message"]}`` shape) and
generates the OpenAPI document, and its docstring is its help text. The registry is open: any module can
register more actions by defining them with ``@action`` and being imported; the modules in
``ACTION_MODULES`` are imported by ``create_app`` (append yours there, or import it before building the app).

    @action("job_show", role="read", params={"id": String(required=True, help="the job id")})
    def job_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
        '''Show one job.'''
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offload.app import Offload

ROLES = ("read", "admin")
MISSING = "Missing value"

audit_log = logging.getLogger("offload.web.audit")

#: Modules imported by ``create_app`` so that their ``@action`` definitions are registered.
ACTION_MODULES: list[str] = ["offload.web.job_actions", "offload.web.webhook_actions",
                              "offload.web.task_status_actions", "offload.web.schedule_actions",
                              "offload.web.search_actions"]


class ActionError(Exception):
    """Base of the errors an action raises on purpose; the API turns each into CKAN's error envelope.
    The message shown is ``prefix`` followed by the detail, as CKAN writes ``Not found: <detail>``."""

    status = 400
    type_name = "Bad Request Error"
    prefix = "Bad request"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        return f"{self.prefix} - {self.detail}" if self.detail else self.prefix

    def body(self) -> dict[str, Any]:
        return {"__type": self.type_name, "message": self.message}


class BadRequest(ActionError):
    """The request itself is malformed (not JSON, not an object, unknown action, wrong method)."""

    status = 400
    type_name = "Bad Request Error"


class NotAuthorized(ActionError):
    """No valid token, or the token's role does not allow the action."""

    status = 403
    type_name = "Authorization Error"
    prefix = "Access denied"

    @property
    def message(self) -> str:
        return f"{self.prefix}: {self.detail}" if self.detail else self.prefix


class NotFound(ActionError):
    """The object named by the request does not exist."""

    status = 404
    type_name = "Not Found Error"
    prefix = "Not found"

    @property
    def message(self) -> str:
        return f"{self.prefix}: {self.detail}" if self.detail else self.prefix


class ValidationError(ActionError):
    """Parameters failed validation: ``errors`` maps each parameter to its messages (HTTP 409)."""

    status = 409
    type_name = "Validation Error"

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = dict(errors)

    def body(self) -> dict[str, Any]:
        return {"__type": self.type_name, **self.errors}


class Conflict(ActionError):
    """The action does not apply to the object's current state (cancel a finished job, ...)."""

    status = 409
    type_name = "Conflict Error"

    @property
    def message(self) -> str:
        return self.detail


class Invalid(ValueError):
    """One parameter value is not acceptable; the message is shown to the caller."""


# -- parameter types ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A parameter: ``convert`` turns a JSON value (or, from a query string or form, a string) into the
    value the action receives, or raises ``Invalid``; ``schema`` describes it for OpenAPI."""

    help: str = ""
    required: bool = False
    default: Any = None
    #: Whether an empty value (``""``, ``[]``, null) given explicitly means the default. False for parameters
    #: whose default is "everything" in a destructive action: an empty list computed by a script must not mean all.
    blank_is_default: bool = True

    def convert(self, value: Any, from_text: bool) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def query_schema(self) -> dict[str, Any]:
        """The schema of this parameter in a query string (GET)."""
        return self.schema()


def _single(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise Invalid("Must be a single value")
        return value[0]
    return value


@dataclass(frozen=True)
class String(Param):
    max_length: int = 1000
    pattern: str | None = None
    pattern_help: str = ""
    choices: tuple[str, ...] = ()

    def convert(self, value: Any, from_text: bool) -> Any:
        value = _single(value) if from_text else value
        if not isinstance(value, str):
            raise Invalid("Must be a string")
        if self.choices and value not in self.choices:
            raise Invalid(f"Must be one of: {', '.join(self.choices)}")
        if len(value) > self.max_length:
            raise Invalid(f"Must be at most {self.max_length} characters long")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise Invalid(self.pattern_help or f"Must match {self.pattern}")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.choices:
            out["enum"] = list(self.choices)
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        return out


@dataclass(frozen=True)
class Integer(Param):
    minimum: int = 0
    maximum: int = 2**31

    def convert(self, value: Any, from_text: bool) -> Any:
        message = f"Must be an integer between {self.minimum} and {self.maximum}"
        if from_text:
            value = _single(value)
            if isinstance(value, str):
                if not re.fullmatch(r"\s*[-+]?\d{1,20}\s*", value):
                    raise Invalid(message)
                value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not self.minimum <= value <= self.maximum:
            raise Invalid(message)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Number(Param):
    minimum: float = 0.0
    maximum: float = 1e9

    def convert(self, value: Any, from_text: bool) -> Any:
        message = f"Must be a number between {_plain(self.minimum)} and {_plain(self.maximum)}"
        if from_text:
            value = _single(value)
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise Invalid(message) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(message)
        if not (math.isfinite(value) and self.minimum <= value <= self.maximum):
            raise Invalid(message)
        return float(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.minimum, "maximum": self.maximum}


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


@dataclass(frozen=True)
class Boolean(Param):
    default: Any = False

    def convert(self, value: Any, from_text: bool) -> Any:
        value = _single(value) if from_text else value
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise Invalid("Must be true or false")

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class StringList(Param):
    """A list of strings: a JSON array, or in a query string repeated keys or one comma-separated value.
    ``item`` checks each element (raising ``ValueError`` with the message to show)."""

    item: Callable[[str], Any] | None = None
    item_schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    max_items: int = 100

    def convert(self, value: Any, from_text: bool) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Invalid("Must be a list of strings")
        if from_text:
            value = [part.strip() for v in value for part in v.split(",") if part.strip()]
        if len(value) > self.max_items:
            raise Invalid(f"Must have at most {self.max_items} items")
        if self.item is not None:
            for v in value:
                try:
                    self.item(v)
                except ValueError as exc:
                    raise Invalid(str(exc)) from None
        return value

    def schema(self) -> dict[str, Any]:
        out = {"type": "array", "items": self.item_schema, "maxItems": self.max_items}
        return out if self.blank_is_default else {**out, "minItems": 1}


@dataclass(frozen=True)
class JSONValue(Param):
    """An array or an object (``kind``); from a form or query string, its JSON text."""

    kind: str = "array"

    def convert(self, value: Any, from_text: bool) -> Any:
        expected = list if self.kind == "array" else dict
        if from_text:
            value = _single(value)
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except (ValueError, RecursionError):
                    raise Invalid(f"Must be a JSON {self.kind}") from None
        if not isinstance(value, expected):
            raise Invalid(f"Must be a JSON {self.kind}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": self.kind}


# -- actions -----------------------------------------------------------------------------------------------------
@dataclass
class ActionContext:
    """What an action runs with: the site, the caller's role, and who the caller is for the log (which token and
    from where, never the token itself)."""

    offload: Offload
    role: str
    caller: str = "an unidentified caller"


def audit(ctx: ActionContext, action_name: str, what: str) -> None:
    """Log a destructive action: who called it and what it removed."""
    audit_log.warning("%s by %s: %s", action_name, ctx.caller, what)


ActionFunction = Callable[[ActionContext, dict[str, Any]], Any]


@dataclass
class Action:
    name: str
    fn: ActionFunction
    role: str
    params: dict[str, Param]
    help: str
    side_effect_free: bool
    result: dict[str, Any] = field(default_factory=dict)

    def allowed(self, role: str | None) -> bool:
        return role is not None and ROLES.index(role) >= ROLES.index(self.role)

    def validate(self, raw: Mapping[str, Any], from_text: bool) -> dict[str, Any]:
        """The parameters the action receives, or ``ValidationError`` listing every problem: unknown parameters
        (a misspelt one would otherwise be ignored, and the action run with its default), missing, invalid."""
        data: dict[str, Any] = {}
        errors = self._unknown(raw)
        for name, param in self.params.items():
            value = raw.get(name)
            if value is None or value == "" or value == []:
                if param.required:
                    errors[name] = [MISSING]
                elif name in raw and not param.blank_is_default:
                    errors[name] = [f"Must not be empty (leave {name} out for its default: {param.help})"]
                else:
                    data[name] = param.default
                continue
            try:
                data[name] = param.convert(value, from_text)
            except Invalid as exc:
                errors[name] = [str(exc)]
        if errors:
            raise ValidationError(errors)
        return data

    def _unknown(self, raw: Mapping[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for key in raw:
            if key in self.params:
                continue
            shown = key if len(key) <= 100 else key[:100] + "..."
            close = difflib.get_close_matches(key[:100], list(self.params), n=1, cutoff=0.6)
            if close:
                errors[shown] = [f"Unknown parameter: did you mean {close[0]}?"]
            elif self.params:
                errors[shown] = [f"Unknown parameter: {self.name} takes {', '.join(self.params)}"]
            else:
                errors[shown] = [f"Unknown parameter: {self.name} takes none"]
            if len(errors) >= 20:
                break
        return errors

    def __call__(self, ctx: ActionContext, raw: Mapping[str, Any], from_text: bool = False) -> Any:
        """Check the role, validate, run."""
        if not self.allowed(ctx.role):
            raise NotAuthorized(f"the {ctx.role} role may not call {self.name}")
        return self.fn(ctx, self.validate(raw, from_text))


_registry: dict[str, Action] = {}


def action(
    name: str,
    *,
    role: str,
    params: Mapping[str, Param] | None = None,
    side_effect_free: bool | None = None,
    result: dict[str, Any] | None = None,
) -> Callable[[ActionFunction], ActionFunction]:
    """Register the decorated function as action ``name``. ``role`` is the least role allowed to call it
    (``read`` or ``admin``); ``side_effect_free`` actions may be called with GET (default: read actions);
    ``result`` is the JSON schema of the result, for the OpenAPI document. The docstring is the help text."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,99}", name):
        raise ValueError(f"invalid action name {name!r}: use lowercase letters, digits and '_'")

    def register(fn: ActionFunction) -> ActionFunction:
        existing = _registry.get(name)
        if existing is not None and existing.fn.__module__ != fn.__module__:
            raise ValueError(f"action {name!r} is already registered by {existing.fn.__module__}")
        _registry[name] = Action(
            name=name,
            fn=fn,
            role=role,
            params=dict(params or {}),
            help=inspect.cleandoc(fn.__doc__ or ""),
            side_effect_free=(role == "read") if side_effect_free is None else side_effect_free,
            result=result or {},
        )
        return fn

    return register


def get_action(name: str) -> Action:
    """The action registered as ``name``; ``KeyError`` if there is none."""
    return _registry[name]


def registered_actions() -> dict[str, Action]:
    """Every registered action by name, sorted by name."""
    return {name: _registry[name] for name in sorted(_registry)}


def load_action_modules(extra: Sequence[str] = ()) -> None:
    """Import the modules that define actions (``ACTION_MODULES`` and ``extra``)."""
    for module in [*ACTION_MODULES, *extra]:
        importlib.import_module(module)
