"""Validation of incoming events: every problem reported at once, by field path.

A batch is refused whole when any event is invalid (nothing is written), so callers
never have to reconcile a half-applied batch; the violations name each bad field as
``events[<index>].<field>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from crowd.profile.v1 import event_pb2
from profile_service.api.values import ValueError_, from_value, timestamp_to_ms
from profile_service.engine.state import NormalizedEvent
from service_common.errors import Violations

MAX_BATCH_EVENTS = 1000
MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 256
MAX_DATA_FIELDS = 500
MAX_FIELD_NAME_LENGTH = 256
MAX_FUTURE_SKEW_MS = 60 * 60 * 1000
"""Events dated more than an hour ahead are refused: they would hold visits open."""
MIN_EVENT_TIME_MS = 946_684_800_000
"""2000-01-01T00:00:00Z; older times are almost always unit mistakes (seconds for ms)."""


@dataclass(frozen=True)
class EventLimits:
    """Size limits applied to incoming events."""

    max_batch_events: int = MAX_BATCH_EVENTS
    max_id_length: int = MAX_ID_LENGTH
    max_name_length: int = MAX_NAME_LENGTH
    max_data_fields: int = MAX_DATA_FIELDS


def _check_id(violations: Violations, field: str, value: str, limit: int, required: bool) -> None:
    if not value:
        if required:
            violations.add(field, "is required")
        return
    if len(value) > limit:
        violations.add(field, f"is longer than {limit} characters")
    elif value != value.strip() or any(ch in value for ch in "\x00\r\n"):
        violations.add(field, "must not contain leading/trailing spaces or control characters")


def _data_field(key: str) -> str:
    """The field path of an event data key in a violation (built only when reporting one)."""
    return f"data[{key!r}]" if key else "data"


def normalize_event(
    event: event_pb2.Event,
    now_ms: int,
    violations: Violations,
    *,
    traceparent: str = "",
    limits: EventLimits = EventLimits(),
) -> NormalizedEvent | None:
    """Validate one event; return it normalised, or ``None`` after recording violations.

    Defaults: a missing time becomes ``now_ms``; a missing event id becomes a random one
    (so such events are never deduplicated).
    """
    before = len(violations)
    _check_id(violations, "visitor_id", event.visitor_id, limits.max_id_length, True)
    _check_id(violations, "event_id", event.event_id, limits.max_id_length, False)
    _check_id(violations, "name", event.name, limits.max_name_length, True)
    _check_id(violations, "trace_id", event.trace_id, limits.max_id_length, False)
    _check_id(violations, "platform", event.platform, 64, False)
    time_ms = now_ms
    if event.HasField("time"):
        time_ms = timestamp_to_ms(event.time)
        if time_ms > now_ms + MAX_FUTURE_SKEW_MS:
            violations.add("time", "is more than one hour in the future")
        elif time_ms < MIN_EVENT_TIME_MS:
            violations.add("time", "is before 2000-01-01 (seconds given as milliseconds?)")
    if len(event.data) > limits.max_data_fields:
        violations.add("data", f"has more than {limits.max_data_fields} fields")
    data = {}
    for key, value in event.data.items():
        if not key or len(key) > MAX_FIELD_NAME_LENGTH:
            violations.add(
                _data_field(key), f"field names must have 1 to {MAX_FIELD_NAME_LENGTH} characters"
            )
            continue
        try:
            data[key] = from_value(value)
        except ValueError_ as exc:
            violations.add(_data_field(key), str(exc))
    if len(violations) > before:
        return None
    return NormalizedEvent(
        visitor_id=event.visitor_id,
        event_id=event.event_id or f"gen-{uuid.uuid4().hex}",
        name=event.name,
        time_ms=time_ms,
        data=data,
        trace_id=event.trace_id,
        platform=event.platform,
        traceparent=traceparent,
    )


def normalize_batch(
    events: Sequence[event_pb2.Event],
    now_ms: int,
    *,
    field: str = "events",
    traceparent: str = "",
    limits: EventLimits = EventLimits(),
) -> list[NormalizedEvent]:
    """Validate a batch; raise InvalidArgument naming every bad field, or return it all."""
    violations = Violations()
    if not events:
        violations.add(field, "must contain at least one event")
    elif len(events) > limits.max_batch_events:
        violations.add(field, f"must contain at most {limits.max_batch_events} events")
    normalized: list[NormalizedEvent] = []
    if not violations:
        for index, event in enumerate(events):
            own = Violations()
            result = normalize_event(event, now_ms, own, traceparent=traceparent, limits=limits)
            if len(own):  # most events are valid: no prefix to build
                violations.extend_prefixed(f"{field}[{index}]", own)
            if result is not None:
                normalized.append(result)
    violations.raise_if_any()
    return normalized
