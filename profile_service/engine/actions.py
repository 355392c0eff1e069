"""Connector actions: compiling mappings and building ``crowd.dispatch.v1.Action`` messages.

Mapping semantics (documented for the README):

- Identifiers: only the highest-priority identifier with a value is sent: external_id >
  braze_id > user alias (name *and* label) > email > phone. Without any, the action is not
  fired (traced as failed), since Braze could not accept it.
- Attributes: SET sends the value; an unassigned operand sends null, which removes the
  Braze attribute. INCREMENT needs a number, ADD/REMOVE a string or list of strings; with
  no such value the attribute is left out. Values a ``crowd.common.v1.Value`` cannot hold
  (tallies, timelines, funnels) are left out.
- Events need a name and purchases a product id, currency and price; an item missing one is
  left out (the rest of the action is sent). Their time defaults to the triggering event's
  time (the visit's end time for visit-end triggers); properties without a value are left
  out; purchase quantity defaults to 1 and is clamped to Braze's 1..100.
- Product arrays (Tealium's Braze connector): a purchase whose product id is a list of N
  items becomes N purchases, taking item i of every other list of N (price, quantity,
  currency, properties) and sharing scalars; lists of another length in price, quantity or
  currency leave the purchases out (noted). An event whose name is a list becomes one event
  per name in the same way.
- Membership forwarding (TrackUserMapping.membership) adds to the same Track User, so the
  whole update travels in one request: ``SegmentMembership`` (SET, the names of every
  audience the visitor is in, in document order) and/or ``In <audience name>`` (true for
  every current audience, false for each audience left by this change).
- Subscription states: ``email_subscribe`` / ``push_subscribe`` attributes take opted_in,
  subscribed or unsubscribed, each ``subscription_groups`` entry a group id and subscribed or
  unsubscribed; a value read from the profile that is none of these is left out (noted), so
  an invalid state is never sent.
- Create alias (/users/alias/new) needs an alias name and label; the external id is optional.
- Frequency caps are copied from the definition, with the cooldown group's wait.
- ``trace_context.traceparent`` is the triggering event's traceparent (for visit-end and
  delayed actions: the latest event's), so one trace runs from the caller to Braze;
  ``fired_at`` is the processing time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import EvalContext, Reader
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.state import FiredAction
from profile_service.engine.value_protos import (
    duration_from_ms,
    timestamp_from_ms,
    to_common_value,
)
from profile_service.engine.values import (
    to_date,
    to_number,
    to_string,
    to_string_list,
)

SEGMENT_MEMBERSHIP_ATTRIBUTE = "SegmentMembership"
#: Braze's subscribe fields and the states each takes (user attributes object).
SUBSCRIBE_STATES = {
    "email_subscribe": frozenset({"opted_in", "subscribed", "unsubscribed"}),
    "push_subscribe": frozenset({"opted_in", "subscribed", "unsubscribed"}),
}
SUBSCRIPTION_GROUP_STATES = frozenset({"subscribed", "unsubscribed"})
IN_AUDIENCE_PREFIX = "In "

Payload = tuple[str, Any]
"""The Action oneof field name and its message."""
PayloadBuilder = Callable[[EvalContext, Sequence[str]], Payload | str]
"""Builds a payload from the context and the names of audiences just left, or returns why
it cannot."""


@dataclass(frozen=True, slots=True)
class ActionPlan:
    """One enabled action, compiled."""

    id: str
    connector_id: str
    audience_id: str
    """The source audience ("" for an event-feed action)."""
    trigger: int
    feed_id: str
    """The source event feed ("" for an audience action)."""
    delay_ms: int
    """Delay before sending (only for IN_AUDIENCE_AT_VISIT_END)."""
    frequency_cap: action_pb2.FrequencyCapPolicy | None
    build: PayloadBuilder


def _text(read: Reader | None, c: EvalContext) -> str:
    if read is None:
        return ""
    return to_string(read(c)) or ""


def _identifier_builder(
    mapping: pb.UserIdentifierMapping, operands: OperandCompiler
) -> Callable[[EvalContext], action_pb2.UserIds | None]:
    external_id = operands.optional_reader(mapping.external_id)
    braze_id = operands.optional_reader(mapping.braze_id)
    alias_name = operands.optional_reader(mapping.alias_name)
    alias_label = operands.optional_reader(mapping.alias_label)
    email = operands.optional_reader(mapping.email)
    phone = operands.optional_reader(mapping.phone)

    def identify(c: EvalContext) -> action_pb2.UserIds | None:
        if value := _text(external_id, c):
            return action_pb2.UserIds(external_id=value)
        if value := _text(braze_id, c):
            return action_pb2.UserIds(braze_id=value)
        name, label = _text(alias_name, c), _text(alias_label, c)
        if name and label:
            alias = action_pb2.UserAlias(alias_name=name, alias_label=label)
            return action_pb2.UserIds(user_alias=alias)
        if value := _text(email, c):
            return action_pb2.UserIds(email=value)
        if value := _text(phone, c):
            return action_pb2.UserIds(phone=value)
        return None

    return identify


def user_identifier_builder(
    mapping: pb.UserIdentifierMapping, operands: OperandCompiler
) -> Callable[[EvalContext], action_pb2.UserIds | None]:
    """The Braze user of a profile under ``mapping`` (the identifier an action sends), for
    stitch_actions, which compares the identifiers of two profiles."""
    return _identifier_builder(mapping, operands)


Item = tuple[int, int]
"""``(index, count)`` of one item of an expanded product array."""


def _item(value: Any, item: Item | None) -> Any:
    """``value[index]`` when ``value`` is a list of ``count`` items, else ``value`` (a scalar
    or a list of another length is shared by every item)."""
    if item is not None and isinstance(value, list) and len(value) == item[1]:
        return value[item[0]]
    return value


def _items(*values: Any) -> list[Item | None] | None:
    """Tealium's product arrays: when the first value is a list of N items, N items (each
    other list must hold N too, else ``None``: the mapping is left out); else one item."""
    first = values[0]
    if not isinstance(first, list):
        return [None]
    count = len(first)
    if any(isinstance(v, list) and len(v) != count for v in values[1:]):
        return None
    return [(index, count) for index in range(count)]


def _properties_builder(
    properties: Any, operands: OperandCompiler
) -> Callable[[EvalContext, Item | None], dict[str, value_pb2.Value]]:
    readers = tuple((name, operands.reader(operand)) for name, operand in properties.items())

    def build(c: EvalContext, item: Item | None) -> dict[str, value_pb2.Value]:
        converted: dict[str, value_pb2.Value] = {}
        for name, read in readers:
            value = read(c)
            if value is None:
                continue
            proto = to_common_value(_item(value, item))
            if proto is not None:
                converted[name] = proto
        return converted

    return build


def _time(read: Reader | None, c: EvalContext) -> int:
    if read is not None:
        moment = to_date(read(c), c.limits.date_formats)
        if moment is not None:
            return moment
    return c.event_time_ms


AttributeWriter = Callable[[EvalContext, action_pb2.TrackUser], None]


def _attribute_writer(mapping: pb.AttributeMapping, operands: OperandCompiler) -> AttributeWriter:
    name = mapping.name
    read = operands.reader(mapping.value)
    operation = mapping.operation
    if operation == pb.ATTRIBUTE_OPERATION_INCREMENT:

        def increment(c: EvalContext, track: action_pb2.TrackUser) -> None:
            amount = to_number(read(c))
            if amount is not None:
                track.attributes.add(name=name, increment=amount)

        return increment
    if operation in (pb.ATTRIBUTE_OPERATION_ADD, pb.ATTRIBUTE_OPERATION_REMOVE):
        field = "add" if operation == pb.ATTRIBUTE_OPERATION_ADD else "remove"

        def modify(c: EvalContext, track: action_pb2.TrackUser) -> None:
            items = to_string_list(read(c))
            if items:
                attribute = track.attributes.add(name=name)
                getattr(attribute, field).values.extend(items)

        return modify

    states = SUBSCRIBE_STATES.get(name)

    def set_value(c: EvalContext, track: action_pb2.TrackUser) -> None:
        value = read(c)
        if (
            states is not None
            and value is not None
            and not (isinstance(value, str) and value in states)
        ):
            c.note(f"{name} is not one of {', '.join(sorted(states))}; left out")
            return
        proto = to_common_value(value)
        if proto is not None:
            track.attributes.add(name=name, set=proto)

    return set_value


def _subscription_group_writer(
    mapping: pb.SubscriptionGroupMapping, operands: OperandCompiler
) -> AttributeWriter:
    group_id = operands.reader(mapping.subscription_group_id)
    state = operands.reader(mapping.subscription_state)

    def write(c: EvalContext, track: action_pb2.TrackUser) -> None:
        group, value = to_string(group_id(c)), to_string(state(c))
        if not group or value not in SUBSCRIPTION_GROUP_STATES:
            c.note("a subscription group has no id or no subscribed/unsubscribed state; left out")
            return
        track.subscription_groups.add(subscription_group_id=group, subscription_state=value)

    return write


def _event_writer(mapping: pb.EventMapping, operands: OperandCompiler) -> AttributeWriter:
    read_name = operands.reader(mapping.name)
    read_time = operands.optional_reader(mapping.time)
    properties = _properties_builder(mapping.properties, operands)

    def write(c: EvalContext, track: action_pb2.TrackUser) -> None:
        names = read_name(c)
        # A list of names is a product array: one event per name (properties by index).
        for item in _items(names) or ():
            name = to_string(_item(names, item))
            if not name:
                c.note("a mapped event has no name; left out")
                continue
            track.events.add(
                name=name,
                time=timestamp_from_ms(_time(read_time, c)),
                properties=properties(c, item),
            )

    return write


def _purchase_writer(mapping: pb.PurchaseMapping, operands: OperandCompiler) -> AttributeWriter:
    product_id = operands.reader(mapping.product_id)
    currency = operands.reader(mapping.currency)
    price = operands.reader(mapping.price)
    quantity = operands.optional_reader(mapping.quantity)
    read_time = operands.optional_reader(mapping.time)
    properties = _properties_builder(mapping.properties, operands)

    def write(c: EvalContext, track: action_pb2.TrackUser) -> None:
        values = (product_id(c), currency(c), price(c), quantity(c) if quantity else None)
        items = _items(*values)
        if items is None:
            c.note("mapped product arrays differ in length; purchases left out")
            return
        # Tealium's product arrays: equal-length lists give one purchase per index.
        for item in items:
            product, code, amount, count = (_item(v, item) for v in values)
            product, code, amount = to_string(product), to_string(code), to_number(amount)
            if not product or not code or amount is None:
                c.note("a mapped purchase lacks a product id, currency or price; left out")
                continue
            number = to_number(count) if count is not None else None
            track.purchases.add(
                product_id=product,
                currency=code,
                price=amount,
                quantity=min(100, max(1, int(number))) if number is not None else 1,
                time=timestamp_from_ms(_time(read_time, c)),
                properties=properties(c, item),
            )

    return write


def _membership_writer(
    mode: int, audience_names: dict[str, str]
) -> Callable[[EvalContext, action_pb2.TrackUser, Sequence[str]], None] | None:
    if mode == pb.MEMBERSHIP_MODE_UNSPECIFIED:
        return None
    segment = mode in (pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP, pb.MEMBERSHIP_MODE_BOTH)
    per_audience = mode in (pb.MEMBERSHIP_MODE_IN_AUDIENCE_ATTRIBUTES, pb.MEMBERSHIP_MODE_BOTH)

    def write(c: EvalContext, track: action_pb2.TrackUser, left: Sequence[str]) -> None:
        current = c.state.audiences
        names = [name for audience_id, name in audience_names.items() if audience_id in current]
        if segment:
            track.attributes.add(
                name=SEGMENT_MEMBERSHIP_ATTRIBUTE,
                set=value_pb2.Value(string_list=value_pb2.StringList(values=names)),
            )
        if per_audience:
            for name in names:
                track.attributes.add(
                    name=IN_AUDIENCE_PREFIX + name, set=value_pb2.Value(bool_value=True)
                )
            for name in left:
                track.attributes.add(
                    name=IN_AUDIENCE_PREFIX + name, set=value_pb2.Value(bool_value=False)
                )

    return write


def _track_user_builder(
    mapping: pb.TrackUserMapping, operands: OperandCompiler, audience_names: dict[str, str]
) -> PayloadBuilder:
    identify = _identifier_builder(mapping.identifier, operands)
    writers = (
        *(_attribute_writer(m, operands) for m in mapping.attributes),
        *(_event_writer(m, operands) for m in mapping.events),
        *(_purchase_writer(m, operands) for m in mapping.purchases),
        *(_subscription_group_writer(m, operands) for m in mapping.subscription_groups),
    )
    membership = _membership_writer(mapping.membership, audience_names)
    update_existing_only = mapping.update_existing_only

    def build(c: EvalContext, left: Sequence[str]) -> Payload | str:
        user = identify(c)
        if user is None:
            return "no user identifier has a value"
        track = action_pb2.TrackUser(user=user, update_existing_only=update_existing_only)
        for write in writers:
            write(c, track)
        if membership is not None:
            membership(c, track, left)
        return "track_user", track

    return build


def _delete_user_builder(
    mapping: pb.DeleteUserMapping, operands: OperandCompiler
) -> PayloadBuilder:
    identify = _identifier_builder(mapping.identifier, operands)

    def build(c: EvalContext, _left: Sequence[str]) -> Payload | str:
        user = identify(c)
        if user is None:
            return "no user identifier has a value"
        return "delete_user", action_pb2.DeleteUser(user=user)

    return build


def _identify_user_builder(
    mapping: pb.IdentifyUserMapping, operands: OperandCompiler
) -> PayloadBuilder:
    external_id = operands.optional_reader(mapping.external_id)
    alias_name = operands.optional_reader(mapping.alias_name)
    alias_label = operands.optional_reader(mapping.alias_label)

    def build(c: EvalContext, _left: Sequence[str]) -> Payload | str:
        external, name, label = _text(external_id, c), _text(alias_name, c), _text(alias_label, c)
        if not (external and name and label):
            return "identify needs an external id, an alias name and an alias label"
        alias = action_pb2.UserAlias(alias_name=name, alias_label=label)
        return "identify_user", action_pb2.IdentifyUser(external_id=external, user_alias=alias)

    return build


def _create_alias_builder(
    mapping: pb.CreateAliasMapping, operands: OperandCompiler
) -> PayloadBuilder:
    alias_name = operands.optional_reader(mapping.alias_name)
    alias_label = operands.optional_reader(mapping.alias_label)
    external_id = operands.optional_reader(mapping.external_id)

    def build(c: EvalContext, _left: Sequence[str]) -> Payload | str:
        name, label = _text(alias_name, c), _text(alias_label, c)
        if not (name and label):
            return "create alias needs an alias name and an alias label"
        alias = action_pb2.UserAlias(alias_name=name, alias_label=label)
        create = action_pb2.CreateAlias(user_alias=alias, external_id=_text(external_id, c))
        return "create_alias", create

    return build


def _unmapped(_c: EvalContext, _left: Sequence[str]) -> Payload | str:
    return "the action has no mapping"


def _frequency_cap(
    definition: pb.ActionDefinition, cooldown_wait_ms: dict[str, int]
) -> action_pb2.FrequencyCapPolicy | None:
    if not definition.HasField("frequency_cap"):
        return None
    cap = definition.frequency_cap
    policy = action_pb2.FrequencyCapPolicy(
        cooldown_group=cap.cooldown_group, priority=cap.priority, max_sends=cap.max_sends
    )
    if cap.cooldown_group:
        policy.cooldown.CopyFrom(duration_from_ms(cooldown_wait_ms.get(cap.cooldown_group, 0)))
    if cap.HasField("window"):
        policy.window.CopyFrom(cap.window)
    return policy


def compile_action(
    definition: pb.ActionDefinition,
    operands: OperandCompiler,
    audience_names: dict[str, str],
    cooldown_wait_ms: dict[str, int],
) -> ActionPlan:
    """Compile an action definition (its source, cap, delay and mapping)."""
    mapping = definition.WhichOneof("mapping")
    build: PayloadBuilder
    if mapping == "track_user":
        build = _track_user_builder(definition.track_user, operands, audience_names)
    elif mapping == "delete_user":
        build = _delete_user_builder(definition.delete_user, operands)
    elif mapping == "identify_user":
        build = _identify_user_builder(definition.identify_user, operands)
    elif mapping == "create_alias":
        build = _create_alias_builder(definition.create_alias, operands)
    else:
        build = _unmapped
    source = definition.WhichOneof("source")
    trigger = definition.audience.trigger if source == "audience" else pb.TRIGGER_UNSPECIFIED
    delay_ms = 0
    if trigger == pb.TRIGGER_IN_AUDIENCE_AT_VISIT_END and definition.HasField("delay"):
        delay_ms = max(0, definition.delay.seconds * 1000 + definition.delay.nanos // 1_000_000)
    return ActionPlan(
        id=definition.id,
        connector_id=definition.connector_id,
        audience_id=definition.audience.audience_id if source == "audience" else "",
        trigger=trigger,
        feed_id=definition.event_feed if source == "event_feed" else "",
        delay_ms=delay_ms,
        frequency_cap=_frequency_cap(definition, cooldown_wait_ms),
        build=build,
    )


def event_key(profile_id: str, action_id: str, event_id: str) -> str:
    """Idempotency key of an action fired by an event."""
    return f"{profile_id}:{action_id}:{event_id}"


def visit_end_key(profile_id: str, action_id: str, visit_id: str) -> str:
    """Idempotency key of an action fired by a visit end (delayed ones included)."""
    return f"{profile_id}:{action_id}:{visit_id}:end"


def fire(
    plan: ActionPlan,
    c: EvalContext,
    idempotency_key: str,
    left_audience_names: Sequence[str],
    delay_ms: int = 0,
) -> FiredAction | str:
    """Build the action; returns why not when it cannot be built."""
    built = plan.build(c, left_audience_names)
    if isinstance(built, str):
        return built
    field, payload = built
    action = action_pb2.Action(
        idempotency_key=idempotency_key,
        connector_id=plan.connector_id,
        visitor_id=c.state.profile_id,
        action_id=plan.id,
        fired_at=timestamp_from_ms(c.now_ms),
    )
    getattr(action, field).CopyFrom(payload)
    if plan.frequency_cap is not None:
        action.frequency_cap.CopyFrom(plan.frequency_cap)
    traceparent = c.event.traceparent if c.event is not None else c.state.last_traceparent
    if traceparent:
        action.trace_context.traceparent = traceparent
    return FiredAction(plan.id, idempotency_key, action, delay_ms)
