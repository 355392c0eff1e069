"""Action -> Braze objects.

(Over 400 lines on purpose: one function per Braze object kind, each next to the
rules it applies, so that intake and delivery cannot drift apart; the limits themselves are in
rules.py.)

``build_objects`` turns one ``crowd.dispatch.v1.Action`` into what it contributes to a Braze
request, validating everything Braze would refuse so that bad input can be answered with
INVALID_ARGUMENT at intake instead of failing later:

- TrackUser -> an attributes object (identifier by priority, ``_update_existing_only``, values
  from ``crowd.common.v1.Value``, ``{"inc": n}``, ``{"add": [...]}``, ``{"remove": [...]}``),
  event objects and purchase objects (``time`` defaults to the action's ``fired_at``).
- UpdateMembership -> an attributes object. ``SegmentMembership`` is written as the *full*,
  sorted array of the user's audience names, not as add/remove edits: setting a simple array
  costs Braze one data point per call while each added value costs one, a full value is
  idempotent under retries and reordering and repairs drift, and with deltas an unchanged
  membership is not sent at all. ``In <audience>`` booleans are true for every current audience
  and false for every audience left (false, not null, so the key stays queryable in Braze).
- DeleteUser -> one identifier for /users/delete (grouped by identifier kind by the planner).
- IdentifyUser -> one ``aliases_to_identify`` entry for /users/identify.
- CreateAlias -> one ``user_aliases`` entry for /users/alias/new (an alias-only user, or an
  alias for the user of an external_id).
- TrackUser ``subscription_groups`` -> the attributes object's ``subscription_groups`` array
  (one entry per group id, a later state for the same group winning).
- MergeUsers -> one ``merge_updates`` entry for /users/merge, or, for an alias-only user
  merged into an external_id, the ``aliases_to_identify`` entry Braze documents for exactly
  that (``IdentifyObject`` with ``merged_from_alias``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from crowd.common.v1.value_pb2 import Value
from crowd.dispatch.v1.action_pb2 import (
    MEMBERSHIP_MODE_BOTH,
    MEMBERSHIP_MODE_IN_AUDIENCE_ATTRIBUTES,
    MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP,
    Action,
    Attribute,
    CreateAlias,
    DeleteUser,
    IdentifyUser,
    MergeUsers,
    Purchase,
    TrackEvent,
    TrackUser,
    UpdateMembership,
)
from dispatch_service.braze.attributes import (
    ArrayEdit,
    AttributeObject,
    AttributeOp,
    Increment,
    SetValue,
    SubscriptionStates,
    combine,
    op_json,
)
from dispatch_service.braze.cached import cached
from dispatch_service.braze.connector import MembershipMode
from dispatch_service.braze.endpoints import Endpoint
from dispatch_service.braze.rules import (
    EVENT_PROPERTIES_MAX_BYTES,
    EVENT_RESERVED_PROPERTIES,
    PURCHASE_PROPERTIES_MAX_BYTES,
    PURCHASE_RESERVED_PROPERTIES,
    STANDARD_FIELDS,
    alias_problems,
    array_edit_problem,
    array_problem,
    attribute_name_problem,
    currency_problem,
    event_name_problem,
    external_id_problem,
    increment_problem,
    product_id_problem,
    properties_problem,
    property_name_problem,
    quantity_problem,
    standard_attribute_problem,
    string_problem,
    subscription_group_problems,
    timestamp_problem,
)
from dispatch_service.braze.users import (
    BrazeUser,
    IdentifierError,
    alias_user,
    select_user,
)
from dispatch_service.braze.values import (
    BadValue,
    compact_size,
    iso8601,
    number,
    timestamp_to_iso,
    value_to_json,
)


@dataclass(frozen=True)
class Violation:
    """One invalid field, as in google.rpc.BadRequest.FieldViolation."""

    field: str
    """Path below the action, e.g. ``track_user.events[2].name``."""
    description: str


class InvalidAction(ValueError):
    """The action cannot become a valid Braze request; ``violations`` lists every problem."""

    def __init__(self, violations: Iterable[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


@dataclass(frozen=True)
class TrackObjects:
    """What one Track User / Update Membership action adds to a /users/track request."""

    endpoint: ClassVar[Endpoint] = Endpoint.TRACK
    user: BrazeUser
    attributes: AttributeObject | None
    """``None`` when the action writes no attribute."""
    events: tuple[dict[str, Any], ...] = ()
    purchases: tuple[dict[str, Any], ...] = ()

    @property
    def object_count(self) -> int:
        """Objects this action adds when its attributes are not merged into another object."""
        return (self.attributes is not None) + len(self.events) + len(self.purchases)

    @property
    def is_empty(self) -> bool:
        """Nothing left to send."""
        return self.object_count == 0

    @cached
    def sizes(self) -> tuple[tuple[str, int, int], ...]:
        """(array, index within the action, compact JSON bytes) of every object."""
        sizes: list[tuple[str, int, int]] = []
        if self.attributes is not None:
            sizes.append(("attributes", 0, self.attributes.size))
        sizes.extend(("events", i, compact_size(e)) for i, e in enumerate(self.events))
        sizes.extend(("purchases", i, compact_size(p)) for i, p in enumerate(self.purchases))
        return tuple(sizes)

    @cached
    def event_and_purchase_bytes(self) -> int:
        """Bytes the events and purchases add to a body (with separators)."""
        return sum(size + 1 for array, _, size in self.sizes if array != "attributes")


#: /users/delete array per identifier kind.
DELETE_ARRAYS = {
    "external_id": "external_ids",
    "braze_id": "braze_ids",
    "user_alias": "user_aliases",
    "email": "email_addresses",
    "phone": "phone_numbers",
}


@dataclass(frozen=True)
class DeleteObject:
    """One identifier to delete."""

    endpoint: ClassVar[Endpoint] = Endpoint.DELETE
    user: BrazeUser

    @property
    def array(self) -> str:
        """The /users/delete array it belongs to (one kind per request)."""
        return DELETE_ARRAYS[self.user.kind]

    def entry(self) -> Any:
        """The array element."""
        user = self.user
        if user.kind == "user_alias":
            return {"alias_name": user.value, "alias_label": user.alias_label}
        if user.kind == "email":
            # Several profiles may share an email; delete the most recently updated one.
            return {"email": user.value, "prioritization": ["most_recently_updated"]}
        if user.kind == "phone":
            return {"phone": user.value, "prioritization": ["most_recently_updated"]}
        return user.value


@dataclass(frozen=True)
class IdentifyObject:
    """One ``aliases_to_identify`` entry."""

    endpoint: ClassVar[Endpoint] = Endpoint.IDENTIFY
    external_id: str
    alias: BrazeUser
    merged_from_alias: bool = False
    """From a MergeUsers action: sent only if this service ever sent the alias user."""

    def entry(self) -> dict[str, Any]:
        """The array element."""
        return {
            "external_id": self.external_id,
            "user_alias": {"alias_name": self.alias.value, "alias_label": self.alias.alias_label},
        }


def merge_identifier(user: BrazeUser) -> dict[str, Any]:
    """A /users/merge identifier; email and phone need a prioritization (several profiles
    may share one): the most recently updated profile, as for deletes."""
    if user.kind in ("email", "phone"):
        return {user.kind: user.value, "prioritization": ["most_recently_updated"]}
    return user.fields()


@dataclass(frozen=True)
class MergeObject:
    """One ``merge_updates`` entry."""

    endpoint: ClassVar[Endpoint] = Endpoint.MERGE
    to_merge: BrazeUser
    to_keep: BrazeUser

    def entry(self) -> dict[str, Any]:
        """The array element."""
        return {
            "identifier_to_merge": merge_identifier(self.to_merge),
            "identifier_to_keep": merge_identifier(self.to_keep),
        }


@dataclass(frozen=True)
class AliasObject:
    """One ``user_aliases`` entry of /users/alias/new."""

    endpoint: ClassVar[Endpoint] = Endpoint.ALIAS_NEW
    alias: BrazeUser
    external_id: str = ""
    """The user to add the alias to; empty creates an alias-only user."""

    def entry(self) -> dict[str, Any]:
        """The array element."""
        entry = {"alias_name": self.alias.value, "alias_label": self.alias.alias_label}
        if self.external_id:
            entry["external_id"] = self.external_id
        return entry


BrazeObjects = TrackObjects | DeleteObject | IdentifyObject | MergeObject | AliasObject


class _Collector:
    """Gathers violations so one pass reports every problem of an action."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(Violation(field, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidAction(self.violations)


