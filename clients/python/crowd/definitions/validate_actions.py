"""Validation of audiences, event feeds, cooldown groups and connector actions (Tealium §6-§7).

(Over 400 lines on purpose: audiences, feeds, cooldown groups and the Braze
mapping of actions refer to each other, and their cross-checks read best side by side.)

Actions: a source (audience + trigger, or feed) that exists, a delay only on end-of-visit
triggers (whole hours, 1 h to 365 days), a frequency cap referring to a known cooldown group,
a connector id, and a Braze mapping that can produce a valid request: at least one user
identifier (from an attribute or event field), typed values, Braze's naming rules.

An audience transition may happen at visit end with no event at all, so audience-triggered
actions map attributes only; event data is for feed-triggered actions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from crowd.definitions.durations import duration_ms
from crowd.definitions.limits import (
    BRAZE_IDENTIFIER_FIELDS,
    BRAZE_RESERVED_EVENT_PROPERTIES,
    BRAZE_RESERVED_PURCHASE_PROPERTIES,
    HOUR_MS,
    MAX_ACTION_DELAY_MS,
    MAX_AUDIENCE_NAME_LENGTH,
    MAX_BRAZE_NAME_LENGTH,
    MAX_CAP_WINDOW_MS,
    MAX_CONNECTOR_ID_LENGTH,
    MAX_COOLDOWN_WAIT_MS,
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PURCHASE_QUANTITY,
    MIN_ACTION_DELAY_MS,
)
from crowd.definitions.normalise import enum_short_names
from crowd.definitions.validate_rules import check_audience_expression, check_rule
from crowd.definitions.validate_settings import check_duration_range
from crowd.definitions.validation_context import ValidationContext
from crowd.definitions.value_types import (
    COLLECTIONS,
    SCALARS,
    STRINGISH,
    VType,
)
from crowd.profile.v1 import definitions_pb2 as pb

NO_EVENTS_IN_AUDIENCE_ACTIONS = (
    "an audience-triggered action may fire at visit end, when there is no event; map "
    "attributes (enrich one from the event), or trigger the action from an event feed"
)

_SENDABLE = frozenset({*SCALARS, *COLLECTIONS, VType.BADGE, VType.NULL}) - {VType.TIMELINE}
"""Types a Braze attribute or property can carry (timelines and funnels cannot)."""
_DATE_LIKE = frozenset({VType.DATE, VType.STRING, VType.NUMBER})
_ARRAY_ITEMS = frozenset(
    {*STRINGISH, VType.NUMBER, VType.STRING_SET, VType.STRING_ARRAY, VType.NUMBER_ARRAY}
)
_CURRENCY = re.compile(r"[A-Z]{3}")
#: Braze's email_subscribe / push_subscribe states, and a subscription group's.
SUBSCRIBE_STATES = ("opted_in", "subscribed", "unsubscribed")
SUBSCRIPTION_GROUP_STATES = ("subscribed", "unsubscribed")


# --- audiences, feeds, cooldown groups --------------------------------------------------------


def check_audiences(ctx: ValidationContext) -> None:
    """Check every audience: name, expression (attributes and badges only)."""
    names: dict[str, int] = {}
    for i, audience in enumerate(ctx.definitions.audiences):
        path = f"audiences[{i}]"
        if len(audience.name) > MAX_AUDIENCE_NAME_LENGTH:
            ctx.add(
                f"{path}.name",
                f"audience names must be shorter than {MAX_AUDIENCE_NAME_LENGTH + 1} characters",
            )
        # Braze membership attributes use the name (the id when the name is empty).
        effective = audience.name or audience.id
        if effective and effective in names:
            ctx.add(
                f"{path}.name",
                f'audience name "{effective}" is already used by audiences[{names[effective]}]; '
                "Braze membership attributes need distinct names",
            )
        elif effective:
            names[effective] = i
        ctx.check_length(
            audience.description, f"{path}.description", MAX_DESCRIPTION_LENGTH, "description"
        )
        if not audience.HasField("expression"):
            ctx.add(f"{path}.expression", "the audience has no expression")
        else:
            check_audience_expression(ctx, audience.expression, f"{path}.expression")


def check_event_feeds(ctx: ValidationContext) -> None:
    """Check every event feed; its rule may read event data and attributes."""
    for i, feed in enumerate(ctx.definitions.event_feeds):
        path = f"event_feeds[{i}]"
        ctx.check_length(feed.name, f"{path}.name", MAX_NAME_LENGTH, "name")
        if feed.HasField("rule"):
            check_rule(ctx, feed.rule, f"{path}.rule")


def check_cooldown_groups(ctx: ValidationContext) -> None:
    """Check every cooldown group's wait."""
    for i, group in enumerate(ctx.definitions.cooldown_groups):
        path = f"cooldown_groups[{i}].wait"
        if not group.HasField("wait"):
            ctx.add(path, "the cooldown group needs a wait, e.g. 24h")
        else:
            check_duration_range(ctx, group.wait, path, 1000, MAX_COOLDOWN_WAIT_MS, "wait")


