"""Tealium Collect parameters → crowd ``Event`` messages.

Reserved ``tealium_*`` parameters fill the event's fields; every other parameter becomes
event data: strings stay strings, JSON numbers and booleans keep their type, arrays become
string/number/boolean lists, null is "no value". Query strings and forms carry strings only
(a repeated key becomes a list of strings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import event_pb2
from profile_service.collect.errors import CollectError

#: Visitor id parameters, first present wins (Tealium's precedence; ``tealium_vid`` is the
#: former name of ``tealium_visitor_id``).
VISITOR_ID_KEYS = (
    "tealium_visitor_id",
    "tealium_vid",
    "tealium_firstparty_visitor_id",
    "tealium_thirdparty_visitor_id",
)
#: Event name parameters, first present wins.
EVENT_NAME_KEYS = ("tealium_event", "tealium_event_type")
ACCOUNT = "tealium_account"
PROFILE = "tealium_profile"
DATASOURCE = "tealium_datasource"
TIMESTAMP = "tealium_timestamp_epoch"
TRACE_ID = "tealium_trace_id"
EVENT_ID = "tealium_event_id"
PLATFORM = "platform"

#: Parameters that fill event fields and are not repeated as event data.
MAPPED_KEYS = frozenset(
    {
        *VISITOR_ID_KEYS,
        *EVENT_NAME_KEYS,
        ACCOUNT,
        PROFILE,
        DATASOURCE,
        TIMESTAMP,
        TRACE_ID,
        EVENT_ID,
    }
)
#: Most events per bulk request (Tealium's documented limit).
MAX_BULK_EVENTS = 10


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CollectError(400, f"{key} must be a string")
    return str(value)


def _first(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    for key in keys:
        text = _text(params, key)
        if text:
            return text
    return ""


def check_keys(params: Mapping[str, Any]) -> None:
    """Tealium refuses a key with a period (it would be read as a nested path)."""
    for key in params:
        if "." in key:
            raise CollectError(400, f"key contains a period: {key[:100]}")


def check_account(params: Mapping[str, Any], account: str, profile: str) -> None:
    """400 if account or profile is missing, 403 if it is not the configured one."""
    given_account = _text(params, ACCOUNT)
    given_profile = _text(params, PROFILE)
    if not given_account:
        raise CollectError(400, "tealium_account is required")
    if not given_profile:
        raise CollectError(400, "tealium_profile is required")
    if (account and given_account != account) or (profile and given_profile != profile):
        raise CollectError(403, "unknown tealium_account/tealium_profile")


def datasource(params: Mapping[str, Any]) -> str:
    """The request's ``tealium_datasource`` ("" when none)."""
    return _text(params, DATASOURCE)


def _list_value(key: str, items: list[Any]) -> value_pb2.Value:
    if all(isinstance(item, bool) for item in items):
        return value_pb2.Value(bool_list=value_pb2.BoolList(values=items))
    if all(isinstance(item, int | float) and not isinstance(item, bool) for item in items):
        return value_pb2.Value(number_list=value_pb2.NumberList(values=[float(i) for i in items]))
    if all(isinstance(item, str) for item in items):
        return value_pb2.Value(string_list=value_pb2.StringList(values=items))
    raise CollectError(400, f"{key}: an array must hold only strings, numbers or booleans")


def to_value(key: str, raw: Any) -> value_pb2.Value:
    """One parameter value as event data."""
    if raw is None:
        return value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(raw, bool):
        return value_pb2.Value(bool_value=raw)
    if isinstance(raw, int | float):
        return value_pb2.Value(number_value=float(raw))
    if isinstance(raw, str):
        return value_pb2.Value(string_value=raw)
    if isinstance(raw, list):
        return _list_value(key, raw)
    raise CollectError(400, f"{key}: nested objects are not supported")


def _time_ms(params: Mapping[str, Any]) -> int | None:
    raw = params.get(TIMESTAMP)
    if raw is None or raw == "":
        return None
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise CollectError(400, f"{TIMESTAMP} must be epoch seconds") from None
    if isinstance(raw, bool) or not 0 < seconds < 253_402_300_800:  # before year 10000
        raise CollectError(400, f"{TIMESTAMP} must be epoch seconds")
    return int(seconds * 1000)


USER_AGENT = "user_agent"
"""The event data field of the user agent (the preloaded browser/OS/device attributes)."""
MAX_HEADER_USER_AGENT = 1_500
"""A longer ``User-Agent`` header is cut here (Tealium truncates event strings there)."""


def to_event(params: Mapping[str, Any], user_agent: str = "") -> event_pb2.Event:
    """One Collect event (its merged parameters) as a crowd event; ``user_agent`` (the
    request's ``User-Agent`` header) fills the ``user_agent`` field when it is not sent."""
    check_keys(params)
    event = event_pb2.Event(
        visitor_id=_first(params, VISITOR_ID_KEYS),
        name=_first(params, EVENT_NAME_KEYS),
        trace_id=_text(params, TRACE_ID),
        event_id=_text(params, EVENT_ID),
    )
    time_ms = _time_ms(params)
    if time_ms is not None:
        event.time.FromMilliseconds(time_ms)
    platform = params.get(PLATFORM)
    if isinstance(platform, str):
        event.platform = platform
    for key, raw in params.items():
        if key not in MAPPED_KEYS:
            event.data[key].CopyFrom(to_value(key, raw))
    if user_agent and USER_AGENT not in event.data:
        event.data[USER_AGENT].string_value = user_agent[:MAX_HEADER_USER_AGENT]
    return event


def bulk_events(body: Any) -> list[dict[str, Any]]:
    """The events of a bulk body ``{"shared": {...}, "events": [...]}``, each merged over
    ``shared`` (an event's own parameter wins)."""
    if not isinstance(body, dict):
        raise CollectError(400, "the body must be a JSON object")
    shared = body.get("shared", {})
    events = body.get("events")
    if not isinstance(shared, dict):
        raise CollectError(400, "shared must be an object")
    if not isinstance(events, list) or not events:
        raise CollectError(400, "events must be a non-empty array")
    if len(events) > MAX_BULK_EVENTS:
        raise CollectError(400, f"at most {MAX_BULK_EVENTS} events per bulk request")
    merged: list[dict[str, Any]] = []
    for item in events:
        if not isinstance(item, dict):
            raise CollectError(400, "each event must be an object")
        merged.append({**shared, **item})
    return merged
