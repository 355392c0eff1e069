"""Validation of submitted actions: every problem of a request, by field path.

A request with any invalid action is refused whole (``INVALID_ARGUMENT`` with one
``BadRequest`` listing every violation) before anything is written, so a caller never has to
find out which half of a batch was accepted. Field paths follow the request, e.g.
``actions[3].track_user.user``.

The rules are Braze's where Braze would refuse the object anyway (required event and
purchase fields, quantity at most 100, complete user aliases): refusing at intake tells the
caller at once, instead of through a dead letter minutes later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence

from google.protobuf import duration_pb2, timestamp_pb2

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from service_common.errors import Violations

__all__ = [
    "MAX_ACTIONS_PER_REQUEST",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "validate_actions",
]

MAX_ACTIONS_PER_REQUEST = 1000
MAX_IDEMPOTENCY_KEY_LENGTH = 512
MAX_ID_LENGTH = 512
MAX_NAME_LENGTH = 255  # Braze: attribute keys, event names and product ids
MAX_QUANTITY = 100

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# protobuf Timestamp's documented range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def validate_actions(actions: Sequence[action_pb2.Action], connector_ids: Collection[str]) -> None:
    """Raise :class:`~service_common.errors.InvalidArgument` listing every invalid field.

    Args:
        actions: The request's actions (field ``actions``).
        connector_ids: The connectors this service delivers to.
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


def _action(action: action_pb2.Action, connector_ids: Collection[str]) -> Violations:
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
            "exactly one of track_user, delete_user, identify_user, update_membership is required",
        )
    elif payload == "track_user":
        v.extend_prefixed("track_user", _track_user(action.track_user))
    elif payload == "delete_user":
        v.extend_prefixed("delete_user.user", _user(action.delete_user.user))
    elif payload == "identify_user":
        v.extend_prefixed("identify_user", _identify_user(action.identify_user))
    elif payload == "update_membership":
        v.extend_prefixed("update_membership", _update_membership(action.update_membership))
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


def _track_user(track: action_pb2.TrackUser) -> Violations:
    v = Violations()
    v.extend_prefixed("user", _user(track.user))
    if not (track.attributes or track.events or track.purchases):
        v.add("", "needs at least one attribute, event or purchase")
    for i, attribute in enumerate(track.attributes):
        v.extend_prefixed(f"attributes[{i}]", _attribute(attribute))
    for i, event in enumerate(track.events):
        v.extend_prefixed(f"events[{i}]", _event(event))
    for i, purchase in enumerate(track.purchases):
        v.extend_prefixed(f"purchases[{i}]", _purchase(purchase))
    return v


def _user(user: action_pb2.UserIds) -> Violations:
    v = Violations()
    has_alias = bool(user.user_alias.alias_name or user.user_alias.alias_label)
    if has_alias:
        v.extend_prefixed("user_alias", _alias(user.user_alias))
    if not (user.external_id or user.braze_id or has_alias or user.email or user.phone):
        v.add("", "needs an identifier: external_id, braze_id, user_alias, email or phone")
    return v


def _alias(alias: action_pb2.UserAlias) -> Violations:
    v = Violations()
    if not alias.alias_name:
        v.add("alias_name", "is required in a user alias")
    if not alias.alias_label:
        v.add("alias_label", "is required in a user alias")
    return v


def _attribute(attribute: action_pb2.Attribute) -> Violations:
    v = Violations()
    _name(v, "name", attribute.name)
    operation = attribute.WhichOneof("operation")
    if operation is None:
        v.add("operation", "exactly one of set, increment, add, remove is required")
    elif operation == "set":
        v.extend_prefixed("set", _value(attribute.set))
    elif operation == "increment" and not math.isfinite(attribute.increment):
        v.add("increment", "must be a finite number")
    elif operation in ("add", "remove") and not getattr(attribute, operation).values:
        v.add(operation, "must list at least one item")
    return v


def _value(value: value_pb2.Value) -> Violations:
    v = Violations()
    kind = value.WhichOneof("kind")
    if kind is None:
        v.add("", "a value is required (null_value removes the attribute)")
    elif kind == "number_value" and not math.isfinite(value.number_value):
        v.add("number_value", "must be a finite number")
    elif kind == "number_list" and not all(math.isfinite(x) for x in value.number_list.values):
        v.add("number_list", "must contain finite numbers only")
    elif kind == "timestamp_value":
        _timestamp(v, "timestamp_value", value.timestamp_value)
    return v


def _properties(v: Violations, field: str, properties: dict[str, value_pb2.Value]) -> None:
    for name, value in properties.items():
        if not name:
            v.add(field, "property names must not be empty")
        v.extend_prefixed(f"{field}[{name!r}]", _value(value))


def _event(event: action_pb2.TrackEvent) -> Violations:
    v = Violations()
    _name(v, "name", event.name)
    if event.HasField("time"):
        _timestamp(v, "time", event.time)
    _properties(v, "properties", dict(event.properties))
    return v


def _purchase(purchase: action_pb2.Purchase) -> Violations:
    v = Violations()
    _name(v, "product_id", purchase.product_id)
    if not purchase.currency:
        v.add("currency", "is required")
    elif not _CURRENCY.match(purchase.currency):
        v.add("currency", "must be an ISO 4217 alphabetic code such as USD")
    if not math.isfinite(purchase.price):
        v.add("price", "must be a finite number")
    if not 0 <= purchase.quantity <= MAX_QUANTITY:
        v.add("quantity", f"must be 1 to {MAX_QUANTITY} (0 means 1)")
    if purchase.HasField("time"):
        _timestamp(v, "time", purchase.time)
    _properties(v, "properties", dict(purchase.properties))
    return v


def _identify_user(identify: action_pb2.IdentifyUser) -> Violations:
    v = Violations()
    if not identify.external_id:
        v.add("external_id", "is required")
    v.extend_prefixed("user_alias", _alias(identify.user_alias))
    return v


def _update_membership(update: action_pb2.UpdateMembership) -> Violations:
    v = Violations()
    v.extend_prefixed("user", _user(update.user))
    for field in ("audiences", "left"):
        for i, name in enumerate(getattr(update, field)):
            if not name:
                v.add(f"{field}[{i}]", "audience names must not be empty")
    return v


def _name(v: Violations, field: str, name: str) -> None:
    if not name:
        v.add(field, "is required")
    elif len(name) > MAX_NAME_LENGTH:
        v.add(field, f"must be at most {MAX_NAME_LENGTH} characters")


def _timestamp(v: Violations, field: str, stamp: timestamp_pb2.Timestamp) -> None:
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos < 1_000_000_000):
        v.add(field, "must be a valid timestamp (years 1 to 9999)")


def _positive_duration(v: Violations, field: str, duration: duration_pb2.Duration) -> None:
    if duration.seconds < 0 or not 0 <= duration.nanos < 1_000_000_000:
        v.add(field, "must be a positive duration")
    elif duration.seconds == 0 and duration.nanos < 1_000_000:
        v.add(field, "must be at least 1 ms")
