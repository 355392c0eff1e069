"""merge_user_actions with real compiled definitions (the shop seed: Braze user by customer_id)."""

from __future__ import annotations

from crowd.definitions.loader import definitions_from_dict
from profile_service.definitions.compiler import compile_definitions
from profile_service.engine.state import ProfileState
from profile_service.engine.stitch_actions import (
    STITCH_MERGE_ACTION_ID,
    merge_user_actions,
    merge_users_key,
)
from tests.profile_api.shop import seed_document, shop_definitions


def state(profile_id: str, **attributes: object) -> ProfileState:
    return ProfileState(profile_id, created_ms=1, updated_ms=1, attributes=dict(attributes))


def test_different_braze_users_get_one_merge_per_connector() -> None:
    defs = compile_definitions(shop_definitions())
    survivor = state("A", customer_id="cust-a")
    replaced = state("B", customer_id="cust-b")
    merged = state("A", customer_id="cust-a")
    [fired] = merge_user_actions(defs, survivor, replaced, merged, "stitch-1", 5_000)
    action = fired.action
    assert action.WhichOneof("payload") == "merge_users"
    assert action.merge_users.user_to_merge.external_id == "cust-b"
    assert action.merge_users.user_to_keep.external_id == "cust-a"
    assert action.connector_id == "braze"
    assert action.visitor_id == "A"
    assert action.action_id == STITCH_MERGE_ACTION_ID
    assert fired.idempotency_key == action.idempotency_key == merge_users_key("stitch-1", "braze")
    again = merge_user_actions(defs, survivor, replaced, merged, "stitch-1", 9_000)
    assert [f.idempotency_key for f in again] == [fired.idempotency_key]


def test_no_merge_when_the_identifiers_agree_or_one_is_missing() -> None:
    defs = compile_definitions(shop_definitions())
    same = merge_user_actions(
        defs, state("A"), state("B", customer_id="c"), state("A", customer_id="c"), "s", 1
    )
    assert same == []
    missing = merge_user_actions(
        defs, state("A", customer_id="a"), state("B"), state("A", customer_id="a"), "s", 1
    )
    assert missing == []


def test_connectors_are_deduplicated_and_each_uses_its_own_mapping() -> None:
    document = seed_document()
    document["actions"].append(
        {
            "id": "eu_track",
            "name": "EU",
            "connector_id": "braze-eu",
            "track_user": {
                "identifier": {
                    "alias_name": {"attribute": "customer_id"},
                    "alias_label": {"constant": "crowd_id"},
                }
            },
        }
    )
    document["actions"][-1]["audience"] = dict(document["actions"][0]["audience"])
    defs = compile_definitions(definitions_from_dict(document))
    fired = merge_user_actions(
        defs, state("A"), state("B", customer_id="b"), state("A", customer_id="a"), "s", 1
    )
    by_connector = {f.action.connector_id: f.action.merge_users for f in fired}
    assert set(by_connector) == {"braze", "braze-eu"}
    assert by_connector["braze"].user_to_merge.external_id == "b"
    assert by_connector["braze-eu"].user_to_merge.user_alias.alias_name == "b"
    assert by_connector["braze-eu"].user_to_keep.user_alias.alias_name == "a"
