"""POST /users/merge: strict validation (whole request refused, nothing changed) and Braze's
merge (kept user keeps its values, gains the rest, events and purchases; merged user gone)."""

from __future__ import annotations

from braze_sandbox import BrazeSandbox
from braze_sandbox.merge import MSG_IDENTIFIER, MSG_KEYS, MSG_NOT_ARRAY, MSG_TOO_MANY
from tests.braze_sandbox.helpers import attrs, event, post, purchase, track


def update(to_merge: dict, to_keep: dict) -> dict:  # type: ignore[type-arg]
    return {"identifier_to_merge": to_merge, "identifier_to_keep": to_keep}


async def test_merge_moves_data_into_the_kept_user_and_removes_the_merged_one(sandbox, http):
    await track(
        http,
        sandbox,
        attributes=[attrs("old", plan="silver", tier=2), attrs("new", plan="gold")],
        events=[event("old", "played")],
        purchases=[purchase("old")],
    )
    body = {"merge_updates": [update({"external_id": "old"}, {"external_id": "new"})]}
    reply = await post(http, sandbox, "/users/merge", body)
    assert (reply.status, reply.body) == (202, {"message": "success"})
    assert sandbox.get_user("old") is None
    kept = sandbox.get_user("new")
    assert kept is not None
    assert kept.attributes == {"plan": "gold", "tier": 2}
    assert [e.name for e in kept.events] == ["played"]
    assert len(kept.purchases) == 1
    assert len(sandbox.store) == 1


async def test_bad_requests_are_refused_whole_with_brazes_messages(sandbox, http):
    await track(http, sandbox, attributes=[attrs("a", n=1), attrs("b", n=2)])
    good = update({"external_id": "a"}, {"external_id": "b"})
    cases = [
        ({"merge_updates": "x"}, MSG_NOT_ARRAY),
        ({"merge_updates": [good] * 51}, MSG_TOO_MANY),
        (
            {"merge_updates": [good, update({"external_id": 5}, {"external_id": "b"})]},
            MSG_IDENTIFIER,
        ),
        (
            {"merge_updates": [good, update({"braze_id": "x"}, {"external_id": "b"})]},
            MSG_IDENTIFIER,
        ),
        ({"merge_updates": [good, {**good, "extra": 1}]}, MSG_KEYS),
    ]
    for body, message in cases:
        reply = await post(http, sandbox, "/users/merge", body)
        assert (reply.status, reply.body["message"]) == (400, message)
    assert sandbox.get_user("a") is not None and sandbox.get_user("b") is not None


async def test_merge_needs_the_users_merge_permission(make_sandbox, http):
    sandbox: BrazeSandbox = await make_sandbox(api_keys={"track-only": frozenset({"users.track"})})
    body = {"merge_updates": [update({"external_id": "a"}, {"external_id": "b"})]}
    reply = await post(http, sandbox, "/users/merge", body, key="track-only")
    assert reply.status == 403
