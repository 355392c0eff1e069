"""Braze payload rules (dispatch_service/braze/rules.py) as the builder applies them: each
action below would be refused by Braze (or silently cut), so building it names the field."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crowd.common.v1.value_pb2 import Value
from crowd.dispatch.v1.action_pb2 import (
    Action,
    Attribute,
    Purchase,
    TrackEvent,
    TrackUser,
    UserIds,
)
from dispatch_service.braze import InvalidAction, build_objects
from dispatch_service.braze.admission import delivery_violations
from tests.braze.conftest import connector_for
from tests.braze.helpers import identify_action, membership_action, track_action, value

CONNECTOR = connector_for("http://127.0.0.1:9")


def _track(user: UserIds, *attributes: Attribute, **parts: object) -> Action:
    return Action(track_user=TrackUser(user=user, attributes=attributes, **parts))  # type: ignore[arg-type]


def _set(name: str, raw: object) -> Attribute:
    return Attribute(name=name, set=value(raw))


_U = UserIds(external_id="u1")


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (track_action("anonymous", {"a": 1}), "track_user.user.external_id"),
        (track_action(" NULL ", {"a": 1}), "track_user.user.external_id"),
        (identify_action("0", "anon"), "identify_user.external_id"),
        (_track(UserIds(email="nope"), _set("a", 1)), "track_user.user.email"),
        (_track(UserIds(phone="call me"), _set("a", 1)), "track_user.user.phone"),
        (_track(_U, _set("$price", 1)), "track_user.attributes[0].name"),
        (_track(_U, _set("n" * 256, 1)), "track_user.attributes[0].name"),
        (_track(_U, _set("alias_name", "x")), "track_user.attributes[0].name"),
        (
            _track(UserIds(phone="+15555550100"), _set("email", "a@b.co")),
            "track_user.attributes[0].name",
        ),
        (_track(_U, _set("gender", "x")), "track_user.attributes[0]"),
        (_track(_U, _set("email", "nope")), "track_user.attributes[0]"),
        (_track(_U, _set("dob", 19900517)), "track_user.attributes[0]"),
        (_track(_U, _set("current_location", "here")), "track_user.attributes[0]"),
        (_track(_U, Attribute(name="email", increment=1)), "track_user.attributes[0]"),
        (_track(_U, _set("bio", "b" * 256)), "track_user.attributes[0].set.string_value"),
        (_track(_U, _set("tags", ["t"] * 501)), "track_user.attributes[0].set"),
        (
            _track(_U, _set("tags", ["ok", "t" * 256])),
            "track_user.attributes[0].set.string_list.values[1]",
        ),
        (_track(_U, Attribute(name="n", increment=2.0**54)), "track_user.attributes[0].increment"),
        (
            _track(_U, Attribute(name="n", set=Value(timestamp_value=Timestamp(seconds=2**40)))),
            "track_user.attributes[0].set.timestamp_value",
        ),
        (
            _track(_U, events=[TrackEvent(name="e", time=Timestamp(seconds=-(2**40)))]),
            "track_user.events[0].time",
        ),
        (
            _track(_U, events=[TrackEvent(name="e", properties={"v": value("v" * 256)})]),
            "track_user.events[0].properties['v'].string_value",
        ),
        (
            _track(
                _U,
                events=[
                    TrackEvent(
                        name="e", properties={f"p{i}": value(["v" * 250] * 2) for i in range(200)}
                    )
                ],
            ),
            "track_user.events[0].properties",
        ),
        (
            _track(
                _U,
                purchases=[
                    Purchase(
                        product_id="p",
                        currency="USD",
                        price=1,
                        properties={f"p{i}": value(i) for i in range(257)},
                    )
                ],
            ),
            "track_user.purchases[0].properties",
        ),
        (
            _track(_U, purchases=[Purchase(product_id="p", currency="usd", price=1)]),
            "track_user.purchases[0].currency",
        ),
        (membership_action("u1", ["a" * 256]), "update_membership.audiences[0]"),
        (membership_action("u1", ["VIP "]), "update_membership.audiences[0]"),
        (membership_action("u1", [f"a{i}" for i in range(501)]), "update_membership.audiences"),
    ],
)
def test_what_braze_would_refuse_is_named_by_field(action: Action, field: str) -> None:
    with pytest.raises(InvalidAction) as caught:
        build_objects(action, CONNECTOR)
    assert field in {v.field for v in caught.value.violations}


def test_values_at_the_limits_build() -> None:
    action = _track(
        _U,
        _set("bio", "b" * 255),
        _set("tags", ["t" * 255] * 300),
        _set("gender", "f"),
        _set("email", "a@b.co"),
        Attribute(name="n", increment=2.0**53),
        events=[TrackEvent(name="e" * 255, properties={"p" * 255: value("v" * 255)})],
    )
    objects = build_objects(action, CONNECTOR)
    assert objects.attributes.to_json()["bio"] == "b" * 255  # type: ignore[union-attr]


def test_an_action_one_request_cannot_carry_is_refused_at_intake() -> None:
    # 80 events: more objects than a /users/track request takes (75), never split.
    action = track_action("u1", events=["e"] * 80)
    [violation] = delivery_violations(action, CONNECTOR)
    assert violation.field == "track_user"
    assert "75" in violation.description
    # Attributes that build fine one by one but make a 100 KB object together.
    big = _track(_U, *(_set(f"a{i}", ["t" * 255] * 100) for i in range(5)))
    [too_big] = delivery_violations(big, CONNECTOR)
    assert too_big.field == "track_user"
    assert "100000 bytes" in too_big.description
