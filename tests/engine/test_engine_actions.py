"""Mapping fired actions to ``crowd.dispatch.v1.Action``: identifiers, attributes, events,
purchases, membership, frequency caps, trace context, Delete and Identify User."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from tests.engine.helpers import (
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    compile_doc,
    cond,
    const,
    enrichment,
    event,
    evt,
    is_event,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

ATTRIBUTES = [
    attribute("customer_id", "visitor_id", enrichment("set", evt("customer_id"))),
    attribute("email", "string", enrichment("set", evt("email"))),
    attribute("ltv", "number", enrichment("increment", evt("amount"))),
    attribute("seen", "date", enrichment("capture_date")),
    attribute("vip", "badge", enrichment("assign_badge", rule=[[is_event("purchase")]])),
    attribute("brands", "tally", enrichment("increment_tally", evt("brand"))),
    attribute("tags", "string_set", enrichment("add_to_set", evt("tag"))),
    attribute("nickname", "string"),
]


def defs_for(mapping: dict[str, Any], **action: Any) -> Any:
    return compile_doc(
        {
            "attributes": ATTRIBUTES,
            "event_feeds": [{"id": "all", "rule": {}}],
            "cooldown_groups": [{"id": "promo", "wait": "6h"}],
            "actions": [
                {"id": "act", "connector_id": "braze-eu", "event_feed": "all", **mapping, **action}
            ],
        }
    )


def fire_one(mapping: dict[str, Any], data: dict[str, Any], **action: Any) -> action_pb2.Action:
    v = Visitor(defs_for(mapping, **action))
    outcome = v.apply(event("purchase", T0, data, traceparent=TRACEPARENT), now_ms=T0 + 5)
    assert len(outcome.actions) == 1
    return outcome.actions[0].action


def ids(mapping: dict[str, Any], data: dict[str, Any]) -> action_pb2.UserIds:
    return fire_one({"track_user": {"identifier": mapping}}, data).track_user.user


def test_envelope_fields() -> None:
    action = fire_one({"track_user": {"identifier": {"external_id": const("u1")}}}, {})
    assert action.idempotency_key == f"visitor-1:act:purchase-{T0}"
    assert action.connector_id == "braze-eu"
    assert action.visitor_id == "visitor-1"
    assert action.action_id == "act"
    assert action.fired_at.ToMilliseconds() == T0 + 5
    assert action.trace_context.traceparent == TRACEPARENT
    assert not action.HasField("frequency_cap")


def test_identifier_priority() -> None:
    full = {
        "external_id": evt("x"),
        "braze_id": evt("b"),
        "alias_name": evt("n"),
        "alias_label": evt("l"),
        "email": evt("e"),
        "phone": evt("p"),
    }
    data = {"x": "ext", "b": "bz", "n": "name", "l": "label", "e": "a@b.c", "p": "+15551234567"}
    assert ids(full, data) == action_pb2.UserIds(external_id="ext")
    del data["x"]
    assert ids(full, data) == action_pb2.UserIds(braze_id="bz")
    del data["b"]
    assert ids(full, data) == action_pb2.UserIds(
        user_alias=action_pb2.UserAlias(alias_name="name", alias_label="label")
    )
    del data["l"]  # an alias needs both its name and its label
    assert ids(full, data) == action_pb2.UserIds(email="a@b.c")
    del data["e"]
    assert ids(full, data) == action_pb2.UserIds(phone="+15551234567")


def test_track_user_attributes() -> None:
    mapping = {
        "track_user": {
            "identifier": {"external_id": attr("customer_id")},
            "update_existing_only": True,
            "attributes": [
                {"name": "lifetime_value", "value": attr("ltv")},
                {"name": "last_seen", "value": attr("seen")},
                {"name": "vip", "value": attr("vip")},
                {"name": "nickname", "value": attr("nickname")},  # unassigned: null
                {"name": "tags", "value": attr("tags")},
                {"name": "brands", "value": attr("brands")},  # a tally: left out
                {"name": "orders", "value": const(1), "operation": "increment"},
                {"name": "spent", "value": evt("missing"), "operation": "increment"},
                {"name": "interests", "value": evt("tag"), "operation": "add"},
                {"name": "old", "value": const(["x", "y"]), "operation": "remove"},
                {"name": "nothing", "value": evt("missing"), "operation": "add"},
            ],
        }
    }
    action = fire_one(
        mapping, {"customer_id": "cust-1001", "amount": 20.0, "tag": "shoes", "brand": "n"}
    )
    track = action.track_user
    assert track.user.external_id == "cust-1001"
    assert track.update_existing_only is True
    got = {a.name: a for a in track.attributes}
    assert list(got) == [
        "lifetime_value",
        "last_seen",
        "vip",
        "nickname",
        "tags",
        "orders",
        "interests",
        "old",
    ]
    assert got["lifetime_value"].set == value_pb2.Value(number_value=20.0)
    assert got["last_seen"].set.timestamp_value.ToMilliseconds() == T0
    assert got["vip"].set == value_pb2.Value(bool_value=True)
    assert got["nickname"].set == value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    assert list(got["tags"].set.string_list.values) == ["shoes"]
    assert got["orders"].increment == 1.0
    assert list(got["interests"].add.values) == ["shoes"]
    assert list(got["old"].remove.values) == ["x", "y"]


def test_track_user_events_and_purchases() -> None:
    mapping = {
        "track_user": {
            "identifier": {"external_id": const("u1")},
            "events": [
                {
                    "name": const("bought"),
                    "properties": {"amount": evt("amount"), "gone": evt("missing")},
                },
                {"name": evt("missing")},  # no name: left out
                {"name": const("timed"), "time": evt("when")},
            ],
            "purchases": [
                {
                    "product_id": evt("sku"),
                    "currency": const("EUR"),
                    "price": evt("amount"),
                    "quantity": evt("qty"),
                    "properties": {"brand": evt("brand")},
                },
                {"product_id": evt("sku"), "currency": const("EUR")},  # no price: left out
                {"product_id": const("p2"), "currency": const("USD"), "price": const(1)},
            ],
        }
    }
    data = {
        "amount": 9.5,
        "sku": "sku-1",
        "qty": 250.0,
        "brand": "n",
        "when": "2024-01-01T00:00:00Z",
    }
    track = fire_one(mapping, data).track_user
    assert [e.name for e in track.events] == ["bought", "timed"]
    bought, timed = track.events
    assert bought.time.ToMilliseconds() == T0  # defaults to the triggering event's time
    assert dict(bought.properties) == {"amount": value_pb2.Value(number_value=9.5)}
    assert timed.time.ToMilliseconds() == 1_704_067_200_000
    assert [(p.product_id, p.currency, p.price, p.quantity) for p in track.purchases] == [
        ("sku-1", "EUR", 9.5, 100),  # quantity clamped to Braze's 1..100
        ("p2", "USD", 1.0, 1),  # quantity defaults to 1
    ]
    assert track.purchases[0].properties["brand"].string_value == "n"


def test_product_arrays_become_one_purchase_or_event_per_index() -> None:
    # Tealium's Braze connector: equal-length arrays give one purchase (or event) per index.
    purchase = {
        "product_id": evt("product_id"),
        "currency": const("EUR"),  # a scalar is shared
        "price": evt("product_price"),
        "quantity": evt("product_quantity"),
        "properties": {"brand": evt("product_brand"), "page": evt("page")},
    }
    mapping = {
        "track_user": {
            "identifier": {"external_id": const("u1")},
            "events": [{"name": evt("steps"), "properties": {"at": evt("product_id")}}],
            "purchases": [
                purchase,
                {**purchase, "price": evt("short_prices")},  # lengths differ: left out
            ],
        }
    }
    data = {
        "product_id": ["sku-1", "sku-2", "sku-3"],
        "product_price": [10.0, 20.5, 3.0],
        "product_quantity": [1.0, 2.0, 500.0],
        "product_brand": ["a", "b", "c"],
        "page": "checkout",
        "short_prices": [1.0, 2.0],
        "steps": ["viewed", "paid"],
    }
    track = fire_one(mapping, data).track_user
    assert [(p.product_id, p.currency, p.price, p.quantity) for p in track.purchases] == [
        ("sku-1", "EUR", 10.0, 1),
        ("sku-2", "EUR", 20.5, 2),
        ("sku-3", "EUR", 3.0, 100),
    ]
    assert [p.properties["brand"].string_value for p in track.purchases] == ["a", "b", "c"]
    assert {p.properties["page"].string_value for p in track.purchases} == {"checkout"}
    assert [e.name for e in track.events] == ["viewed", "paid"]
    # A list of another length than the names is sent whole.
    assert list(track.events[0].properties["at"].string_list.values) == data["product_id"]


def test_frequency_cap_is_copied_with_the_cooldown_wait() -> None:
    cap = {"cooldown_group": "promo", "priority": 20, "max_sends": 3, "window": "24h"}
    action = fire_one(
        {"track_user": {"identifier": {"external_id": const("u1")}}}, {}, frequency_cap=cap
    )
    policy = action.frequency_cap
    assert policy.cooldown_group == "promo"
    assert policy.cooldown.ToMilliseconds() == 6 * HOUR
    assert policy.priority == 20
    assert policy.max_sends == 3
    assert policy.window.ToMilliseconds() == 24 * HOUR


def test_delete_user_and_identify_user() -> None:
    delete = fire_one(
        {"delete_user": {"identifier": {"external_id": evt("customer_id")}}}, {"customer_id": "c-9"}
    )
    assert delete.WhichOneof("payload") == "delete_user"
    assert delete.delete_user.user.external_id == "c-9"
    identify = fire_one(
        {
            "identify_user": {
                "external_id": evt("customer_id"),
                "alias_name": evt("event.visitor_id"),
                "alias_label": const("anonymous_id"),
            }
        },
        {"customer_id": "c-9"},
    )
    assert identify.identify_user == action_pb2.IdentifyUser(
        external_id="c-9",
        user_alias=action_pb2.UserAlias(alias_name="visitor-1", alias_label="anonymous_id"),
    )
    v = Visitor(defs_for({"identify_user": {"external_id": evt("customer_id")}}))
    assert v.send("purchase", T0).actions == []  # no alias: not fired


def membership_defs(mode: str) -> Any:
    return compile_doc(
        {
            "attributes": [attribute("points", "number", enrichment("increment", evt("points")))],
            "audiences": [
                {
                    "id": "silver",
                    "name": "Silver",
                    "expression": {"condition": cond(attr("points"), "greater_than", const(10))},
                },
                {
                    "id": "low",
                    "name": "Low",
                    "expression": {"condition": cond(attr("points"), "less_than", const(100))},
                },
            ],
            "actions": [
                {
                    "id": "sync",
                    "connector_id": "braze",
                    "audience": {"audience_id": "silver", "trigger": "joined"},
                    "track_user": {"identifier": {"external_id": const("u1")}, "membership": mode},
                }
            ],
        }
    )


def membership_attributes(mode: str) -> list[tuple[str, Any]]:
    v = Visitor(membership_defs(mode))
    v.send("earn", T0, points=5.0)
    outcome = v.send("earn", T0 + MINUTE, points=100.0)  # joins silver, leaves low
    (fired,) = outcome.actions
    result: list[tuple[str, Any]] = []
    for attribute_write in fired.action.track_user.attributes:
        value = attribute_write.set
        kind = value.WhichOneof("kind")
        result.append(
            (
                attribute_write.name,
                list(value.string_list.values) if kind == "string_list" else value.bool_value,
            )
        )
    return result


def test_membership_as_segment_membership() -> None:
    assert membership_attributes("segment_membership") == [("SegmentMembership", ["Silver"])]


def test_membership_as_in_audience_attributes() -> None:
    assert membership_attributes("in_audience_attributes") == [
        ("In Silver", True),
        ("In Low", False),
    ]


def test_membership_both() -> None:
    assert membership_attributes("both") == [
        ("SegmentMembership", ["Silver"]),
        ("In Silver", True),
        ("In Low", False),
    ]


def test_create_alias_maps_name_label_and_optional_external_id() -> None:
    mapping = {"create_alias": {"alias_name": evt("event.visitor_id"), "alias_label": const("v")}}
    action = fire_one(mapping, {})
    assert action.create_alias == action_pb2.CreateAlias(
        user_alias=action_pb2.UserAlias(alias_name="visitor-1", alias_label="v")
    )
    mapping["create_alias"]["external_id"] = evt("customer_id")
    action = fire_one(mapping, {"customer_id": "cust-1"})
    assert action.create_alias.external_id == "cust-1"


def test_subscription_states_are_mapped_and_invalid_ones_left_out() -> None:
    track = {
        "identifier": {"external_id": const("u1")},
        "attributes": [
            {"name": "email_subscribe", "value": evt("email_state")},
            {"name": "push_subscribe", "value": evt("push_state")},
        ],
        "subscription_groups": [
            {"subscription_group_id": const("news"), "subscription_state": evt("news")},
            {"subscription_group_id": evt("group"), "subscription_state": const("subscribed")},
        ],
    }
    data = {"email_state": "opted_in", "push_state": "unsubscribed", "news": "unsubscribed",
            "group": "deals"}  # fmt: skip
    sent = fire_one({"track_user": track}, data).track_user
    assert {a.name: a.set.string_value for a in sent.attributes} == {
        "email_subscribe": "opted_in",
        "push_subscribe": "unsubscribed",
    }
    assert [(g.subscription_group_id, g.subscription_state) for g in sent.subscription_groups] == [
        ("news", "unsubscribed"),
        ("deals", "subscribed"),
    ]
    bad = {"email_state": "yes", "push_state": 3, "news": "opted_in", "group": ""}
    sent = fire_one({"track_user": track}, bad).track_user
    assert list(sent.attributes) == [] and list(sent.subscription_groups) == []