def _fired_at(action: Action, received_at: datetime | None) -> str:
    # fired_at out of range is intake's to refuse (validation.py); never crash on it here.
    if action.HasField("fired_at") and timestamp_problem(action.fired_at) is None:
        return timestamp_to_iso(action.fired_at)
    return iso8601(received_at or datetime.now(UTC))


def _check(errors: _Collector, field: str, problem: str | None) -> bool:
    """Record ``problem`` (from rules.py) at ``field``; True when there is none."""
    if problem is not None:
        errors.add(field, problem)
    return problem is None


def _json_value(value: Value, field: str, errors: _Collector, suffix: str = "") -> Any:
    """``value_to_json(value)``, or None with the problem recorded at ``field + suffix`` (the
    path is built only then: attribute values are converted twice per action)."""
    try:
        return value_to_json(value)
    except BadValue as exc:
        where = field + suffix
        errors.add(f"{where}.{exc.field}" if exc.field else where, str(exc))
        return None


def _time(stamp: Timestamp, field: str, errors: _Collector) -> str | None:
    return timestamp_to_iso(stamp) if _check(errors, field, timestamp_problem(stamp)) else None


def _attribute_op(attr: Attribute, field: str, errors: _Collector) -> AttributeOp | None:
    kind = attr.WhichOneof("operation")
    if kind == "set":
        value = _json_value(attr.set, field, errors, ".set")
        if isinstance(value, list) and not _check(errors, f"{field}.set", array_problem(value)):
            return None
        return SetValue(value)
    if kind == "increment":
        if not _check(errors, f"{field}.increment", increment_problem(attr.increment)):
            return None
        return Increment(int(attr.increment))
    if kind in ("add", "remove"):
        items = list(attr.add.values if kind == "add" else attr.remove.values)
        where = f"{field}.{kind}"
        valid = _check(errors, where, array_edit_problem(items))
        for index, item in enumerate(items):
            valid = _check(errors, f"{where}.values[{index}]", string_problem(item)) and valid
        if not valid:
            return None
        return ArrayEdit(add=tuple(items)) if kind == "add" else ArrayEdit(remove=tuple(items))
    errors.add(f"{field}.operation", "one of set, increment, add or remove is required")
    return None