# --- actions ----------------------------------------------------------------------------------


def check_actions(ctx: ValidationContext) -> None:
    """Check every connector action."""
    for i, action in enumerate(ctx.definitions.actions):
        check_action(ctx, action, f"actions[{i}]")


def check_action(ctx: ValidationContext, action: pb.ActionDefinition, path: str) -> None:
    """Check one action: source, delay, frequency cap, connector and mapping."""
    ctx.check_length(action.name, f"{path}.name", MAX_NAME_LENGTH, "name")
    source = action.WhichOneof("source")
    trigger: int = pb.TRIGGER_UNSPECIFIED
    if source is None:
        ctx.add(
            path, "the action has no source; set audience (an audience and a trigger) or event_feed"
        )
    elif source == "audience":
        trigger = _check_audience_trigger(ctx, action.audience, f"{path}.audience")
    else:
        _check_feed_reference(ctx, action.event_feed, f"{path}.event_feed")
    if action.HasField("delay"):
        _check_delay(ctx, action, trigger, f"{path}.delay")
    if action.HasField("frequency_cap"):
        _check_frequency_cap(ctx, action.frequency_cap, f"{path}.frequency_cap")
    if not action.connector_id:
        ctx.add(f"{path}.connector_id", "the connector id is empty")
    else:
        ctx.check_length(
            action.connector_id, f"{path}.connector_id", MAX_CONNECTOR_ID_LENGTH, "connector id"
        )
    no_events = NO_EVENTS_IN_AUDIENCE_ACTIONS if source == "audience" else None
    mapping = action.WhichOneof("mapping")
    if mapping is None:
        ctx.add(
            path,
            "the action has no mapping; set track_user, delete_user, identify_user or create_alias",
        )
    elif mapping == "track_user":
        _check_track_user(ctx, action.track_user, f"{path}.track_user", no_events)
    elif mapping == "delete_user":
        _check_identifier(
            ctx,
            action.delete_user.identifier,
            action.delete_user.HasField("identifier"),
            f"{path}.delete_user.identifier",
            no_events,
        )
    elif mapping == "create_alias":
        _check_create_alias(ctx, action.create_alias, f"{path}.create_alias", no_events)
    else:
        _check_identify_user(ctx, action.identify_user, f"{path}.identify_user", no_events)


def _check_audience_trigger(ctx: ValidationContext, source: pb.AudienceTrigger, path: str) -> int:
    if not source.audience_id:
        ctx.add(f"{path}.audience_id", "the audience id is empty")
    elif source.audience_id not in ctx.audiences:
        ctx.add(f"{path}.audience_id", f'unknown audience "{source.audience_id}"')
    if source.trigger == pb.TRIGGER_UNSPECIFIED:
        choices = ", ".join(enum_short_names(pb.Trigger.DESCRIPTOR))
        ctx.add(f"{path}.trigger", f"the trigger is not set; use one of {choices}")
    elif source.trigger not in pb.Trigger.values():
        ctx.add(f"{path}.trigger", f"unknown trigger {source.trigger}")
    return source.trigger


