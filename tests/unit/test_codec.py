from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offload import codec
from offload.errors import SerializationError


@pytest.mark.parametrize(
    "value",
    [
        None, True, 3, -2.5, "text", "ünïcode ✓", [], {}, [1, [2, [3]]], {"a": {"b": [1, None]}},
        dt.datetime(2026, 11, 21, 12, 30, 5, 123456, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 11, 21, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2026, 11, 21, 12, 30),
        dt.date(2026, 11, 21), dt.time(8, 15), uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("10.25"), b"\x00\xffbytes", (1, "two", (3,)), {"__offload__": "user data"},
        {"__offload__": ["datetime", "not a tag"], "other": 1}, [(1, 2), {"t": (3, 4)}],
    ],
)
def test_round_trip_keeps_value_and_type(value: object) -> None:
    decoded = codec.loads(codec.dumps(value))
    assert decoded == value and type(decoded) is type(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner, inner),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_property(value: object) -> None:
    assert codec.loads(codec.dumps(value)) == value


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ([object()], {}, "args[0]"),
        ([1, {"when": {1, 2}}], {}, "args[1]['when']"),
        ([], {"conn": open}, "kwargs['conn']"),
        ([float("nan")], {}, "args[0]"),
        ([{1: "int key"}], {}, "args[0]"),
    ],
)
def test_unserialisable_arguments_are_named(args: list[object], kwargs: dict[str, object], where: str) -> None:
    with pytest.raises(SerializationError) as info:
        codec.encode_payload(args, kwargs)
    assert str(info.value).startswith(where)


def test_payload_shape_is_checked() -> None:
    with pytest.raises(SerializationError, match="args must be a list"):
        codec.encode_payload("abc", {})
    with pytest.raises(SerializationError, match="not a valid keyword"):
        codec.encode_payload([], {"not valid": 1})
    with pytest.raises(SerializationError, match="must be \\[args, kwargs\\]"):
        codec.decode_payload('{"a": 1}')


def test_corrupted_text_is_a_serialization_error() -> None:
    for text in ["{not json", '{"__offload__": ["nope", 1]}', '{"__offload__": ["bytes", "***"]}']:
        with pytest.raises(SerializationError):
            codec.loads(text)


def test_unserialisable_result_is_kept_as_repr() -> None:
    text = codec.encode_result(object())
    assert codec.loads(text).startswith("<object object at")


def test_subclasses_of_json_types_are_accepted() -> None:
    import enum
    from collections import OrderedDict, namedtuple

    class Color(enum.IntEnum):
        RED = 1

    Point = namedtuple("Point", "x y")
    assert codec.loads(codec.dumps([Color.RED, OrderedDict(a=1), Point(1, 2)])) == [1, {"a": 1}, (1, 2)]
