"""Subscription states in the user attributes object: validated as Braze documents them and
stored per user, one state per subscription group."""

from __future__ import annotations

from braze_sandbox.subscriptions import (
    ERR_GROUP_ARRAY,
    ERR_GROUP_HASH,
    ERR_GROUP_ID,
    ERR_GROUP_STATE,
    ERR_SUBSCRIBE,
)
from tests.braze_sandbox.helpers import attrs, track


def group(group_id: str, state: str) -> dict[str, str]:
    return {"subscription_group_id": group_id, "subscription_state": state}


async def test_states_are_stored_and_groups_update_one_by_one(sandbox, http):
    reply = await track(
        http,
        sandbox,
        attributes=[
            attrs(
                "u1",
                email_subscribe="opted_in",
                push_subscribe="unsubscribed",
                subscription_groups=[group("news", "subscribed"), group("deals", "subscribed")],
            )
        ],
    )
    assert reply.status == 201 and "errors" not in reply.body
    reply = await track(
        http,
        sandbox,
        attributes=[attrs("u1", subscription_groups=[group("deals", "unsubscribed")])],
    )
    assert reply.status == 201
    user = sandbox.get_user("u1")
    assert user is not None
    assert user.attributes["email_subscribe"] == "opted_in"
    assert user.attributes["push_subscribe"] == "unsubscribed"
    # The second request named only "deals": "news" keeps its state.
    assert user.attributes["subscription_groups"] == [
        group("news", "subscribed"),
        group("deals", "unsubscribed"),
    ]
    assert user.to_dict()["subscription_groups"] == user.attributes["subscription_groups"]


async def test_invalid_states_are_minor_errors_and_change_nothing(sandbox, http):
    bad = [
        attrs("u1", email_subscribe="yes"),
        attrs("u1", push_subscribe="opted-in"),
        attrs("u1", subscription_groups={"news": "subscribed"}),
        attrs("u1", subscription_groups=["news"]),
        attrs("u1", subscription_groups=[{**group("news", "subscribed"), "extra": 1}]),
        attrs("u1", subscription_groups=[group("", "subscribed")]),
        attrs("u1", subscription_groups=[group("news", "opted_in")]),
    ]
    reply = await track(http, sandbox, attributes=[attrs("u1", plan="x"), *bad])
    assert reply.status == 201
    assert [e["type"] for e in reply.body["errors"]] == [
        ERR_SUBSCRIBE["email_subscribe"],
        ERR_SUBSCRIBE["push_subscribe"],
        ERR_GROUP_ARRAY,
        ERR_GROUP_HASH,
        ERR_GROUP_HASH,
        ERR_GROUP_ID,
        ERR_GROUP_STATE,
    ]
    assert [e["index"] for e in reply.body["errors"]] == list(range(1, 8))
    user = sandbox.get_user("u1")
    assert user is not None and user.attributes == {"plan": "x"}