def _check_feed_reference(ctx: ValidationContext, feed_id: str, path: str) -> None:
    if not feed_id:
        ctx.add(path, "the event feed id is empty")
    elif feed_id not in ctx.feeds:
        ctx.add(path, f'unknown event feed "{feed_id}"')


def _check_delay(
    ctx: ValidationContext, action: pb.ActionDefinition, trigger: int, path: str
) -> None:
    if trigger != pb.TRIGGER_IN_AUDIENCE_AT_VISIT_END:
        ctx.add(path, "a delay is only allowed with the in_audience_at_visit_end trigger")
        return
    if not check_duration_range(
        ctx, action.delay, path, MIN_ACTION_DELAY_MS, MAX_ACTION_DELAY_MS, "delay"
    ):
        return
    if duration_ms(action.delay) % HOUR_MS or action.delay.nanos:
        ctx.add(path, "the delay must be a whole number of hours")


def _check_frequency_cap(ctx: ValidationContext, cap: pb.FrequencyCap, path: str) -> None:
    if cap.cooldown_group and cap.cooldown_group not in ctx.cooldown_groups:
        ctx.add(f"{path}.cooldown_group", f'unknown cooldown group "{cap.cooldown_group}"')
    if cap.priority < 0:
        ctx.add(f"{path}.priority", "the priority must not be negative (higher wins)")
    elif cap.priority and not cap.cooldown_group:
        ctx.add(f"{path}.priority", "a priority only matters within a cooldown group")
    if cap.max_sends < 0:
        ctx.add(f"{path}.max_sends", "max_sends must not be negative")
    elif cap.max_sends > 0:
        if not cap.HasField("window"):
            ctx.add(f"{path}.window", "max_sends needs a window, e.g. 24h")
        else:
            check_duration_range(
                ctx, cap.window, f"{path}.window", 1000, MAX_CAP_WINDOW_MS, "window"
            )
    elif cap.HasField("window"):
        ctx.add(f"{path}.window", "the window is only used with max_sends")
    if not cap.cooldown_group and cap.max_sends == 0:
        ctx.add(path, "the frequency cap sets neither cooldown_group nor max_sends")


# --- Braze mappings ---------------------------------------------------------------------------


def _check_identifier(
    ctx: ValidationContext,
    identifier: pb.UserIdentifierMapping,
    present: bool,
    path: str,
    no_events: str | None,
) -> None:
    fields = ("external_id", "braze_id", "alias_name", "alias_label", "email", "phone")
    mapped = [name for name in fields if present and identifier.HasField(name)]  # type: ignore[arg-type]
    if not mapped or mapped == ["alias_label"]:
        ctx.add(
            path,
            "map at least one user id: external_id, braze_id, alias_name + alias_label, "
            "email or phone",
        )
    if "alias_name" in mapped and "alias_label" not in mapped:
        ctx.add(f"{path}.alias_label", "a user alias needs both alias_name and alias_label")
    elif "alias_label" in mapped and "alias_name" not in mapped:
        ctx.add(f"{path}.alias_name", "a user alias needs both alias_name and alias_label")
    for name in mapped:
        # A constant id would send every visitor to the same Braze user.
        ctx.check_typed_operand(
            getattr(identifier, name),
            f"{path}.{name}",
            STRINGISH,
            name,
            no_events=no_events,
            constant_allowed=name == "alias_label",
        )


check_identifier = _check_identifier
"""Check a user identifier mapping (shared with audience forwarding)."""


def _check_identify_user(
    ctx: ValidationContext, mapping: pb.IdentifyUserMapping, path: str, no_events: str | None
) -> None:
    names: tuple[_UserIdField, ...] = ("external_id", "alias_name", "alias_label")
    _check_alias_operands(ctx, mapping, path, no_events, "identify user", names)


