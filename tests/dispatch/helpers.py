"""Builders shared by the dispatch tests (waiting: `tests.harness.eventually`)."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from service_common.keys import DispatchKeys

CONNECTOR = "braze-main"
OTHER_CONNECTOR = "braze-eu"
API_KEY = "test-rest-api-key-0123456789"


def track_action(
    key: str,
    *,
    visitor: str = "visitor-1",
    external_id: str | None = None,
    attributes: dict[str, Any] | None = None,
    event: str | None = None,
    action_id: str = "",
    connector: str = CONNECTOR,
    cap: action_pb2.FrequencyCapPolicy | None = None,
) -> action_pb2.Action:
    """A Track User action for one user (external id defaults to the visitor id)."""
    track = action_pb2.TrackUser(user=action_pb2.UserIds(external_id=external_id or visitor))
    for name, value in (attributes or {}).items():
        track.attributes.append(action_pb2.Attribute(name=name, set=_value(value)))
    if event is not None or not track.attributes:
        track.events.append(action_pb2.TrackEvent(name=event or "fired"))
    action = action_pb2.Action(
        idempotency_key=key,
        connector_id=connector,
        visitor_id=visitor,
        action_id=action_id,
        track_user=track,
    )
    if cap is not None:
        action.frequency_cap.CopyFrom(cap)
    return action


def cooldown(group: str, priority: int, hours: float = 6) -> action_pb2.FrequencyCapPolicy:
    return action_pb2.FrequencyCapPolicy(
        cooldown_group=group,
        cooldown=duration_pb2.Duration(seconds=int(hours * 3600)),
        priority=priority,
    )


def simple_cap(max_sends: int, window_s: int) -> action_pb2.FrequencyCapPolicy:
    return action_pb2.FrequencyCapPolicy(
        max_sends=max_sends, window=duration_pb2.Duration(seconds=window_s)
    )


def _value(value: Any) -> value_pb2.Value:
    if isinstance(value, bool):
        return value_pb2.Value(bool_value=value)
    if isinstance(value, (int, float)):
        return value_pb2.Value(number_value=float(value))
    return value_pb2.Value(string_value=str(value))


async def queued_keys(redis: Any, partitions: int) -> list[str]:
    """Idempotency keys of every entry in every partition's queue stream, in stream order."""
    keys: list[str] = []
    for partition in range(partitions):
        for _, fields in await redis.xrange(DispatchKeys(partition).queue):
            keys.append(fields[b"k"].decode())
    return keys
