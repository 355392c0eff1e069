"""Conversions between the engine's plain values (see :mod:`profile_service.engine.values`)
and the protos: timestamps, durations, ``crowd.common.v1.Value`` and attribute values."""

from __future__ import annotations

import math
from typing import Any, Final

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import event_pb2
from profile_service.engine.values import (
    MISSING,
    tally_favorite,
    to_tally,
)


def timestamp_from_ms(ms: int) -> timestamp_pb2.Timestamp:
    """Epoch milliseconds as a Timestamp."""
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def ms_from_timestamp(ts: timestamp_pb2.Timestamp) -> int:
    """A Timestamp in epoch milliseconds (sub-millisecond parts are dropped)."""
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def duration_from_ms(ms: int) -> duration_pb2.Duration:
    """Milliseconds as a Duration."""
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def value_from_proto(value: value_pb2.Value) -> Any:
    """A ``crowd.common.v1.Value`` as a plain value (``None`` for null or unset)."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "timestamp_value":
        return ms_from_timestamp(value.timestamp_value)
    if kind == "string_list":
        return list(value.string_list.values)
    if kind == "number_list":
        return list(value.number_list.values)
    return list(value.bool_list.values)


def to_common_value(value: Any) -> value_pb2.Value | None:
    """A plain value as a ``crowd.common.v1.Value``; ``None`` and `MISSING` become null.

    Returns ``None`` for values a Value cannot hold (tallies, timelines, funnels, mixed
    lists).
    """
    if value is None or value is MISSING:
        return value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, str):
        return value_pb2.Value(string_value=value)
    if isinstance(value, bool):
        return value_pb2.Value(bool_value=value)
    if isinstance(value, float):
        return value_pb2.Value(number_value=value) if math.isfinite(value) else None
    if isinstance(value, int):
        return value_pb2.Value(timestamp_value=timestamp_from_ms(value))
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return value_pb2.Value(string_list=value_pb2.StringList(values=value))
        if all(isinstance(item, bool) for item in value):
            return value_pb2.Value(bool_list=value_pb2.BoolList(values=value))
        if all(isinstance(item, float) for item in value):
            return value_pb2.Value(number_list=value_pb2.NumberList(values=value))
    return None


def _snapshot_to_proto(snapshot: dict[str, Any]) -> dict[str, value_pb2.Value]:
    converted: dict[str, value_pb2.Value] = {}
    for key, item in snapshot.items():
        proto = to_common_value(item)
        if proto is not None:
            converted[key] = proto
    return converted


def to_attribute_value(
    attribute_type: int,
    value: Any,
    tally_touched: dict[str, int] | None = None,
) -> event_pb2.AttributeValue | None:
    """An attribute's stored value as an ``AttributeValue`` of its type.

    ``attribute_type`` is a ``crowd.profile.v1.AttributeType``; ``tally_touched`` breaks
    favourite ties of a tally. Returns ``None`` for an unassigned value or one that does
    not match the type (e.g. stored under an earlier definition of another type).
    """
    if value is None or value is MISSING:
        return None
    try:
        return _typed_value(attribute_type, value, tally_touched)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        return None  # a shape the type does not allow


def fill_attribute_value(
    target: event_pb2.AttributeValue,
    attribute_type: int,
    value: Any,
    tally_touched: dict[str, int] | None = None,
) -> bool:
    """Write what `to_attribute_value` returns into ``target`` (an empty message, e.g. a
    field of a message being built); False (``target`` untouched) where it returns None.

    The scalar types, most of what ingest reports, are set in place: building a separate
    message per value and copying it in cost a noticeable share of every event.
    """
    kind = type(value)
    if attribute_type == pb.ATTRIBUTE_TYPE_NUMBER and kind is float:
        target.number_value = value
    elif kind is str and attribute_type in (pb.ATTRIBUTE_TYPE_STRING, pb.ATTRIBUTE_TYPE_VISITOR_ID):
        target.string_value = value
    elif attribute_type == pb.ATTRIBUTE_TYPE_BOOLEAN and kind is bool:
        target.bool_value = value
    elif kind is list and attribute_type in _LIST_FIELDS:
        if not all(isinstance(item, _LIST_ITEM_TYPES[attribute_type]) for item in value):
            return False
        items = getattr(target, _LIST_FIELDS[attribute_type])
        items.SetInParent()  # an empty list is still a value of this kind
        items.values.extend(value)
    else:
        typed = to_attribute_value(attribute_type, value, tally_touched)
        if typed is None:
            return False
        target.CopyFrom(typed)
    return True


_LIST_ITEM_TYPES: Final[dict[int, type | tuple[type, ...]]] = {
    pb.ATTRIBUTE_TYPE_STRING_SET: str,
    pb.ATTRIBUTE_TYPE_STRING_ARRAY: str,
    pb.ATTRIBUTE_TYPE_NUMBER_ARRAY: float,
    pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: bool,
}


_LIST_FIELDS: Final[dict[int, str]] = {
    pb.ATTRIBUTE_TYPE_STRING_SET: "string_set_value",
    pb.ATTRIBUTE_TYPE_STRING_ARRAY: "string_array_value",
    pb.ATTRIBUTE_TYPE_NUMBER_ARRAY: "number_array_value",
    pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: "bool_array_value",
}
"""The ``AttributeValue`` field of each list type (the item types: `_LIST_ITEM_TYPES`)."""


def _typed_value(
    attribute_type: int, value: Any, tally_touched: dict[str, int] | None
) -> event_pb2.AttributeValue | None:
    item_type = _LIST_ITEM_TYPES.get(attribute_type)
    if item_type is not None and not (
        isinstance(value, list) and all(isinstance(item, item_type) for item in value)
    ):
        return None
    av = event_pb2.AttributeValue
    if attribute_type == pb.ATTRIBUTE_TYPE_NUMBER and isinstance(value, float):
        return av(number_value=value)
    if attribute_type in (pb.ATTRIBUTE_TYPE_STRING, pb.ATTRIBUTE_TYPE_VISITOR_ID) and isinstance(
        value, str
    ):
        return av(string_value=value)
    if attribute_type == pb.ATTRIBUTE_TYPE_BOOLEAN and isinstance(value, bool):
        return av(bool_value=value)
    if (
        attribute_type == pb.ATTRIBUTE_TYPE_DATE
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        return av(date_value=timestamp_from_ms(value))
    if attribute_type == pb.ATTRIBUTE_TYPE_BADGE:
        return av(badge_value=value is True)
    if attribute_type == pb.ATTRIBUTE_TYPE_TALLY and isinstance(value, dict):
        counts = to_tally(value) or {}
        favorite = tally_favorite(counts, tally_touched) or ""
        return av(tally_value=event_pb2.Tally(counts=counts, favorite=favorite))
    if not isinstance(value, list):
        if attribute_type == pb.ATTRIBUTE_TYPE_FUNNEL and isinstance(value, dict):
            steps = [
                event_pb2.FunnelStep(
                    step_id=step[0],
                    time=timestamp_from_ms(step[1]),
                    snapshot=_snapshot_to_proto(step[2]),
                )
                for step in value.get("steps", [])
            ]
            return av(
                funnel_value=event_pb2.Funnel(steps=steps, completed=bool(value.get("completed")))
            )
        return None
    if attribute_type == pb.ATTRIBUTE_TYPE_STRING_SET:
        return av(string_set_value=value_pb2.StringList(values=value))
    if attribute_type == pb.ATTRIBUTE_TYPE_STRING_ARRAY:
        return av(string_array_value=value_pb2.StringList(values=value))
    if attribute_type == pb.ATTRIBUTE_TYPE_NUMBER_ARRAY:
        return av(number_array_value=value_pb2.NumberList(values=value))
    if attribute_type == pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY:
        return av(bool_array_value=value_pb2.BoolList(values=value))
    if attribute_type == pb.ATTRIBUTE_TYPE_TIMELINE:
        entries = [
            event_pb2.TimelineEntry(
                time=timestamp_from_ms(entry[0]), snapshot=_snapshot_to_proto(entry[1])
            )
            for entry in value
        ]
        return av(timeline_value=event_pb2.Timeline(entries=entries))
    return None


def from_attribute_value(value: event_pb2.AttributeValue) -> Any:
    """An ``AttributeValue`` as the engine's plain value (``None`` when unset).

    A tally's favourite is derived, so it is not kept.
    """
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind in ("number_value", "string_value", "bool_value"):
        return getattr(value, kind)
    if kind == "badge_value":
        return True if value.badge_value else None
    if kind == "date_value":
        return ms_from_timestamp(value.date_value)
    if kind == "tally_value":
        return dict(value.tally_value.counts)
    if kind == "string_set_value":
        return sorted(set(value.string_set_value.values))
    if kind in ("string_array_value", "number_array_value", "bool_array_value"):
        return list(getattr(value, kind).values)
    if kind == "timeline_value":
        return [
            [ms_from_timestamp(entry.time), _snapshot_from_proto(entry.snapshot)]
            for entry in value.timeline_value.entries
        ]
    steps = [
        [step.step_id, ms_from_timestamp(step.time), _snapshot_from_proto(step.snapshot)]
        for step in value.funnel_value.steps
    ]
    return {"steps": steps, "completed": value.funnel_value.completed}


def _snapshot_from_proto(snapshot: Any) -> dict[str, Any]:
    return {key: value_from_proto(item) for key, item in snapshot.items()}