def _check_create_alias(
    ctx: ValidationContext, mapping: pb.CreateAliasMapping, path: str, no_events: str | None
) -> None:
    names: tuple[_UserIdField, ...] = ("alias_name", "alias_label", "external_id")
    # Without an external id Braze creates an alias-only user.
    _check_alias_operands(ctx, mapping, path, no_events, "create alias", names, "external_id")


_UserIdField = Literal["external_id", "alias_name", "alias_label"]


def _check_alias_operands(
    ctx: ValidationContext,
    mapping: pb.IdentifyUserMapping | pb.CreateAliasMapping,
    path: str,
    no_events: str | None,
    what: str,
    names: tuple[_UserIdField, ...],
    optional: str = "",
) -> None:
    """The user-id operands ``names``, in that order: each a string operand (the alias
    label may be a constant); every one but ``optional`` required."""
    for name in names:
        if not mapping.HasField(name):
            if name != optional:
                ctx.add(f"{path}.{name}", f"{what} needs {name}")
            continue
        ctx.check_typed_operand(
            getattr(mapping, name),
            f"{path}.{name}",
            STRINGISH,
            name,
            no_events=no_events,
            constant_allowed=name == "alias_label",
        )


def _constant_text(operand: pb.Operand) -> str | None:
    """The operand's constant string, ``None`` when it is not a constant string."""
    if operand.WhichOneof("source") != "constant":
        return None
    if operand.constant.WhichOneof("kind") != "string_value":
        return None
    return operand.constant.string_value


def _check_constant_state(
    ctx: ValidationContext, operand: pb.Operand, path: str, states: tuple[str, ...]
) -> None:
    """A constant subscription state must be one Braze takes (attributes are checked when sent:
    other values are left out)."""
    if operand.WhichOneof("source") != "constant":
        return
    if _constant_text(operand) not in states:
        ctx.add(f"{path}.constant", f"the state must be one of {', '.join(states)}")


def _check_subscribe_attribute(
    ctx: ValidationContext, attribute: pb.AttributeMapping, path: str
) -> None:
    """email_subscribe / push_subscribe: set only, to one of Braze's three states."""
    if attribute.operation not in (pb.ATTRIBUTE_OPERATION_UNSPECIFIED, pb.ATTRIBUTE_OPERATION_SET):
        ctx.add(f"{path}.operation", f"{attribute.name} can only be set")
    if attribute.HasField("value"):
        _check_constant_state(ctx, attribute.value, f"{path}.value", SUBSCRIBE_STATES)


def _check_subscription_groups(
    ctx: ValidationContext, mapping: pb.TrackUserMapping, path: str, no_events: str | None
) -> None:
    groups: dict[str, int] = {}
    for k, group in enumerate(mapping.subscription_groups):
        group_path = f"{path}.subscription_groups[{k}]"
        if not group.HasField("subscription_group_id"):
            ctx.add(f"{group_path}.subscription_group_id", "the subscription group id is required")
        else:
            id_path = f"{group_path}.subscription_group_id"
            operand = group.subscription_group_id
            ctx.check_typed_operand(
                operand, id_path, STRINGISH, "subscription group id", no_events=no_events
            )
            group_id = _constant_text(operand)
            if group_id is not None and not group_id.strip():
                ctx.add(f"{id_path}.constant", "the subscription group id is empty")
            elif group_id is not None and len(group_id) > MAX_BRAZE_NAME_LENGTH:
                ctx.add(
                    f"{id_path}.constant",
                    f"subscription group ids have at most {MAX_BRAZE_NAME_LENGTH} characters",
                )
            elif group_id is not None and group_id in groups:
                ctx.add(
                    f"{id_path}.constant",
                    f'subscription group "{group_id}" is already mapped by '
                    f"{path}.subscription_groups[{groups[group_id]}]",
                )
            elif group_id is not None:
                groups[group_id] = k
        if not group.HasField("subscription_state"):
            ctx.add(f"{group_path}.subscription_state", "the subscription state is required")
        else:
            state_path = f"{group_path}.subscription_state"
            ctx.check_typed_operand(
                group.subscription_state, state_path, STRINGISH, "state", no_events=no_events
            )
            _check_constant_state(
                ctx, group.subscription_state, state_path, SUBSCRIPTION_GROUP_STATES
            )