def _attributes(
    user: BrazeUser, attributes: Iterable[Attribute], field: str, errors: _Collector
) -> dict[str, AttributeOp]:
    ops: dict[str, AttributeOp] = {}
    for index, attr in enumerate(attributes):
        name = attr.name
        where = f"{field}[{index}]"
        problem = attribute_name_problem(name, user.kind)
        if problem is not None:
            errors.add(f"{where}.name", problem)
            continue
        op = _attribute_op(attr, where, errors)
        if op is None:
            continue
        # Standard profile fields (email, gender, dob, ...) take only values of their format
        # (the check is skipped for other names: it would pass, after building op_json).
        if name in STANDARD_FIELDS and not _check(
            errors, where, standard_attribute_problem(name, op_json(op))
        ):
            continue
        # The same attribute twice in one action: the writes combine in order.
        ops[name] = combine(ops[name], op) if name in ops else op
    return ops


def _properties(
    properties: Mapping[str, Value],
    reserved: frozenset[str],
    max_bytes: int,
    field: str,
    errors: _Collector,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(properties):  # sorted: the same properties always encode the same
        where = f"{field}[{key!r}]"
        if _check(errors, where, property_name_problem(key, reserved)):
            out[key] = _json_value(properties[key], where, errors)
    _check(errors, field, properties_problem(len(properties), compact_size(out), max_bytes))
    return out


def _event(
    user: BrazeUser, event: TrackEvent, flag: dict[str, Any], default_time: str, field: str,
    errors: _Collector,
) -> dict[str, Any]:  # fmt: skip
    _check(errors, f"{field}.name", event_name_problem(event.name))
    when = _time(event.time, f"{field}.time", errors) if event.HasField("time") else None
    body: dict[str, Any] = {
        **user.fields(),
        **flag,
        "name": event.name,
        "time": when or default_time,
    }
    props = _properties(
        event.properties,
        EVENT_RESERVED_PROPERTIES,
        EVENT_PROPERTIES_MAX_BYTES,
        f"{field}.properties",
        errors,
    )
    if props:
        body["properties"] = props
    return body


def _purchase(
    user: BrazeUser, purchase: Purchase, flag: dict[str, Any], default_time: str, field: str,
    errors: _Collector,
) -> dict[str, Any]:  # fmt: skip
    _check(errors, f"{field}.product_id", product_id_problem(purchase.product_id))
    _check(errors, f"{field}.currency", currency_problem(purchase.currency))
    _check(errors, f"{field}.quantity", quantity_problem(purchase.quantity))
    price: int | float = 0
    try:
        price = number(purchase.price)
    except BadValue as exc:
        errors.add(f"{field}.price", str(exc))
    when = _time(purchase.time, f"{field}.time", errors) if purchase.HasField("time") else None
    body: dict[str, Any] = {
        **user.fields(),
        **flag,
        "product_id": purchase.product_id,
        "currency": purchase.currency,
        "price": price,
        "quantity": purchase.quantity or 1,
        "time": when or default_time,
    }
    props = _properties(
        purchase.properties,
        PURCHASE_RESERVED_PROPERTIES,
        PURCHASE_PROPERTIES_MAX_BYTES,
        f"{field}.properties",
        errors,
    )
    if props:
        body["properties"] = props
    return body


def _update_flag(user: BrazeUser, update_existing_only: bool) -> dict[str, Any]:
    # Explicit for aliases, whose Braze default is update-only (see AttributeObject.to_json).
    if update_existing_only or user.kind == "user_alias":
        return {"_update_existing_only": update_existing_only}
    return {}


def _track(track: TrackUser, default_time: str, errors: _Collector) -> TrackObjects | None:
    try:
        user = select_user(track.user, "track_user.user")
    except IdentifierError as exc:
        errors.add(exc.field, exc.description)
        return None
    ops = _attributes(user, track.attributes, "track_user.attributes", errors)
    flag = _update_flag(user, track.update_existing_only)
    events = tuple(
        _event(user, e, flag, default_time, f"track_user.events[{i}]", errors)
        for i, e in enumerate(track.events)
    )
    purchases = tuple(
        _purchase(user, p, flag, default_time, f"track_user.purchases[{i}]", errors)
        for i, p in enumerate(track.purchases)
    )
    groups = _subscription_groups(track, errors)
    if groups is not None:
        earlier = ops.get(SUBSCRIPTION_GROUPS)
        ops[SUBSCRIPTION_GROUPS] = combine(earlier, groups) if earlier is not None else groups
    attributes = AttributeObject(user, ops, track.update_existing_only) if ops else None
    return TrackObjects(user, attributes, events, purchases)


#: The attributes object's field for subscription group states.
SUBSCRIPTION_GROUPS = "subscription_groups"


def _subscription_groups(track: TrackUser, errors: _Collector) -> SubscriptionStates | None:
    """The action's subscription group states (``None`` when it sets none or any is invalid)."""
    states: dict[str, str] = {}
    valid = True
    for index, group in enumerate(track.subscription_groups):
        where = f"track_user.subscription_groups[{index}]"
        problems = subscription_group_problems(
            group.subscription_group_id, group.subscription_state
        )
        for part, problem in problems:
            errors.add(f"{where}.{part}", problem)
        valid = valid and not problems
        states[group.subscription_group_id] = group.subscription_state
    if not states or not valid:
        return None
    return SubscriptionStates(tuple(states.items()))


def _audience_name_problem(name: str, key: str, user: BrazeUser) -> str | None:
    # A name is an item of the SegmentMembership array and part of an "In <name>" attribute
    # name, whichever encoding this connector uses today: check both.
    if not name.strip():
        return "audience names are required"
    return string_problem(name) or attribute_name_problem(key, user.kind)


def _membership(
    update: UpdateMembership, connector: MembershipSettings, errors: _Collector
) -> TrackObjects | None:
    try:
        user = select_user(update.user, "update_membership.user")
    except IdentifierError as exc:
        errors.add(exc.field, exc.description)
        return None
    prefix = connector.audience_attribute_prefix
    for field, names in (("audiences", update.audiences), ("left", update.left)):
        for index, name in enumerate(names):
            problem = _audience_name_problem(name, f"{prefix}{name}", user)
            _check(errors, f"update_membership.{field}[{index}]", problem)
    _check(errors, "update_membership.audiences", array_problem(sorted(set(update.audiences))))
    mode = {
        MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP: MembershipMode.SEGMENT_MEMBERSHIP,
        MEMBERSHIP_MODE_IN_AUDIENCE_ATTRIBUTES: MembershipMode.IN_AUDIENCE_ATTRIBUTES,
        MEMBERSHIP_MODE_BOTH: MembershipMode.BOTH,
    }.get(update.mode, connector.membership_default_mode)
    current = sorted(set(update.audiences))
    ops: dict[str, AttributeOp] = {}
    if mode in (MembershipMode.SEGMENT_MEMBERSHIP, MembershipMode.BOTH):
        ops[connector.segment_membership_attribute] = SetValue(current)
    if mode in (MembershipMode.IN_AUDIENCE_ATTRIBUTES, MembershipMode.BOTH):
        for name in current:
            ops[f"{prefix}{name}"] = SetValue(True)
        for name in sorted(set(update.left) - set(current)):
            ops[f"{prefix}{name}"] = SetValue(False)
    attributes = AttributeObject(user, ops) if ops else None
    return TrackObjects(user, attributes)


def _delete(delete: DeleteUser, errors: _Collector) -> DeleteObject | None:
    try:
        return DeleteObject(select_user(delete.user, "delete_user.user"))
    except IdentifierError as exc:
        errors.add(exc.field, exc.description)
        return None


def _identify(identify: IdentifyUser, errors: _Collector) -> IdentifyObject | None:
    alias = identify.user_alias
    parts = alias_problems(alias.alias_name, alias.alias_label)
    for part, problem in parts:
        errors.add(f"identify_user.user_alias.{part}", problem)
    valid = _check(errors, "identify_user.external_id", external_id_problem(identify.external_id))
    if parts or not valid:
        return None
    return IdentifyObject(identify.external_id, alias_user(alias, "identify_user.user_alias"))


def _create_alias(create: CreateAlias, errors: _Collector) -> AliasObject | None:
    alias = create.user_alias
    valid = True
    for part, problem in alias_problems(alias.alias_name, alias.alias_label):
        errors.add(f"create_alias.user_alias.{part}", problem)
        valid = False
    for part, text in (("alias_name", alias.alias_name), ("alias_label", alias.alias_label)):
        valid = _check(errors, f"create_alias.user_alias.{part}", string_problem(text)) and valid
    if create.external_id:
        invalid_id = external_id_problem(create.external_id)
        valid = _check(errors, "create_alias.external_id", invalid_id) and valid
    if not valid:
        return None
    return AliasObject(alias_user(alias, "create_alias.user_alias"), create.external_id)


def _merge_side(ids: Any, field: str, errors: _Collector) -> BrazeUser | None:
    set_fields = [
        name for name in ("external_id", "braze_id", "email", "phone") if getattr(ids, name)
    ]
    if ids.HasField("user_alias") and (ids.user_alias.alias_name or ids.user_alias.alias_label):
        set_fields.append("user_alias")
    if "braze_id" in set_fields:
        errors.add(
            f"{field}.braze_id", "/users/merge takes external_id, user_alias, email or phone"
        )
        return None
    if len(set_fields) != 1:
        errors.add(field, "exactly one of external_id, user_alias, email or phone is required")
        return None
    try:
        return select_user(ids, field)
    except IdentifierError as exc:
        errors.add(exc.field, exc.description)
        return None


def _merge(merge: MergeUsers, errors: _Collector) -> MergeObject | IdentifyObject | None:
    to_merge = _merge_side(merge.user_to_merge, "merge_users.user_to_merge", errors)
    to_keep = _merge_side(merge.user_to_keep, "merge_users.user_to_keep", errors)
    if to_merge is None or to_keep is None:
        return None
    if to_merge.key == to_keep.key:
        errors.add("merge_users.user_to_keep", "must differ from user_to_merge")
        return None
    if to_merge.kind == "user_alias" and to_keep.kind == "external_id":
        # Braze's documented call for alias -> external_id (merge_behavior per connector).
        return IdentifyObject(to_keep.value, to_merge, merged_from_alias=True)
    return MergeObject(to_merge, to_keep)


class MembershipSettings(Protocol):
    """The connector settings the membership encoding needs (a BrazeConnector has them)."""

    @property
    def membership_default_mode(self) -> MembershipMode: ...
    @property
    def segment_membership_attribute(self) -> str: ...
    @property
    def audience_attribute_prefix(self) -> str: ...


def build_objects(
    action: Action, connector: MembershipSettings, *, received_at: datetime | None = None
) -> BrazeObjects:
    """The Braze objects of one action.

    Intake runs it too (admission.py), so an action it accepts builds here without error.

    Args:
        action: The action (its payload decides the endpoint).
        connector: Supplies the membership encoding settings (usually the BrazeConnector).
        received_at: Default event/purchase time when the action has no ``fired_at``.

    Raises:
        InvalidAction: every field Braze would refuse, with its path.
    """
    errors = _Collector()
    kind = action.WhichOneof("payload")
    result: BrazeObjects | None = None
    if kind == "track_user":
        track = action.track_user
        # The default time of events and purchases (a clock read or a timestamp format) is
        # built only when there are any: attribute-only actions are the common case.
        default_time = _fired_at(action, received_at) if track.events or track.purchases else ""
        result = _track(track, default_time, errors)
    elif kind == "update_membership":
        result = _membership(action.update_membership, connector, errors)
    elif kind == "delete_user":
        result = _delete(action.delete_user, errors)
    elif kind == "identify_user":
        result = _identify(action.identify_user, errors)
    elif kind == "merge_users":
        result = _merge(action.merge_users, errors)
    elif kind == "create_alias":
        result = _create_alias(action.create_alias, errors)
    else:
        errors.add("payload", "one of track_user, delete_user, identify_user, "
                   "update_membership, merge_users or create_alias is required")  # fmt: skip
    errors.raise_if_any()
    assert result is not None  # every path that leaves it None reported a violation
    return result
