"""Conversion of ``crowd.common.v1.Value`` and timestamps into Braze JSON values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from crowd.common.v1.value_pb2 import Value
from dispatch_service.braze.rules import (
    MAX_STRING_LENGTH,
    number_problem,
    string_problem,
    timestamp_problem,
)

__all__ = [
    "MAX_STRING_LENGTH",
    "BadValue",
    "canonical_json",
    "compact_size",
    "iso8601",
    "number",
    "timestamp_to_iso",
    "value_to_json",
]
#: Largest integer a JSON double carries exactly; bigger integral numbers stay floats.
_MAX_SAFE_INTEGER = 2**53
#: Types orjson and json print alike.
_SCALARS = frozenset({str, int, bool, type(None)})


class BadValue(ValueError):
    """A value Braze cannot take; the message says why.

    ``field`` is the path inside the ``Value`` (``string_value``, ``string_list.values[3]``).
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def iso8601(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z`` suffix, e.g. ``2024-05-01T12:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timestamp_to_iso(timestamp: Timestamp) -> str:
    """ISO 8601 text of a protobuf Timestamp."""
    return iso8601(timestamp.ToDatetime(tzinfo=UTC))


def number(value: float) -> int | float:
    """A JSON number: integral values become ints so ``5.0`` and ``5`` compare (and print)
    the same, which keeps delta comparisons exact."""
    problem = number_problem(value)
    if problem is not None:
        raise BadValue(problem)
    if value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
        return int(value)
    return value


def _string(value: str, field: str) -> str:
    problem = string_problem(value)
    if problem is not None:
        raise BadValue(problem, field)
    return value


def _number(value: float, field: str) -> int | float:
    try:
        return number(value)
    except BadValue as exc:
        raise BadValue(str(exc), field) from None


def value_to_json(value: Value) -> Any:
    """The Braze JSON for a typed value: null stays null (it removes an attribute),
    timestamps become ISO 8601 strings, lists stay lists.

    Raises:
        BadValue: the value is unset, a number is not finite, a string is too long or a
            timestamp is out of range (rules.py).
    """
    kind = value.WhichOneof("kind")
    if kind is None:
        raise BadValue("the value is not set (use null_value to remove)")
    if kind == "null_value":
        return None
    if kind == "string_value":
        return _string(value.string_value, kind)
    if kind == "number_value":
        return _number(value.number_value, kind)
    if kind == "bool_value":
        return value.bool_value
    if kind == "timestamp_value":
        problem = timestamp_problem(value.timestamp_value)
        if problem is not None:
            raise BadValue(problem, kind)
        return timestamp_to_iso(value.timestamp_value)
    if kind == "string_list":
        return [_string(v, f"{kind}.values[{i}]") for i, v in enumerate(value.string_list.values)]
    if kind == "number_list":
        return [_number(v, f"{kind}.values[{i}]") for i, v in enumerate(value.number_list.values)]
    return list(value.bool_list.values)


def _float_free(value: Any) -> bool:
    """Whether ``value`` (JSON data) holds no float: orjson then prints it byte for byte as
    :mod:`json` does (compact, ``ensure_ascii=False``). Floats are left to :mod:`json`:
    orjson writes ``1.5e-05`` as ``0.000015``, and remembered tokens must keep comparing
    equal to the ones already stored."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is list:
        items: Iterable[Any] = value
    elif kind is dict:
        items = value.values()
    else:
        return False
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    return float not in kinds and all(_float_free(item) for item in items)


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the form values are compared and remembered in."""
    if _float_free(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, a non-string key
            pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (how request bodies are encoded)."""
    if _float_free(value):
        try:
            return len(orjson.dumps(value))
        except orjson.JSONEncodeError:
            pass
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
