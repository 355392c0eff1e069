"""CreateAlias end to end against the sandbox: /users/alias/new with 50 aliases a request,
sent before identify and track, the already-created skip, the shared admin rate limit and
retries, and the alias identified to an external id afterwards."""

from __future__ import annotations

from braze_sandbox import BrazeSandbox, EndpointGroup
from crowd.dispatch.v1.action_pb2 import (
    Action,
    CreateAlias,
    IdentifyUser,
    MergeUsers,
    UserAlias,
    UserIds,
)
from dispatch_service.braze import Outcome, PendingAction
from dispatch_service.braze.deltas import ALIAS_EXISTS_REASON
from dispatch_service.braze.endpoints import Endpoint, RateGroup
from tests.braze.conftest import StackFactory
from tests.braze.helpers import CONNECTOR_ID, track_action

LABEL = "crowd_visitor"


def alias(name: str) -> UserAlias:
    return UserAlias(alias_name=name, alias_label=LABEL)


def create(name: str, external_id: str = "") -> Action:
    return Action(
        connector_id=CONNECTOR_ID,
        visitor_id=name,
        create_alias=CreateAlias(user_alias=alias(name), external_id=external_id),
    )


def track_alias(name: str, attributes: dict[str, object], events: list[str] = []) -> Action:  # noqa: B006
    action = track_action("unused", attributes, events=events)
    action.track_user.user.CopyFrom(UserIds(user_alias=alias(name)))
    action.track_user.update_existing_only = True  # only users that exist: the new alias
    return action


def identify(name: str, external_id: str) -> Action:
    return Action(
        connector_id=CONNECTOR_ID,
        visitor_id=name,
        identify_user=IdentifyUser(external_id=external_id, user_alias=alias(name)),
    )


def test_alias_new_is_an_admin_endpoint_of_50() -> None:
    assert Endpoint.ALIAS_NEW.value == "/users/alias/new"
    assert Endpoint.ALIAS_NEW.rate_group is RateGroup.ADMIN
    assert Endpoint.ALIAS_NEW.max_objects == 50


async def test_anonymous_activity_reaches_the_identified_user(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    # One batch: the alias is created before the update-only track that needs it.
    results = await stack.delivery.deliver(
        [
            PendingAction("a1", create("anon-1")),
            PendingAction("t1", track_alias("anon-1", {"plan": "free"}, events=["viewed"])),
        ]
    )
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2
    assert [r.path for r in sandbox.requests] == ["/users/alias/new", "/users/track"]
    assert sandbox.requests[0].body == {
        "user_aliases": [{"alias_name": "anon-1", "alias_label": LABEL}]
    }
    anonymous = sandbox.get_user_by_alias("anon-1", LABEL)
    assert anonymous is not None and anonymous.external_id is None
    assert anonymous.attributes == {"plan": "free"}

    [done] = await stack.delivery.deliver([PendingAction("i1", identify("anon-1", "cust-1"))])
    assert done.outcome is Outcome.DELIVERED
    user = sandbox.get_user("cust-1")
    assert user is not None and user.attributes == {"plan": "free"}
    assert [e.name for e in user.events] == ["viewed"]
    assert len(sandbox.store) == 1


async def test_an_alias_created_before_is_skipped_without_a_request(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    [first] = await stack.delivery.deliver([PendingAction("a1", create("anon-1"))])
    assert first.outcome is Outcome.DELIVERED and first.http_status == 201
    [again] = await stack.delivery.deliver([PendingAction("a2", create("anon-1"))])
    assert (again.outcome, again.reason) == (Outcome.SKIPPED, ALIAS_EXISTS_REASON)
    assert len(sandbox.requests) == 1
    # An alias for an identified user is always sent (Braze adds it only if the user exists).
    await stack.delivery.deliver([PendingAction("t1", track_action("cust-9", {"n": 1}))])
    [added] = await stack.delivery.deliver([PendingAction("a3", create("web-9", "cust-9"))])
    assert added.outcome is Outcome.DELIVERED
    assert sandbox.requests[-1].body == {
        "user_aliases": [{"alias_name": "web-9", "alias_label": LABEL, "external_id": "cust-9"}]
    }
    assert sandbox.get_user_by_alias("web-9", LABEL) is sandbox.get_user("cust-9")


async def test_120_aliases_go_out_in_3_requests_on_the_admin_budget(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    results = await stack.delivery.deliver(
        [PendingAction(f"a{i}", create(f"anon-{i}")) for i in range(120)]
    )
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 120
    assert sorted(len(r.body["user_aliases"]) for r in sandbox.requests) == [20, 50, 50]
    assert {r.group for r in sandbox.requests} == {EndpointGroup.IDENTITY}
    assert len(sandbox.store) == 120


async def test_alias_new_retries_on_429_and_5xx(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    stack = await make_stack(sandbox.url)
    sandbox.faults.set(fail_rate=1.0, fail_status=503)
    [result] = await stack.delivery.deliver([PendingAction("a1", create("anon-1"))])
    assert result.outcome is Outcome.RETRY and result.http_status == 503
    sandbox.faults.set(fail_rate=0.0)
    sandbox.faults.force_rate_limit(retry_after=1, requests=1)
    [limited] = await stack.delivery.deliver([PendingAction("a1", create("anon-1"), attempt=2)])
    assert limited.outcome is Outcome.RETRY and limited.http_status == 429
    [done] = await stack.delivery.deliver([PendingAction("a1", create("anon-1"), attempt=3)])
    assert done.outcome is Outcome.DELIVERED
    assert sandbox.get_user_by_alias("anon-1", LABEL) is not None


async def test_a_stitch_merge_of_a_created_alias_is_sent_as_identify(
    sandbox: BrazeSandbox, make_stack: StackFactory
) -> None:
    # Two profiles stitch: the replaced one was only ever created as an alias. The alias
    # counts as sent, so the MergeUsers action is not skipped; it goes to /users/identify.
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver([PendingAction("a1", create("anon-1"))])
    await stack.delivery.deliver([PendingAction("t1", track_action("cust-1", {"plan": "gold"}))])
    merge = Action(
        connector_id=CONNECTOR_ID,
        visitor_id="survivor",
        merge_users=MergeUsers(
            user_to_merge=UserIds(user_alias=alias("anon-1")),
            user_to_keep=UserIds(external_id="cust-1"),
        ),
    )
    [result] = await stack.delivery.deliver([PendingAction("m1", merge)])
    assert result.outcome is Outcome.DELIVERED
    assert sandbox.requests[-1].path == "/users/identify"
    assert sandbox.get_user_by_alias("anon-1", LABEL) is sandbox.get_user("cust-1")
    assert len(sandbox.store) == 1
