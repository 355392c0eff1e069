"""MergeUsers end to end against the sandbox: one Braze user left, the never-sent skip,
alias -> external_id through /users/identify, 50 merges per request, retries on 429/5xx."""

from __future__ import annotations

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1.action_pb2 import Action, MergeUsers, UserAlias, UserIds
from dispatch_service.braze import Outcome, PendingAction
from tests.braze.conftest import StackFactory
from tests.braze.helpers import CONNECTOR_ID, track_action


def merge_action(to_merge: UserIds, to_keep: UserIds) -> Action:
    return Action(
        connector_id=CONNECTOR_ID,
        visitor_id="survivor",
        merge_users=MergeUsers(user_to_merge=to_merge, user_to_keep=to_keep),
    )


def ext(value: str) -> UserIds:
    return UserIds(external_id=value)


async def test_merge_leaves_one_user_holding_both_users_data(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    sent = await stack.delivery.deliver(
        [
            PendingAction("t1", track_action("phone", {"plan": "gold", "city": "Oslo"})),
            PendingAction(
                "t2", track_action("laptop", {"plan": "silver", "tier": 2}, events=["x"])
            ),
        ]
    )
    assert [r.outcome for r in sent] == [Outcome.DELIVERED] * 2
    [result] = await stack.delivery.deliver(
        [PendingAction("m1", merge_action(ext("laptop"), ext("phone")))]
    )
    assert result.outcome is Outcome.DELIVERED and result.http_status == 202
    assert sandbox.get_user("laptop") is None
    kept = sandbox.get_user("phone")
    assert kept is not None
    assert kept.attributes == {"plan": "gold", "city": "Oslo", "tier": 2}
    assert [e.name for e in kept.events] == ["x"]
    merge_request = sandbox.requests[-1]
    assert merge_request.path == "/users/merge"
    assert merge_request.body == {
        "merge_updates": [
            {
                "identifier_to_merge": {"external_id": "laptop"},
                "identifier_to_keep": {"external_id": "phone"},
            }
        ]
    }
    # The kept user's delta memory is the union: tier=2 (from the merged user) is not resent,
    # plan=silver (Braze kept gold) is.
    [again] = await stack.delivery.deliver(
        [PendingAction("t3", track_action("phone", {"tier": 2}))]
    )
    assert again.outcome is Outcome.SKIPPED
    [changed] = await stack.delivery.deliver(
        [PendingAction("t4", track_action("phone", {"plan": "silver"}))]
    )
    assert changed.outcome is Outcome.DELIVERED
    assert sandbox.get_user("phone").attributes["plan"] == "silver"  # type: ignore[union-attr]


async def test_merge_of_a_user_never_sent_is_skipped_without_a_request(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    [result] = await stack.delivery.deliver(
        [PendingAction("m1", merge_action(ext("never-sent"), ext("phone")))]
    )
    assert result.outcome is Outcome.SKIPPED
    assert "never sent" in result.reason
    assert sandbox.requests == []


async def test_alias_into_external_id_uses_identify(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    alias = UserIds(user_alias=UserAlias(alias_name="anon-1", alias_label="crowd_id"))
    track = track_action("x", {"seen": True})
    track.track_user.user.CopyFrom(alias)
    await stack.delivery.deliver([PendingAction("t1", track)])
    [result] = await stack.delivery.deliver([PendingAction("m1", merge_action(alias, ext("c-1")))])
    assert result.outcome is Outcome.DELIVERED
    request = sandbox.requests[-1]
    assert request.path == "/users/identify"
    assert request.body["merge_behavior"] == "merge"
    user = sandbox.get_user("c-1")
    assert user is not None and user.attributes == {"seen": True}
    assert len(sandbox.store) == 1


async def test_120_merges_go_out_in_3_requests(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    tracks = [PendingAction(f"t{i}", track_action(f"old-{i}", {"n": i})) for i in range(120)]
    await stack.delivery.deliver(tracks)
    before = len(sandbox.requests)
    merges = [
        PendingAction(f"m{i}", merge_action(ext(f"old-{i}"), ext(f"new-{i}"))) for i in range(120)
    ]
    results = await stack.delivery.deliver(merges)
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 120
    sizes = [len(r.body["merge_updates"]) for r in sandbox.requests[before:]]
    assert sorted(sizes) == [20, 50, 50]
    assert sandbox.get_user("old-7") is None
    assert sandbox.get_user("new-7").attributes == {"n": 7}  # type: ignore[union-attr]


async def test_merge_retries_on_429_and_5xx(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver([PendingAction("t1", track_action("a", {"n": 1}))])
    sandbox.faults.set(fail_rate=1.0, fail_status=503)
    merge = merge_action(ext("a"), ext("b"))
    [result] = await stack.delivery.deliver([PendingAction("m1", merge)])
    assert result.outcome is Outcome.RETRY and result.http_status == 503
    sandbox.faults.set(fail_rate=0.0)
    sandbox.faults.force_rate_limit(retry_after=1, requests=1)
    [limited] = await stack.delivery.deliver([PendingAction("m1", merge, attempt=2)])
    assert limited.outcome is Outcome.RETRY and limited.http_status == 429
    [done] = await stack.delivery.deliver([PendingAction("m1", merge, attempt=3)])
    assert done.outcome is Outcome.DELIVERED
    assert sandbox.get_user("a") is None and sandbox.get_user("b") is not None
