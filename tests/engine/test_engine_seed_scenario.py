"""The seed scenario (shared/seeds/000, examples/definitions/seed_vip.yaml), validated and
compiled as published: Lifetime Order Value grows with purchases, VIP above 500, Cart
Abandoner at the end of a visit with a cart but no purchase, and joining "VIP cart
abandoners" fires the Braze Track User action exactly once with the mapped values."""

from __future__ import annotations

from pathlib import Path

from crowd.common.v1 import value_pb2
from crowd.definitions.loader import load_definitions_file
from profile_service.definitions.compiler import check_and_compile
from profile_service.definitions.model import CompiledDefinitions
from tests.engine.helpers import HOUR, MINUTE, T0, Visitor

SEED = Path(__file__).resolve().parents[2] / "examples" / "definitions" / "seed_vip.yaml"
ACTION = "braze_vip_cart_abandoner"


def seed_defs() -> CompiledDefinitions:
    return check_and_compile(load_definitions_file(SEED), "v1")


def test_vip_badge_once_lifetime_order_value_exceeds_500() -> None:
    v = Visitor(seed_defs())
    v.send("page_view", T0, customer_id="cust-42")
    assert v.send("purchase", T0 + MINUTE, order_total=300.0).badges_assigned == []
    assert v.send("purchase", T0 + 2 * MINUTE, order_total=200.0).badges_assigned == []  # 500
    outcome = v.send("purchase", T0 + 3 * MINUTE, order_total=0.01)
    assert outcome.badges_assigned == ["vip"]
    assert outcome.changed_attributes["lifetime_order_value"] == 500.01
    assert v.send("cart_add", T0 + 4 * MINUTE, order_total=99.0).changed_attributes == {
        "added_to_cart": True
    }  # order_total counts on purchases only


def test_cart_abandoner_at_visit_end_only_without_purchase() -> None:
    v = Visitor(seed_defs())
    v.send("cart_add", T0)
    v.send("purchase", T0 + MINUTE, order_total=10.0)
    assert v.end(T0 + HOUR).badges_assigned == []  # bought in that visit
    v.send("cart_add", T0 + 2 * HOUR)
    assert v.end(T0 + 3 * HOUR).badges_assigned == ["cart_abandoner"]
    assert v.send("purchase", T0 + 4 * HOUR, order_total=5.0).badges_removed == ["cart_abandoner"]


def test_joining_vip_cart_abandoners_fires_the_braze_action_exactly_once() -> None:
    v = Visitor(seed_defs())
    # Visit 1: identified, spends 550 -> VIP; no abandoned cart.
    v.send("page_view", T0, customer_id="cust-42")
    v.send("purchase", T0 + MINUTE, order_total=300.0)
    v.send("purchase", T0 + 2 * MINUTE, order_total=250.0)
    assert v.profile.audiences == {}
    assert v.end(T0 + HOUR).actions == []
    # Visit 2: adds to the cart and leaves -> Cart Abandoner at the visit end -> joins.
    v.send("cart_add", T0 + 2 * HOUR)
    visit = v.profile.visit
    assert visit is not None
    outcome = v.end(T0 + 3 * HOUR)
    assert outcome.badges_assigned == ["cart_abandoner"]
    assert outcome.audiences_joined == ["vip_cart_abandoners"]
    assert [a.action_id for a in outcome.actions] == [ACTION]
    fired = outcome.actions[0]
    assert fired.idempotency_key == f"visitor-1:{ACTION}:{visit.visit_id}:end"
    assert fired.delay_ms == 0
    action = fired.action
    assert action.connector_id == "braze"
    assert action.visitor_id == "visitor-1"
    track = action.track_user
    assert track.user.external_id == "cust-42"
    assert {a.name: a.set for a in track.attributes} == {
        "lifetime_order_value": value_pb2.Value(number_value=550.0),
        "vip": value_pb2.Value(bool_value=True),
    }
    assert [e.name for e in track.events] == ["vip_cart_abandoner"]
    assert track.events[0].time.ToMilliseconds() == T0 + 2 * HOUR + 30 * MINUTE  # visit end
    # Further events (and visit ends) while still in the audience fire nothing.
    assert v.send("page_view", T0 + 4 * HOUR).actions == []
    assert v.send("cart_add", T0 + 4 * HOUR + MINUTE).actions == []
    assert v.end(T0 + 6 * HOUR).actions == []
    assert v.profile.audiences.keys() == {"vip_cart_abandoners"}


def test_the_delete_user_feed_action() -> None:
    v = Visitor(seed_defs())
    v.send("page_view", T0, customer_id="cust-42")
    outcome = v.send("account_deleted", T0 + MINUTE)
    assert [a.action_id for a in outcome.actions] == ["braze_delete_user"]
    assert outcome.actions[0].action.delete_user.user.external_id == "cust-42"
    assert (
        outcome.actions[0].idempotency_key
        == f"visitor-1:braze_delete_user:account_deleted-{T0 + MINUTE}"
    )
