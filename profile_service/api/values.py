"""Conversion between ``crowd.common.v1.Value`` messages and plain Python values.

The engine works on plain values (see `profile_service.engine.state`); this module is
the only place that knows the wire representation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf import timestamp_pb2

from crowd.common.v1 import value_pb2

MAX_LIST_ITEMS = 1000
MAX_STRING_VALUE_LENGTH = 1500
"""Tealium's event string limit: longer event values are cut to it, as Tealium does (a tag
that sends a long URL or search must not lose the whole event)."""


class ValueError_(ValueError):
    """A value that cannot be used, with a sentence saying why."""


def timestamp_to_ms(ts: timestamp_pb2.Timestamp) -> int:
    """Return a Timestamp as epoch milliseconds."""
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def ms_to_timestamp(ms: int) -> timestamp_pb2.Timestamp:
    """Return epoch milliseconds as a Timestamp."""
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _check_string(text: str) -> str:
    return text[:MAX_STRING_VALUE_LENGTH]


def _check_number(number: float) -> float:
    if math.isnan(number) or math.isinf(number):
        raise ValueError_("must be a finite number")
    return number


def _check_list(items: Any, check: Callable[[Any], Any]) -> list[Any]:
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError_(f"has more than {MAX_LIST_ITEMS} items")
    return [check(item) for item in items]


def from_value(value: value_pb2.Value) -> Any:
    """Return the plain Python value of a Value message.

    Raises:
        ValueError_: the value is unset, not finite or a list too long (strings over
            1,500 characters are cut, not refused).
    """
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind == "string_value":
        return _check_string(value.string_value)
    if kind == "number_value":
        return _check_number(value.number_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "timestamp_value":
        return timestamp_to_ms(value.timestamp_value)
    if kind == "string_list":
        return _check_list(value.string_list.values, _check_string)
    if kind == "number_list":
        return _check_list(value.number_list.values, _check_number)
    if kind == "bool_list":
        return _check_list(value.bool_list.values, bool)
    raise ValueError_("has no value set (set one of the Value fields, or null_value)")
