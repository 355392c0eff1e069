"""Subscription states of the user attributes object: ``email_subscribe``,
``push_subscribe`` and ``subscription_groups`` (reference/braze-rest-api.md §1.5).

``subscription_groups`` is an array of ``{"subscription_group_id": ..., "subscription_state":
"subscribed"|"unsubscribed"}`` (optionally ``use_double_opt_in_logic``, a boolean, for SMS
groups). Each entry sets the state of one group: the groups a request does not name keep
their state, so the profile holds one entry per group (the latest state wins). The error
texts name Braze's documented minor-error codes.
"""

from __future__ import annotations

from typing import Any

SUBSCRIBE_FIELDS = frozenset({"email_subscribe", "push_subscribe"})
SUBSCRIBE_STATES = frozenset({"opted_in", "subscribed", "unsubscribed"})
GROUP_STATES = frozenset({"subscribed", "unsubscribed"})
GROUPS_FIELD = "subscription_groups"
_GROUP_KEYS = frozenset({"subscription_group_id", "subscription_state", "use_double_opt_in_logic"})

ERR_SUBSCRIBE = {
    "email_subscribe": "BAD_EMAIL_SUBSCRIPTION_STATE: 'email_subscribe' must be opted_in, "
    "subscribed or unsubscribed",
    "push_subscribe": "BAD_PUSH_SUBSCRIPTION_STATE: 'push_subscribe' must be opted_in, "
    "subscribed or unsubscribed",
}
ERR_GROUP_ARRAY = "BAD_SUBSCRIPTION_GROUP_ARRAY: 'subscription_groups' must be an array"
ERR_GROUP_HASH = (
    "BAD_SUBSCRIPTION_GROUP_HASH: each 'subscription_groups' item must be an object with "
    "'subscription_group_id' and 'subscription_state'"
)
ERR_GROUP_ID = "BAD_SUBSCRIPTION_GROUP_ID: 'subscription_group_id' must be a non-empty string"
ERR_GROUP_STATE = (
    "BAD_SUBSCRIPTION_GROUP_STATE: 'subscription_state' must be subscribed or unsubscribed"
)


def subscription_problem(key: str, value: Any) -> str | None:
    """Error text for a subscription field's value, ``None`` if valid (or not one)."""
    if key in SUBSCRIBE_FIELDS:
        return None if value is None or value in SUBSCRIBE_STATES else ERR_SUBSCRIBE[key]
    if key != GROUPS_FIELD or value is None:
        return None
    if not isinstance(value, list):
        return ERR_GROUP_ARRAY
    for item in value:
        if not isinstance(item, dict) or not set(item) <= _GROUP_KEYS:
            return ERR_GROUP_HASH
        group_id = item.get("subscription_group_id")
        if not isinstance(group_id, str) or not group_id:
            return ERR_GROUP_ID
        if item.get("subscription_state") not in GROUP_STATES:
            return ERR_GROUP_STATE
        if not isinstance(item.get("use_double_opt_in_logic", False), bool):
            return ERR_GROUP_HASH
    return None


def merged_groups(current: Any, update: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The profile's groups after ``update``: one entry per group id, in first-seen order."""
    states: dict[str, str] = {}
    for item in [*(current if isinstance(current, list) else []), *update]:
        states[item["subscription_group_id"]] = item["subscription_state"]
    return [
        {"subscription_group_id": group_id, "subscription_state": state}
        for group_id, state in states.items()
    ]
