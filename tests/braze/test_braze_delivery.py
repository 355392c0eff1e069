"""End to end against the sandbox: batching, coalescing and the answers Braze gives."""

from __future__ import annotations

import pytest

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1.action_pb2 import UserIds
from dispatch_service.braze import Outcome, PendingAction
from tests.braze.conftest import SandboxFactory, StackFactory
from tests.braze.helpers import API_KEY, delete_action, identify_action, track_action


def pending(actions: list, prefix: str = "k") -> list[PendingAction]:  # type: ignore[type-arg]
    return [PendingAction(f"{prefix}{i}", action) for i, action in enumerate(actions)]


async def test_200_actions_for_200_users_reach_braze_in_3_requests(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    actions = [track_action(f"user-{i}", {"plan": "gold", "n": i}, events=[]) for i in range(200)]
    results = await stack.delivery.deliver(pending(actions))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 200
    assert {r.http_status for r in results} == {201}
    requests = sandbox.requests
    # The three requests are sent concurrently: their arrival order is a race.
    assert sorted(len(r.body["attributes"]) for r in requests) == [50, 75, 75]
    assert all(r.path == "/users/track" and r.status == 201 for r in requests)
    assert sandbox.get_user("user-199").attributes == {"plan": "gold", "n": 199}  # type: ignore[union-attr]


async def test_one_users_updates_are_coalesced_into_one_object(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    actions = [
        track_action("u1", {"plan": "silver", "city": "Oslo"}),
        track_action("u1", {"plan": "gold"}, events=["upgraded"]),
    ]
    results = await stack.delivery.deliver(pending(actions))
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
    [request] = sandbox.requests
    assert request.body["attributes"] == [{"external_id": "u1", "plan": "gold", "city": "Oslo"}]
    user = sandbox.get_user("u1")
    assert user is not None and user.attributes == {"plan": "gold", "city": "Oslo"}
    assert [e.name for e in user.events] == ["upgraded"]
    assert sandbox.data_points.attributes == 2


async def test_minor_error_fails_exactly_that_action_with_the_reason(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    sandbox.faults.add_minor_error("u2", "EMAIL_BAD_FORMAT", input_array="events")
    actions = [
        track_action("u1", {"a": 1}, events=["e1"]),
        track_action("u2", {"a": 2}, events=["e2"]),
        track_action("u3", {"a": 3}, events=["e3"]),
    ]
    results = await stack.delivery.deliver(pending(actions))
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.FAILED, Outcome.DELIVERED]
    assert results[1].reason == "Braze rejected events[1]: EMAIL_BAD_FORMAT"
    assert results[1].http_status == 201
    [request] = sandbox.requests
    assert request.response["errors"] == [
        {"type": "EMAIL_BAD_FORMAT", "input_array": "events", "index": 1}
    ]


async def test_503_is_retried_later(sandbox: BrazeSandbox, make_stack: StackFactory) -> None:
    stack = await make_stack(sandbox.url)
    sandbox.faults.set(down=True)
    results = await stack.delivery.deliver(pending([track_action("u1", {"a": 1})]))
    [result] = results
    assert (result.outcome, result.http_status, result.retry_after_s) == (Outcome.RETRY, 503, None)
    assert "503" in result.reason
    sandbox.faults.set(down=False)
    [again] = await stack.delivery.deliver(pending([track_action("u1", {"a": 1})]))
    assert again.outcome is Outcome.DELIVERED
    assert sandbox.get_user("u1").attributes == {"a": 1}  # type: ignore[union-attr]


#: An external_id this Braze blocklists beyond the documented placeholders, which intake
#: refuses itself (rules.py): the way to get a refusal only Braze knows about.
REFUSED_BY_BRAZE = "refused-by-braze"


async def test_400_fails_permanently_with_brazes_message(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox(blocked_external_ids=frozenset({REFUSED_BY_BRAZE}))
    stack = await make_stack(sandbox.url)
    # A blocklisted external_id: the only object is invalid, so the request is.
    [result] = await stack.delivery.deliver(pending([track_action(REFUSED_BY_BRAZE, {"a": 1})]))
    assert (result.outcome, result.http_status) == (Outcome.FAILED, 400)
    assert result.reason.startswith(
        "Braze answered 400: Valid data must be provided in the 'attributes', 'events', or "
        "'purchases' fields."
    )
    assert "blacklisted" in result.reason


async def test_a_request_refused_whole_is_split_to_isolate_the_bad_action(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox(blocked_external_ids=frozenset({REFUSED_BY_BRAZE}))
    stack = await make_stack(sandbox.url)
    actions = [identify_action(f"ext-{i}", f"anon-{i}") for i in range(4)]
    actions[2] = identify_action(REFUSED_BY_BRAZE, "anon-2")  # 400 for the whole request
    results = await stack.delivery.deliver(pending(actions))
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED,
        Outcome.DELIVERED,
        Outcome.FAILED,
        Outcome.DELIVERED,
    ]
    assert "blacklisted" in results[2].reason
    identify_bodies = [r.body for r in sandbox.requests if r.path == "/users/identify"]
    assert len(identify_bodies[0]["aliases_to_identify"]) == 4
    # 4 refused -> halves of 2 (fine) and 2 (refused) -> the refused half in singles.
    assert [len(b["aliases_to_identify"]) for b in identify_bodies[1:]] == [2, 2, 1, 1]


async def test_deletes_reach_braze(sandbox: BrazeSandbox, make_stack: StackFactory) -> None:
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver(pending([track_action(f"u{i}", {"a": i}) for i in range(3)]))
    results = await stack.delivery.deliver(
        pending([delete_action(UserIds(external_id=f"u{i}")) for i in range(2)], prefix="d")
    )
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2
    assert sandbox.get_user("u0") is None and sandbox.get_user("u1") is None
    assert sandbox.get_user("u2") is not None
    [delete] = [r for r in sandbox.requests if r.path == "/users/delete"]
    assert delete.body == {"external_ids": ["u0", "u1"]}


async def test_wrong_key_fails_without_leaking_it(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox(api_keys={"another-key": frozenset({"users.track"})})
    stack = await make_stack(sandbox.url)
    [result] = await stack.delivery.deliver(pending([track_action("u1", {"a": 1})]))
    assert (result.outcome, result.http_status) == (Outcome.FAILED, 401)
    assert result.reason == "Braze answered 401: Invalid API key"
    assert API_KEY not in result.reason


async def test_timeout_and_connection_errors_are_retried(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    slow = await make_stack(sandbox.url, timeout_s=0.2)
    sandbox.faults.set(latency_ms=2000)
    [timed_out] = await slow.delivery.deliver(pending([track_action("u1", {"a": 1})]))
    assert timed_out.outcome is Outcome.RETRY
    assert "within 0.2s" in timed_out.reason
    closed = await make_stack("http://127.0.0.1:9")  # discard port: nothing listens
    [refused] = await closed.delivery.deliver(pending([track_action("u1", {"a": 1})]))
    assert refused.outcome is Outcome.RETRY
    assert refused.reason.startswith("connection error")
    assert API_KEY not in refused.reason


async def test_invalid_actions_fail_before_anything_is_sent(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    bad = track_action("u1", {"a": 1})
    bad.track_user.events.add(name="")
    [result] = await stack.delivery.deliver(pending([bad]))
    assert result.outcome is Outcome.FAILED
    assert result.reason == "invalid action: track_user.events[0].name: the event name is required"
    assert sandbox.requests == []


@pytest.mark.parametrize("mode", ["per_array75", "combined50"])
async def test_batch_modes_match_a_sandbox_enforcing_them(
    mode: str, make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox(batch_mode=mode)
    stack = await make_stack(sandbox.url, batch_mode=mode)
    actions = [track_action(f"u{i}", {"a": i}, events=["e"], purchases=1) for i in range(80)]
    results = await stack.delivery.deliver(pending(actions))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert {r.status for r in sandbox.requests} == {201}
    expected = 2 if mode == "per_array75" else 5  # 240 objects: 75 per array, or 50 in all
    assert len(sandbox.requests) == expected


async def test_requests_writing_the_same_user_are_sent_one_after_the_other(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    sandbox.faults.set(latency_ms=200)
    actions = [
        track_action("u0", {"v": 1}, events=[f"e{j}" for j in range(73)]),
        track_action("u0", {"v": 2}, events=["x", "y"]),
    ]
    results = await stack.delivery.deliver(pending(actions))
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2
    first, second = sorted(sandbox.requests, key=lambda r: r.time)
    assert first.body["attributes"] == [{"external_id": "u0", "v": 1}]
    # The second started only once Braze had answered the first (200 ms of latency).
    assert second.time >= first.time + 0.2
    assert sandbox.get_user("u0").attributes == {"v": 2}  # type: ignore[union-attr]