def _check_track_user(
    ctx: ValidationContext, mapping: pb.TrackUserMapping, path: str, no_events: str | None
) -> None:
    _check_identifier(
        ctx, mapping.identifier, mapping.HasField("identifier"), f"{path}.identifier", no_events
    )
    if not (
        mapping.attributes
        or mapping.events
        or mapping.purchases
        or mapping.subscription_groups
        or mapping.membership != pb.MEMBERSHIP_MODE_UNSPECIFIED
    ):
        ctx.add(
            path,
            "track user sends nothing; map attributes, events, purchases or subscription "
            "groups, or set membership",
        )
    if mapping.membership not in pb.MembershipMode.values():
        ctx.add(f"{path}.membership", f"unknown membership mode {mapping.membership}")
    names: dict[str, int] = {}
    for k, attribute in enumerate(mapping.attributes):
        attribute_path = f"{path}.attributes[{k}]"
        if _check_braze_name(ctx, attribute.name, f"{attribute_path}.name", "attribute"):
            if attribute.name in BRAZE_IDENTIFIER_FIELDS:
                ctx.add(
                    f"{attribute_path}.name",
                    f'"{attribute.name}" is a user identifier, not an attribute; '
                    "map it in identifier",
                )
            elif attribute.name == "subscription_groups":
                ctx.add(
                    f"{attribute_path}.name",
                    "map subscription group states in subscription_groups (one entry per group)",
                )
            elif attribute.name in names:
                ctx.add(
                    f"{attribute_path}.name",
                    f'attribute "{attribute.name}" is already mapped by '
                    f"{path}.attributes[{names[attribute.name]}]",
                )
            else:
                names[attribute.name] = k
        _check_attribute_mapping(ctx, attribute, attribute_path, no_events)
        if attribute.name in ("email_subscribe", "push_subscribe"):
            _check_subscribe_attribute(ctx, attribute, attribute_path)
    _check_subscription_groups(ctx, mapping, path, no_events)
    for k, event in enumerate(mapping.events):
        _check_event_mapping(ctx, event, f"{path}.events[{k}]", no_events)
    for k, purchase in enumerate(mapping.purchases):
        _check_purchase_mapping(ctx, purchase, f"{path}.purchases[{k}]", no_events)


def _check_braze_name(ctx: ValidationContext, name: str, path: str, what: str) -> bool:
    if not name:
        ctx.add(path, f"the {what} name is empty")
        return False
    if name != name.strip():
        ctx.add(path, f"the {what} name has leading or trailing spaces (Braze strips them)")
        return False
    if name.startswith("$"):
        ctx.add(path, f'Braze {what} names cannot start with "$"')
        return False
    if len(name) > MAX_BRAZE_NAME_LENGTH:
        ctx.add(path, f"Braze {what} names have at most {MAX_BRAZE_NAME_LENGTH} characters")
        return False
    return True


def _check_attribute_mapping(
    ctx: ValidationContext, attribute: pb.AttributeMapping, path: str, no_events: str | None
) -> None:
    operation = attribute.operation
    if operation not in pb.AttributeOperation.values():
        ctx.add(f"{path}.operation", f"unknown attribute operation {operation}")
        operation = pb.ATTRIBUTE_OPERATION_UNSPECIFIED
    if not attribute.HasField("value"):
        ctx.add(f"{path}.value", "the attribute mapping has no value")
        return
    if operation == pb.ATTRIBUTE_OPERATION_INCREMENT:
        accepts, role = frozenset({VType.NUMBER}), "increment"
    elif operation in (pb.ATTRIBUTE_OPERATION_ADD, pb.ATTRIBUTE_OPERATION_REMOVE):
        accepts = _ARRAY_ITEMS
        role = "add" if operation == pb.ATTRIBUTE_OPERATION_ADD else "remove"
    else:
        accepts, role = _SENDABLE, "set"
    ctx.check_typed_operand(attribute.value, f"{path}.value", accepts, role, no_events=no_events)


