"""Validation of the issue 15 E mappings: create_alias actions, subscription_groups and the
email/push subscribe states of Track User (offline validator, field paths)."""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from tests.e2e.test_e2e_alias_identify import document


def _errors(doc: dict[str, Any]) -> dict[str, str]:
    return {e.path: e.message for e in validate(definitions_from_dict(doc))}


def _track(doc: dict[str, Any]) -> dict[str, Any]:
    track: dict[str, Any] = doc["actions"][1]["track_user"]
    return track


def test_the_documented_mappings_are_valid() -> None:
    doc = document()
    doc["actions"][0]["create_alias"]["external_id"] = {"attribute": "customer_id"}
    assert _errors(doc) == {}


def test_create_alias_needs_name_and_label_and_no_constant_name() -> None:
    doc = document()
    doc["actions"][0]["create_alias"] = {"alias_name": {"constant": "everyone"}}
    errors = _errors(doc)
    assert set(errors) == {
        "actions[0].create_alias.alias_name",
        "actions[0].create_alias.alias_label",
    }
    assert "create alias needs alias_label" in errors["actions[0].create_alias.alias_label"]


def test_invalid_constant_states_and_groups_are_refused() -> None:
    doc = document({"constant": "opted_in"})
    track = _track(doc)
    track["attributes"] = [
        {"name": "email_subscribe", "value": {"constant": "yes"}},
        {"name": "push_subscribe", "value": {"constant": 1}},
        {"name": "subscription_groups", "value": {"constant": "x"}},
    ]
    subscribed = {"constant": "subscribed"}
    track["subscription_groups"] += [
        {
            "subscription_group_id": {"constant": "newsletter-group"},
            "subscription_state": subscribed,
        },
        {"subscription_group_id": {"constant": ""}, "subscription_state": subscribed},
        {"subscription_state": {"attribute": "newsletter"}},
        {"subscription_group_id": {"constant": "g"}},
    ]
    errors = _errors(doc)
    base = "actions[1].track_user"
    assert set(errors) == {
        f"{base}.attributes[0].value.constant",
        f"{base}.attributes[1].value.constant",
        f"{base}.attributes[2].name",
        f"{base}.subscription_groups[0].subscription_state.constant",
        f"{base}.subscription_groups[1].subscription_group_id.constant",
        f"{base}.subscription_groups[2].subscription_group_id.constant",
        f"{base}.subscription_groups[3].subscription_group_id",
        f"{base}.subscription_groups[4].subscription_state",
    }
    assert (
        "already mapped" in errors[f"{base}.subscription_groups[1].subscription_group_id.constant"]
    )


def test_subscribe_fields_can_only_be_set() -> None:
    doc = document()
    _track(doc)["attributes"][0]["operation"] = "add"
    assert "actions[1].track_user.attributes[0].operation" in _errors(doc)


def test_a_track_user_with_only_subscription_groups_sends_something() -> None:
    doc = document()
    del _track(doc)["attributes"]
    del _track(doc)["events"]
    assert _errors(doc) == {}
