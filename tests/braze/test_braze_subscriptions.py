"""Subscription states through Track User against the sandbox: email/push subscribe
attributes and subscription_groups, coalesced per group, refused when invalid, and delta
suppression per group."""

from __future__ import annotations

import pytest

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1.action_pb2 import Action, SubscriptionGroupState
from dispatch_service.braze import Outcome, PendingAction
from dispatch_service.braze.deltas import SKIP_REASON
from dispatch_service.braze.payload import InvalidAction, build_objects
from dispatch_service.braze.planner import DeliveryItem, plan_requests
from dispatch_service.validation import validate_actions
from service_common.errors import InvalidArgument
from tests.braze.conftest import StackFactory, connector_for
from tests.braze.helpers import CONNECTOR_ID, track_action


def groups_action(user: str, *states: tuple[str, str], **attributes: object) -> Action:
    action = track_action(user, attributes or None)
    action.idempotency_key = f"{user}:subscriptions"
    for group_id, state in states:
        action.track_user.subscription_groups.append(
            SubscriptionGroupState(subscription_group_id=group_id, subscription_state=state)
        )
    return action


def entry(group_id: str, state: str) -> dict[str, str]:
    return {"subscription_group_id": group_id, "subscription_state": state}


async def test_states_reach_the_user_and_unchanged_groups_are_not_resent(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    first = groups_action(
        "u1", ("news", "subscribed"), ("deals", "subscribed"), email_subscribe="opted_in"
    )
    [sent] = await stack.delivery.deliver([PendingAction("s1", first)])
    assert sent.outcome is Outcome.DELIVERED
    assert sandbox.requests[-1].body["attributes"] == [
        {
            "external_id": "u1",
            "email_subscribe": "opted_in",
            "subscription_groups": [entry("news", "subscribed"), entry("deals", "subscribed")],
        }
    ]
    # Nothing changed: skipped without a request.
    [same] = await stack.delivery.deliver(
        [PendingAction("s2", groups_action("u1", ("deals", "subscribed")))]
    )
    assert (same.outcome, same.reason) == (Outcome.SKIPPED, SKIP_REASON)
    # One group changed: only that group is sent; the other keeps its state in Braze.
    changed = groups_action("u1", ("news", "subscribed"), ("deals", "unsubscribed"))
    [delta] = await stack.delivery.deliver([PendingAction("s3", changed)])
    assert delta.outcome is Outcome.DELIVERED
    assert sandbox.requests[-1].body["attributes"] == [
        {"external_id": "u1", "subscription_groups": [entry("deals", "unsubscribed")]}
    ]
    assert len(sandbox.requests) == 2
    user = sandbox.get_user("u1")
    assert user is not None
    assert user.attributes["subscription_groups"] == [
        entry("news", "subscribed"),
        entry("deals", "unsubscribed"),
    ]
    assert user.attributes["email_subscribe"] == "opted_in"


async def test_two_actions_for_one_user_coalesce_per_group(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url, deltas=False)
    results = await stack.delivery.deliver(
        [
            PendingAction("s1", groups_action("u1", ("news", "subscribed"))),
            PendingAction("s2", groups_action("u1", ("deals", "subscribed"))),
            PendingAction("s3", groups_action("u1", ("news", "unsubscribed"))),
        ]
    )
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
    [request] = sandbox.requests
    assert request.body["attributes"] == [
        {
            "external_id": "u1",
            "subscription_groups": [entry("news", "unsubscribed"), entry("deals", "subscribed")],
        }
    ]


def test_invalid_states_are_refused_at_intake_with_their_paths() -> None:
    bad = groups_action("u1", ("", "subscribed"), ("news", "opted_in"), ("x" * 256, "subscribed"))
    bad.track_user.attributes.add(name="push_subscribe").set.string_value = "yes"
    with pytest.raises(InvalidArgument) as refused:
        validate_actions([bad], [CONNECTOR_ID])
    fields = {v.field for v in refused.value.violations}
    assert fields == {
        "actions[0].track_user.subscription_groups[0].subscription_group_id",
        "actions[0].track_user.subscription_groups[1].subscription_state",
        "actions[0].track_user.subscription_groups[2].subscription_group_id",
        "actions[0].track_user.attributes[0]",
    }
    # An action with subscription groups only is a valid Track User.
    validate_actions([groups_action("u1", ("news", "subscribed"))], [CONNECTOR_ID])


def test_the_same_group_twice_in_one_action_keeps_the_later_state() -> None:
    action = groups_action("u1", ("news", "subscribed"), ("news", "unsubscribed"))
    objects = build_objects(action, connector_for("http://unused"))
    plan = plan_requests(connector_for("http://unused"), [DeliveryItem("k", action, objects)])
    [request] = plan.requests
    assert request.body["attributes"][0]["subscription_groups"] == [entry("news", "unsubscribed")]
    with pytest.raises(InvalidAction):
        build_objects(groups_action("u1", ("news", "")), connector_for("http://unused"))
