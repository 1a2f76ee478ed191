"""offload's JSON: plain JSON plus tagged datetime, date, time, UUID, Decimal, bytes and tuple values.

A tagged value is a one-key object ``{"__offload__": [tag, value]}``. A user dict that happens to have an
``__offload__`` key is itself wrapped (tag ``dict``, as key/value pairs), so decoding never mistakes user data
for a tag.
Anything else (sets, custom objects, NaN, non-string dict keys) is refused at encode time with the path of
the offending value, e.g. ``args[1]['when']``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from offload.errors import SerializationError

TAG = "__offload__"

_SCALARS = (str, int, float, bool, type(None))
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _make_encode() -> Callable[[Any], str]:
    """``_encoder.encode`` without its set-up on every call: JSONEncoder builds a new C encoder each time, which
    for a job's small payload costs four times the encoding (2.5 vs 0.6 us). What reaches it is to_jsonable's
    output or text built here, so it needs no check for circular references (to_jsonable recurses into them
    first). Interpreters without the C encoder keep the plain JSONEncoder."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encoder.encode
    encode_one = make(None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def encode(value: Any) -> str:
        return "".join(encode_one(value, 0))

    return encode


_encode = _make_encode()


def _tag(kind: str, value: Any) -> dict[str, Any]:
    return {TAG: [kind, value]}


def _float(value: float, path: str) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise SerializationError(f"{path}: {value!r} is not valid JSON; send a finite number or a string")
    return value


def to_jsonable(value: Any, path: str = "value") -> Any:
    """Return ``value`` as plain JSON data, tagging the extra types; raise naming the path on anything else."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _float(value, path)
    if kind is list:
        return [to_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise SerializationError(
                    f"{path}: dict key {key!r} is a {type(key).__name__}; JSON object keys must be strings"
                )
            out[key] = to_jsonable(item, f"{path}[{key!r}]")
        # Pairs, not an object: the decoder's object hook would otherwise see the user's key as a tag.
        return _tag("dict", [[k, v] for k, v in out.items()]) if TAG in out else out
    if kind is tuple:
        return _tag("tuple", [to_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)])
    if isinstance(value, dt.datetime):
        return _tag("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _tag("date", value.isoformat())
    if isinstance(value, dt.time):
        return _tag("time", value.isoformat())
    if isinstance(value, uuid.UUID):
        return _tag("uuid", str(value))
    if isinstance(value, Decimal):
        return _tag("decimal", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _tag("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    # Subclasses of the JSON types (IntEnum, str enums, OrderedDict, namedtuple) keep their base meaning.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(float(value), path)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return to_jsonable(dict(value), path)
    if isinstance(value, tuple):
        return to_jsonable(tuple(value), path)
    if isinstance(value, list):
        return to_jsonable(list(value), path)
    raise SerializationError(
        f"{path}: cannot serialise a {kind.__module__}.{kind.__qualname__}; offload accepts JSON types, "
        "datetime, date, time, UUID, Decimal, bytes and tuples (pass an id or a dict instead)"
    )


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) != 1 or TAG not in obj:
        return obj
    tagged = obj[TAG]
    if not (isinstance(tagged, list) and len(tagged) == 2 and isinstance(tagged[0], str)):
        raise SerializationError(f"malformed tagged value {obj!r}")
    kind, raw = tagged
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise SerializationError(f"unknown tagged type {kind!r} (written by a newer offload?)")
    try:
        return decoder(raw)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"malformed {kind} value {raw!r}: {exc}") from None


_DECODERS: dict[str, Any] = {
    "dict": lambda raw: {k: v for k, v in raw},
    "tuple": tuple,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": lambda raw: base64.b64decode(raw.encode("ascii"), validate=True),
    "repr": lambda raw: raw,
}


def dumps(value: Any, path: str = "value") -> str:
    """Encode ``value`` as offload's JSON text."""
    return _encode(to_jsonable(value, path))


def loads(text: str | bytes) -> Any:
    """Decode offload's JSON text; raise ``SerializationError`` on anything malformed."""
    try:
        return json.loads(text, object_hook=_untag)
    except (ValueError, TypeError, RecursionError) as exc:
        if isinstance(exc, SerializationError):
            raise
        raise SerializationError(f"not valid offload JSON: {exc}") from None


_NO_ARGUMENTS = "[[],{}]"
_PLAIN_META = {"title": None}


def dump_meta(meta: dict[str, Any] | None) -> str:
    """A job's ``meta`` as compact JSON; the two usual values (none, only an empty title) without encoding."""
    if not meta:
        return "{}"
    if meta == _PLAIN_META:
        return '{"title":null}'
    return _encode(meta)


def encode_payload(args: Any, kwargs: Any) -> str:
    """Encode a job's arguments; the error names the offending argument (``args[0]``, ``kwargs['x']``)."""
    if not isinstance(args, (list, tuple)):
        raise SerializationError(f"args must be a list or tuple, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise SerializationError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    if not args and not kwargs:
        return _NO_ARGUMENTS  # the commonest payload of all, and worth not encoding 10,000 times in a batch
    enc_args = [to_jsonable(a, f"args[{i}]") for i, a in enumerate(args)]
    enc_kwargs: dict[str, Any] = {}
    for key, value in kwargs.items():
        if type(key) is not str or not key.isidentifier():
            raise SerializationError(f"kwargs key {key!r} is not a valid keyword argument name")
        enc_kwargs[key] = to_jsonable(value, f"kwargs[{key!r}]")
    return _encode([enc_args, enc_kwargs])


def decode_payload(text: str) -> tuple[list[Any], dict[str, Any]]:
    """Decode what ``encode_payload`` wrote."""
    data = loads(text)
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], list) and isinstance(data[1], dict)):
        raise SerializationError("job payload must be [args, kwargs]")
    return data[0], data[1]


def encode_result(value: Any) -> str:
    """Encode a job's return value; an unserialisable value is kept as its repr rather than lost."""
    try:
        return dumps(value, "result")
    except SerializationError:
        text = repr(value)
        if len(text) > 2000:
            text = text[:2000] + "..."
        return _encode(_tag("repr", text))
