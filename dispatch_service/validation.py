"""Validation of submitted actions: every problem of a request, by field path.

A request with any invalid action is refused whole (``INVALID_ARGUMENT`` with one
``BadRequest`` listing every violation) before anything is written, so a caller never has to
find out which half of a batch was accepted. Field paths follow the request, e.g.
``actions[3].track_user.user``.

The payload (track_user, delete_user, identify_user, update_membership, merge_users,
create_alias) is
checked by the Braze payload builder itself (``dispatch_service.braze.admission``, rules in
``dispatch_service/braze/rules.py``): what intake accepts is exactly what delivery can send,
and refusing here tells the caller at once, instead of through a dead letter minutes later.
This module checks the rest: keys, ids, caps, trace context, fired_at.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from google.protobuf import duration_pb2, timestamp_pb2

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from dispatch_service.braze.admission import delivery_violations
from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.rules import MAX_NAME_LENGTH, timestamp_problem
from service_common.errors import FieldViolation, Violations

__all__ = [
    "MAX_ACTIONS_PER_REQUEST",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "validate_actions",
]

MAX_ACTIONS_PER_REQUEST = 1000
MAX_IDEMPOTENCY_KEY_LENGTH = 512
MAX_ID_LENGTH = 512

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

Connectors = Collection[str] | Mapping[str, BrazeConnector]
"""The connectors this service delivers to: their settings, or only their ids (then the
payload is checked against the connector defaults)."""


def validate_actions(actions: Sequence[action_pb2.Action], connector_ids: Connectors) -> None:
    """Raise :class:`~service_common.errors.InvalidArgument` listing every invalid field.

    Args:
        actions: The request's actions (field ``actions``).
        connector_ids: The connectors this service delivers to (see :data:`Connectors`).
    """
    v = Violations()
    if not actions:
        v.add("actions", "must contain at least one action")
    elif len(actions) > MAX_ACTIONS_PER_REQUEST:
        v.add("actions", f"must contain at most {MAX_ACTIONS_PER_REQUEST:,} actions")
    else:
        for i, action in enumerate(actions):
            v.extend_prefixed(f"actions[{i}]", _action(action, connector_ids))
    v.raise_if_any()


def _action(action: action_pb2.Action, connector_ids: Connectors) -> Violations:
    v = Violations()
    key = action.idempotency_key
    if not key:
        v.add("idempotency_key", "is required")
    elif len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        v.add("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    if not action.connector_id:
        v.add("connector_id", "is required")
    elif action.connector_id not in connector_ids:
        v.add("connector_id", f"unknown connector {action.connector_id!r}")
    if not action.visitor_id:
        v.add("visitor_id", "is required")
    elif len(action.visitor_id) > MAX_ID_LENGTH:
        v.add("visitor_id", f"must be at most {MAX_ID_LENGTH} characters")
    if len(action.action_id) > MAX_ID_LENGTH:
        v.add("action_id", f"must be at most {MAX_ID_LENGTH} characters")
    if action.HasField("frequency_cap"):
        v.extend_prefixed("frequency_cap", _frequency_cap(action.frequency_cap, action.action_id))
    if action.HasField("trace_context"):
        v.extend_prefixed("trace_context", _trace_context(action.trace_context))
    if action.HasField("fired_at"):
        _timestamp(v, "fired_at", action.fired_at)
    payload = action.WhichOneof("payload")
    if payload is None:
        v.add(
            "payload",
            "exactly one of track_user, delete_user, identify_user, update_membership, "
            "merge_users, create_alias is required",
        )
    elif payload == "cohort_membership":
        v.add("cohort_membership", "cohort changes are sent with SyncCohort, not SubmitActions")
    else:
        track = action.track_user
        sends = track.attributes or track.events or track.purchases or track.subscription_groups
        if payload == "track_user" and not sends:
            v.add(
                "track_user", "needs at least one attribute, event, purchase or subscription group"
            )
        connector = (
            connector_ids.get(action.connector_id) if isinstance(connector_ids, Mapping) else None
        )
        found = delivery_violations(action, connector)
        v.extend_prefixed("", (FieldViolation(x.field, x.description) for x in found))
    return v


def _frequency_cap(cap: action_pb2.FrequencyCapPolicy, action_id: str) -> Violations:
    v = Violations()
    if cap.cooldown_group:
        if len(cap.cooldown_group) > MAX_NAME_LENGTH:
            v.add("cooldown_group", f"must be at most {MAX_NAME_LENGTH} characters")
        if not cap.HasField("cooldown"):
            v.add("cooldown", "is required with a cooldown_group")
        else:
            _positive_duration(v, "cooldown", cap.cooldown)
    elif cap.HasField("cooldown"):
        v.add("cooldown", "needs a cooldown_group")
    if cap.max_sends < 0:
        v.add("max_sends", "must not be negative")
    elif cap.max_sends > 0:
        if not action_id:
            # The simple cap counts sends per action id; without one there is nothing to count.
            v.add("max_sends", "needs the action's action_id")
        if not cap.HasField("window"):
            v.add("window", "is required with max_sends")
        else:
            _positive_duration(v, "window", cap.window)
    elif cap.HasField("window"):
        v.add("window", "needs max_sends")
    return v


def _trace_context(context: value_pb2.TraceContext) -> Violations:
    v = Violations()
    parent = context.traceparent
    if parent and (
        not _TRACEPARENT.match(parent)
        or parent.startswith("ff")
        or parent[3:35] == "0" * 32
        or parent[36:52] == "0" * 16
    ):
        v.add("traceparent", "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
    if context.tracestate and not parent:
        v.add("tracestate", "needs a traceparent")
    if len(context.tracestate) > 512:
        v.add("tracestate", "must be at most 512 characters")
    return v


def _timestamp(v: Violations, field: str, stamp: timestamp_pb2.Timestamp) -> None:
    problem = timestamp_problem(stamp)
    if problem is not None:
        v.add(field, problem)


def _positive_duration(v: Violations, field: str, duration: duration_pb2.Duration) -> None:
    if duration.seconds < 0 or not 0 <= duration.nanos < 1_000_000_000:
        v.add(field, "must be a positive duration")
    elif duration.seconds == 0 and duration.nanos < 1_000_000:
        v.add(field, "must be at least 1 ms")
