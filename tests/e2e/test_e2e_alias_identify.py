"""Issue 15 E end to end (profile service -> dispatch -> Braze sandbox over HTTP): an
anonymous visitor created as an alias-only Braze user (/users/alias/new), its activity
tracked under the alias, then identified to the customer id (/users/identify) so that the
anonymous activity ends up on the identified user; subscription states from the mapping."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest

from crowd.definitions.loader import definitions_from_dict
from service_common.errors import decode_error
from tests.e2e.conftest import Stack

LABEL = "crowd_visitor"
VISITOR_ALIAS = {
    "alias_name": {"event": "event.visitor_id"},
    "alias_label": {"constant": LABEL},
}


def _feed(feed_id: str, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {"id": feed_id, "rule": {"groups": [{"conditions": list(conditions)}]}}


def _from_event(attribute_id: str, field: str, attribute_type: str) -> dict[str, Any]:
    return {
        "id": attribute_id,
        "scope": "visitor",
        "type": attribute_type,
        "enrichments": [
            {
                "id": "from_event",
                "kind": "set",
                "when": "any_event",
                "operands": [{"event": field}],
                "rule": {
                    "groups": [
                        {"conditions": [{"input": {"event": field}, "operator": "is_assigned"}]}
                    ]
                },
            }
        ],
    }


def document(newsletter_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """customer_id identifies; anonymous events create the alias; "viewed" events are
    tracked (update-only: the user must exist); a "login" with a customer id identifies."""
    named = {"input": {"event": "event.name"}, "operator": "equals"}
    return {
        "settings": {"visit_timeout": "30m"},
        "attributes": [
            _from_event("customer_id", "customer_id", "visitor_id"),
            _from_event("newsletter", "newsletter", "string"),
        ],
        "event_feeds": [
            _feed(
                "anonymous", {"input": {"attribute": "customer_id"}, "operator": "is_not_assigned"}
            ),
            _feed("viewed", {**named, "value": {"constant": "viewed"}}),
            _feed(
                "login",
                {**named, "value": {"constant": "login"}},
                {"input": {"event": "customer_id"}, "operator": "is_assigned"},
            ),
        ],
        "actions": [
            {
                "id": "create_alias",
                "event_feed": "anonymous",
                "connector_id": "braze",
                "create_alias": VISITOR_ALIAS,
            },
            {
                "id": "track_viewed",
                "event_feed": "viewed",
                "connector_id": "braze",
                "track_user": {
                    "identifier": {"external_id": {"attribute": "customer_id"}, **VISITOR_ALIAS},
                    "update_existing_only": True,
                    "events": [{"name": {"constant": "viewed"}}],
                    "attributes": [{"name": "email_subscribe", "value": {"constant": "opted_in"}}],
                    "subscription_groups": [
                        {
                            "subscription_group_id": {"constant": "newsletter-group"},
                            "subscription_state": newsletter_state or {"attribute": "newsletter"},
                        }
                    ],
                },
            },
            {
                "id": "identify",
                "event_feed": "login",
                "connector_id": "braze",
                "identify_user": {"external_id": {"attribute": "customer_id"}, **VISITOR_ALIAS},
            },
        ],
    }


async def test_anonymous_activity_ends_up_on_the_identified_user(stack: Stack) -> None:
    client, sandbox = stack.client, stack.sandbox
    await client.publish_definitions(definitions_from_dict(document()))

    # An anonymous visitor: /users/alias/new creates the alias-only user.
    await client.track_event("anon-visitor-1", "arrived", {})
    await sandbox.wait_until(
        lambda: sandbox.get_user_by_alias("anon-visitor-1", LABEL) is not None, timeout=20
    )
    assert any(r.path == "/users/alias/new" for r in sandbox.requests)
    anonymous = sandbox.get_user_by_alias("anon-visitor-1", LABEL)
    assert anonymous is not None and anonymous.external_id is None

    # Its activity is tracked under the alias (update-only: it reaches the existing user).
    await client.track_event("anon-visitor-1", "viewed", {"newsletter": "subscribed"})
    await sandbox.wait_until(lambda: len(anonymous.events) == 1, timeout=20)
    assert anonymous.attributes["subscription_groups"] == [
        {"subscription_group_id": "newsletter-group", "subscription_state": "subscribed"}
    ]
    assert anonymous.attributes["email_subscribe"] == "opted_in"

    # The visitor logs in: /users/identify gives the alias user the customer id.
    await client.track_event("anon-visitor-1", "login", {"customer_id": "cust-e15-0001"})
    await sandbox.wait_until(lambda: sandbox.get_user("cust-e15-0001") is not None, timeout=20)
    identified = sandbox.get_user("cust-e15-0001")
    assert identified is not None
    assert [e.name for e in identified.events] == ["viewed"]
    assert sandbox.get_user_by_alias("anon-visitor-1", LABEL) is identified

    # Later activity goes to the external id, on the same Braze user. An invalid state read
    # from the profile is left out (never sent): the group keeps its state.
    await client.track_event("anon-visitor-1", "viewed", {"newsletter": "maybe"})
    await sandbox.wait_until(lambda: len(identified.events) == 2, timeout=20)
    assert len(sandbox.store) == 1
    assert identified.attributes["subscription_groups"] == [
        {"subscription_group_id": "newsletter-group", "subscription_state": "subscribed"}
    ]
    last_track = [r for r in sandbox.requests if r.path == "/users/track"][-1]
    assert last_track.body["events"][0]["external_id"] == "cust-e15-0001"
    # The invalid group state was left out; the constant email_subscribe is still sent.
    assert last_track.body["attributes"][0]["email_subscribe"] == "opted_in"
    assert "subscription_groups" not in last_track.body["attributes"][0]


async def test_publish_refuses_invalid_constant_states(stack: Stack) -> None:
    bad = document({"constant": "opted_in"})  # a group is subscribed or unsubscribed
    bad["actions"][1]["track_user"]["attributes"][0]["value"] = {"constant": "yes"}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.client.publish_definitions(definitions_from_dict(bad))
    code, _, violations = decode_error(refused.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(v.field for v in violations) == [
        "definitions.actions[1].track_user.attributes[0].value.constant",
        "definitions.actions[1].track_user.subscription_groups[0].subscription_state.constant",
    ]
