"""Build ``crowd.common.v1.Value`` messages from plain Python values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from crowd.common.v1 import value_pb2


def to_value(value: Any) -> value_pb2.Value:
    """Return the Value message for a plain Python value.

    ``None`` is null, ``bool``/``int``/``float``/``str`` map to their kinds, a `datetime`
    (naive means UTC) is a timestamp, and lists or tuples become typed lists (booleans,
    numbers, otherwise strings).
    """
    if value is None:
        return value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, bool):
        return value_pb2.Value(bool_value=value)
    if isinstance(value, int | float):
        return value_pb2.Value(number_value=float(value))
    if isinstance(value, str):
        return value_pb2.Value(string_value=value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(aware.astimezone(UTC))
        return value_pb2.Value(timestamp_value=ts)
    if isinstance(value, list | tuple):
        items = list(value)
        if items and all(isinstance(item, bool) for item in items):
            return value_pb2.Value(bool_list=value_pb2.BoolList(values=items))
        if items and all(
            isinstance(item, int | float) and not isinstance(item, bool) for item in items
        ):
            return value_pb2.Value(number_list=value_pb2.NumberList(values=items))
        return value_pb2.Value(string_list=value_pb2.StringList(values=[str(i) for i in items]))
    raise TypeError(f"cannot represent {type(value).__name__} as a crowd Value")


def to_value_map(data: Mapping[str, Any]) -> dict[str, value_pb2.Value]:
    """Return a field map of Value messages for a mapping of plain values."""
    return {key: to_value(value) for key, value in data.items()}


def from_value(value: value_pb2.Value) -> Any:
    """Return the plain Python value of a Value message (timestamps as `datetime`)."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=UTC)
    if kind in ("string_list", "number_list", "bool_list"):
        return list(getattr(value, kind).values)
    return getattr(value, kind)
