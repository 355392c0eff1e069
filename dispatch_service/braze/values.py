"""Conversion of ``crowd.common.v1.Value`` and timestamps into Braze JSON values."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crowd.common.v1.value_pb2 import Value

#: Braze: "String attributes can be up to 255 characters long" (also event property values).
MAX_STRING_LENGTH = 255
#: Largest integer a JSON double carries exactly; bigger integral numbers stay floats.
_MAX_SAFE_INTEGER = 2**53


class BadValue(ValueError):
    """A value Braze cannot take; the message says why (no field path)."""


def iso8601(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z`` suffix, e.g. ``2024-05-01T12:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timestamp_to_iso(timestamp: Timestamp) -> str:
    """ISO 8601 text of a protobuf Timestamp."""
    return iso8601(timestamp.ToDatetime(tzinfo=UTC))


def number(value: float) -> int | float:
    """A JSON number: integral values become ints so ``5.0`` and ``5`` compare (and print)
    the same, which keeps delta comparisons exact."""
    if not math.isfinite(value):
        raise BadValue("numbers must be finite (no NaN or infinity)")
    if value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
        return int(value)
    return value


def _string(value: str) -> str:
    if len(value) > MAX_STRING_LENGTH:
        raise BadValue(f"strings may hold at most {MAX_STRING_LENGTH} characters")
    return value


def value_to_json(value: Value) -> Any:
    """The Braze JSON for a typed value: null stays null (it removes an attribute),
    timestamps become ISO 8601 strings, lists stay lists.

    Raises:
        BadValue: the value is unset, a number is not finite or a string is too long.
    """
    kind = value.WhichOneof("kind")
    if kind is None:
        raise BadValue("the value is not set (use null_value to remove)")
    if kind == "null_value":
        return None
    if kind == "string_value":
        return _string(value.string_value)
    if kind == "number_value":
        return number(value.number_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "timestamp_value":
        return timestamp_to_iso(value.timestamp_value)
    if kind == "string_list":
        return [_string(v) for v in value.string_list.values]
    if kind == "number_list":
        return [number(v) for v in value.number_list.values]
    return list(value.bool_list.values)


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the form values are compared and remembered in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (how request bodies are encoded)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
