"""Action -> Braze objects: identifiers, values, operations, events, purchases, membership."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crowd.common.v1.value_pb2 import StringList
from crowd.dispatch.v1.action_pb2 import (
    MEMBERSHIP_MODE_BOTH,
    MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP,
    Action,
    Attribute,
    Purchase,
    TrackEvent,
    TrackUser,
    UserAlias,
    UserIds,
)
from dispatch_service.braze import InvalidAction, MembershipMode, build_objects
from dispatch_service.braze.attributes import ArrayEdit, Increment, SetValue, combine
from dispatch_service.braze.payload import DeleteObject, IdentifyObject, TrackObjects
from tests.braze.conftest import connector_for
from tests.braze.helpers import (
    delete_action,
    identify_action,
    membership_action,
    stamp,
    track_action,
    value,
)

CONNECTOR = connector_for("http://127.0.0.1:9")


def track(action: Action) -> TrackObjects:
    objects = build_objects(action, CONNECTOR)
    assert isinstance(objects, TrackObjects)
    return objects


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (
            UserIds(external_id="e", braze_id="b", email="x@y.z", phone="+1555"),
            {"external_id": "e"},
        ),
        (UserIds(braze_id="b", email="x@y.z"), {"braze_id": "b"}),
        (
            UserIds(user_alias=UserAlias(alias_name="n", alias_label="l"), email="x@y.z"),
            {"user_alias": {"alias_name": "n", "alias_label": "l"}, "_update_existing_only": False},
        ),
        (UserIds(email="x@y.z", phone="+1555"), {"email": "x@y.z"}),
        (UserIds(phone="+15555550100"), {"phone": "+15555550100"}),
    ],
)
def test_identifier_priority(ids: UserIds, expected: dict[str, object]) -> None:
    action = Action(track_user=TrackUser(user=ids, attributes=[Attribute(name="a", set=value(1))]))
    body = track(action).attributes.to_json()  # type: ignore[union-attr]
    assert body == {**expected, "a": 1}


def test_values_and_operations_become_braze_json() -> None:
    moment = datetime(2024, 5, 1, 8, 30, 15, 250000, tzinfo=UTC)
    action = track_action(
        "u1",
        {"name": "Ada", "vip": True, "score": 12.0, "ratio": 0.25, "gone": None, "seen": moment,
         "tags": ["a", "b"]},
        operations=[
            Attribute(name="visits", increment=2),
            Attribute(name="visits", increment=-1),
            Attribute(name="topics", add=StringList(values=["x"])),
            Attribute(name="old", remove=StringList(values=["y"])),
        ],
        update_existing_only=True,
    )  # fmt: skip
    assert track(action).attributes.to_json() == {  # type: ignore[union-attr]
        "external_id": "u1",
        "_update_existing_only": True,
        "name": "Ada",
        "vip": True,
        "score": 12,
        "ratio": 0.25,
        "gone": None,
        "seen": "2024-05-01T08:30:15.250Z",
        "tags": ["a", "b"],
        "visits": {"inc": 1},
        "topics": {"add": ["x"]},
        "old": {"remove": ["y"]},
    }


def test_events_and_purchases_default_to_fired_at() -> None:
    own_time = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    action = track_action("u1")
    action.track_user.events.extend(
        [
            TrackEvent(name="viewed", properties={"sku": value("A1"), "n": value(3)}),
            TrackEvent(name="paid", time=stamp(own_time)),
        ]
    )
    action.track_user.purchases.append(
        Purchase(product_id="p1", currency="EUR", price=19.99, properties={"size": value("L")})
    )
    objects = track(action)
    assert objects.attributes is None
    assert objects.events == (
        {
            "external_id": "u1",
            "name": "viewed",
            "time": "2025-03-01T12:00:00.000Z",
            "properties": {"n": 3, "sku": "A1"},
        },
        {"external_id": "u1", "name": "paid", "time": "2024-01-02T03:04:05.000Z"},
    )
    assert objects.purchases == (
        {
            "external_id": "u1",
            "product_id": "p1",
            "currency": "EUR",
            "price": 19.99,
            "quantity": 1,
            "time": "2025-03-01T12:00:00.000Z",
            "properties": {"size": "L"},
        },
    )


def test_membership_modes() -> None:
    both = membership_action("u1", ["VIP", "Cart abandoners", "VIP"], left=["Newcomers"])
    both.update_membership.mode = MEMBERSHIP_MODE_BOTH
    assert track(both).attributes.to_json() == {  # type: ignore[union-attr]
        "external_id": "u1",
        "SegmentMembership": ["Cart abandoners", "VIP"],
        "In Cart abandoners": True,
        "In VIP": True,
        "In Newcomers": False,
    }
    single = membership_action("u1", ["B", "A"])
    single.update_membership.mode = MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP
    assert track(single).attributes.to_json() == {  # type: ignore[union-attr]
        "external_id": "u1",
        "SegmentMembership": ["A", "B"],
    }
    default = build_objects(membership_action("u1", ["A"], left=["B"]), CONNECTOR)
    assert CONNECTOR.membership_default_mode is MembershipMode.IN_AUDIENCE_ATTRIBUTES
    assert isinstance(default, TrackObjects)
    assert default.attributes.to_json() == {  # type: ignore[union-attr]
        "external_id": "u1",
        "In A": True,
        "In B": False,
    }


def test_delete_and_identify_objects() -> None:
    delete = build_objects(delete_action(UserIds(email="a@b.co", braze_id="b1")), CONNECTOR)
    assert isinstance(delete, DeleteObject)
    assert (delete.array, delete.entry()) == ("braze_ids", "b1")
    by_email = build_objects(delete_action(UserIds(email="a@b.co")), CONNECTOR)
    assert isinstance(by_email, DeleteObject)
    assert by_email.entry() == {"email": "a@b.co", "prioritization": ["most_recently_updated"]}
    identify = build_objects(identify_action("ext-1", "anon-1"), CONNECTOR)
    assert isinstance(identify, IdentifyObject)
    assert identify.entry() == {
        "external_id": "ext-1",
        "user_alias": {"alias_name": "anon-1", "alias_label": "crowd_id"},
    }


def test_invalid_actions_list_every_violation() -> None:
    action = Action(
        track_user=TrackUser(
            user=UserIds(external_id="u1"),
            attributes=[
                Attribute(name="", set=value(1)),
                Attribute(name="external_id", set=value("x")),
                Attribute(name="n", increment=1.5),
                Attribute(name="long", set=value("z" * 256)),
                Attribute(name="unset"),
            ],
            events=[TrackEvent(name=" ", properties={"time": value(1)})],
            purchases=[Purchase(product_id="", currency="euro", price=1, quantity=101)],
        )
    )
    with pytest.raises(InvalidAction) as caught:
        build_objects(action, CONNECTOR)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "track_user.attributes[0].name",
        "track_user.attributes[1].name",
        "track_user.attributes[2].increment",
        "track_user.attributes[3].set.string_value",
        "track_user.attributes[4].operation",
        "track_user.events[0].name",
        "track_user.events[0].properties['time']",
        "track_user.purchases[0].product_id",
        "track_user.purchases[0].currency",
        "track_user.purchases[0].quantity",
    }


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (Action(), "payload"),
        (Action(track_user=TrackUser()), "track_user.user"),
        (
            delete_action(UserIds(user_alias=UserAlias(alias_name="n"))),
            "delete_user.user.user_alias.alias_label",
        ),
        (identify_action("", "anon"), "identify_user.external_id"),
        (track_action("x" * 988, {"a": 1}), "track_user.user.external_id"),
    ],
)
def test_missing_identifiers_are_invalid(action: Action, field: str) -> None:
    with pytest.raises(InvalidAction) as caught:
        build_objects(action, CONNECTOR)
    assert [v.field for v in caught.value.violations] == [field]


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        (SetValue(1), SetValue(2), SetValue(2)),
        (SetValue(5), Increment(3), SetValue(8)),
        (SetValue(None), Increment(3), SetValue(3)),
        (Increment(2), Increment(-5), Increment(-3)),
        (Increment(2), SetValue("x"), SetValue("x")),
        (SetValue(["a", "b"]), ArrayEdit(add=("c", "a"), remove=("b",)), SetValue(["c", "a"])),
        (SetValue(None), ArrayEdit(add=("a",)), SetValue(["a"])),
        (ArrayEdit(add=("a",)), ArrayEdit(remove=("a",)), ArrayEdit(remove=("a",))),
        (ArrayEdit(remove=("a",)), ArrayEdit(add=("a",)), ArrayEdit(add=("a",))),
        (ArrayEdit(add=("a", "b")), ArrayEdit(add=("a",)), ArrayEdit(add=("b", "a"))),
    ],
)
def test_combining_two_writes_of_one_attribute(earlier, later, expected) -> None:
    assert combine(earlier, later) == expected