def _check_event_mapping(
    ctx: ValidationContext, event: pb.EventMapping, path: str, no_events: str | None
) -> None:
    if not event.HasField("name"):
        ctx.add(f"{path}.name", "a Braze event needs a name")
    else:
        vtype = ctx.check_typed_operand(
            event.name, f"{path}.name", STRINGISH, "event name", no_events=no_events
        )
        if vtype is VType.STRING and event.name.WhichOneof("source") == "constant":
            _check_braze_name(ctx, event.name.constant.string_value, f"{path}.name", "event")
    if event.HasField("time"):
        ctx.check_typed_operand(event.time, f"{path}.time", _DATE_LIKE, "time", no_events=no_events)
    _check_properties(
        ctx,
        event.properties.items(),
        f"{path}.properties",
        BRAZE_RESERVED_EVENT_PROPERTIES,
        no_events,
    )


def _check_purchase_mapping(
    ctx: ValidationContext, purchase: pb.PurchaseMapping, path: str, no_events: str | None
) -> None:
    required = (
        ("product_id", STRINGISH),
        ("currency", STRINGISH),
        ("price", frozenset({VType.NUMBER})),
    )
    for name, accepts in required:
        if not purchase.HasField(name):  # type: ignore[arg-type]
            ctx.add(f"{path}.{name}", f"a Braze purchase needs {name.replace('_', ' ')}")
            continue
        ctx.check_typed_operand(
            getattr(purchase, name), f"{path}.{name}", accepts, name, no_events=no_events
        )
    currency = purchase.currency
    if (
        currency.WhichOneof("source") == "constant"
        and currency.constant.WhichOneof("kind") == "string_value"
        and not _CURRENCY.fullmatch(currency.constant.string_value)
    ):
        ctx.add(
            f"{path}.currency.constant.string_value",
            "the currency must be an ISO 4217 code such as USD",
        )
    if purchase.HasField("quantity"):
        quantity = purchase.quantity
        ctx.check_typed_operand(
            quantity, f"{path}.quantity", frozenset({VType.NUMBER}), "quantity", no_events=no_events
        )
        if (
            quantity.WhichOneof("source") == "constant"
            and quantity.constant.WhichOneof("kind") == "number_value"
        ):
            value = quantity.constant.number_value
            if not (value.is_integer() and 1 <= value <= MAX_PURCHASE_QUANTITY):
                ctx.add(
                    f"{path}.quantity.constant.number_value",
                    f"the quantity must be a whole number from 1 to {MAX_PURCHASE_QUANTITY}",
                )
    if purchase.HasField("time"):
        ctx.check_typed_operand(
            purchase.time, f"{path}.time", _DATE_LIKE, "time", no_events=no_events
        )
    _check_properties(
        ctx,
        purchase.properties.items(),
        f"{path}.properties",
        BRAZE_RESERVED_PURCHASE_PROPERTIES,
        no_events,
    )


def _check_properties(
    ctx: ValidationContext,
    properties: Iterable[tuple[str, pb.Operand]],
    path: str,
    reserved: frozenset[str],
    no_events: str | None,
) -> None:
    for key, operand in sorted(properties, key=lambda item: item[0]):
        property_path = f"{path}[{key!r}]"
        if _check_braze_name(ctx, key, property_path, "property") and key in reserved:
            ctx.add(property_path, f'"{key}" is a reserved Braze property name')
        ctx.check_typed_operand(operand, property_path, _SENDABLE, "property", no_events=no_events)
