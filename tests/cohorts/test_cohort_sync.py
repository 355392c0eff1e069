"""SyncCohort end to end: real gRPC server, real Redis, the Braze sandbox over HTTP."""

from __future__ import annotations

from braze_sandbox import fingerprint
from crowd.dispatch.v1 import action_pb2
from tests.cohorts.conftest import Service
from tests.cohorts.helpers import (
    CLIENT_SECRET,
    COHORTS_PATH,
    CONNECTOR,
    MEMBERS_PATH,
    PARTNER,
    add,
    cohort_message,
    create_users,
    partner_requests,
    remove,
    sent_ids,
    stream,
)
from tests.harness import eventually


async def _until_synced(service: Service, cohort_id: str, connector: str = CONNECTOR) -> None:
    """Wait until nothing of the cohort is pending and its queue entry is gone."""
    await eventually(
        lambda: service.store.pending(connector, cohort_id),
        lambda pending: pending == {},
        what=f"cohort {cohort_id} to be sent",
    )


async def test_2500_adds_take_three_full_requests_and_the_members_appear(service: Service):
    sandbox = service.sandbox
    users = [f"user-{i:04d}" for i in range(2500)]
    await create_users(sandbox, users)

    reply = await service.stub.SyncCohort(
        iter(
            stream(
                cohort_message("vip"),
                [add(u) for u in users[:1200]],
                [add(u) for u in users[1200:]],
            )
        )
    )
    assert (reply.accepted, reply.requests_planned) == (2500, 3)

    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "vip") == set(users), 20)
    await _until_synced(service, "vip")
    members = partner_requests(sandbox, MEMBERS_PATH)
    assert len(members) == 3
    assert sorted(len(sent_ids(r, removed=False)) for r in members) == [500, 1000, 1000]
    assert sorted(u for r in members for u in sent_ids(r, removed=False)) == users
    for request in members:
        assert request.status == 201
        assert request.body["cohort_id"] == "vip"
        assert request.body["cohort_changes"] == [
            {"user_ids": sent_ids(request, removed=False), "should_remove": False}
        ]
        # Credentials travel in the body (the recorder redacts them; its fingerprint
        # tells which secret was used).
        assert request.body["partner_api_key"] == "[REDACTED]"
        assert request.credential == fingerprint(CLIENT_SECRET)

    [named] = partner_requests(sandbox, COHORTS_PATH)
    assert named.body["name"] == "VIPs" and named.body["cohort_id"] == "vip"
    assert named.seq < min(r.seq for r in members), "the name goes first"
    cohort = sandbox.cohort(PARTNER, "vip")
    assert cohort is not None and cohort.name == "VIPs"


async def test_removals_last_change_wins_and_renames(service: Service):
    sandbox = service.sandbox
    users = ["u1", "u2", "u3", "u4", "u5"]
    await create_users(sandbox, users)
    await service.stub.SyncCohort(iter(stream(cohort_message("c1"), [add(u) for u in users])))
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "c1") == set(users), 10)
    await _until_synced(service, "c1")

    # u3 is added then removed, u4 removed then added: only the last change of each counts.
    reply = await service.stub.SyncCohort(
        iter(
            stream(
                cohort_message("c1"),
                [remove("u2"), add("u3")],
                [remove("u3"), remove("u4"), add("u4")],
            )
        )
    )
    assert reply.accepted == 5
    assert reply.requests_planned == 2  # one for the addition, one for the removals (at most)
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, "c1") == {"u1", "u4", "u5"}, 10
    )
    await _until_synced(service, "c1")
    *_, last = partner_requests(sandbox, MEMBERS_PATH)
    assert len(partner_requests(sandbox, MEMBERS_PATH)) == 2, "both kinds share one request"
    assert sent_ids(last, removed=False) == ["u4"]
    assert sorted(sent_ids(last, removed=True)) == ["u2", "u3"]
    assert len(partner_requests(sandbox, COHORTS_PATH)) == 1, "same name: not sent again"

    reply = await service.stub.SyncCohort(iter([cohort_message("c1", name="Big spenders")]))
    assert (reply.accepted, reply.requests_planned) == (0, 0)
    await sandbox.wait_until(lambda: len(partner_requests(sandbox, COHORTS_PATH)) == 2, 10)
    first, renamed = partner_requests(sandbox, COHORTS_PATH)
    assert renamed.body["name"] == "Big spenders"
    assert renamed.body["created_at"] == first.body["created_at"]
    cohort = sandbox.cohort(PARTNER, "c1")
    assert cohort is not None and cohort.name == "Big spenders"
    assert sandbox.cohort_members(PARTNER, "c1") == {"u1", "u4", "u5"}


async def test_aliases_and_device_ids(service: Service):
    sandbox = service.sandbox
    await create_users(sandbox, ["known"], aliases=[("anon-7", "crowd_visitor")])
    alias = action_pb2.UserAlias(alias_name="anon-7", alias_label="crowd_visitor")
    changes = [
        action_pb2.CohortChange(user=action_pb2.UserIds(user_alias=alias)),
        action_pb2.CohortChange(device_id="device-42"),
        # external_id wins over a device id given with it (Braze ignores device ids of
        # identified users).
        action_pb2.CohortChange(user=action_pb2.UserIds(external_id="known"), device_id="d-x"),
    ]
    reply = await service.stub.SyncCohort(iter(stream(cohort_message("mixed"), changes)))
    assert (reply.accepted, reply.requests_planned) == (3, 1)
    alias_user = sandbox.get_user_by_alias("anon-7", "crowd_visitor")
    assert alias_user is not None
    await sandbox.wait_until(
        lambda: sandbox.cohort_members(PARTNER, "mixed") == {"known", alias_user.braze_id}, 10
    )
    await _until_synced(service, "mixed")
    [request] = partner_requests(sandbox, MEMBERS_PATH)
    assert request.body["cohort_changes"] == [
        {
            "user_ids": ["known"],
            "device_ids": ["device-42"],
            "aliases": [{"alias_name": "anon-7", "alias_label": "crowd_visitor"}],
            "should_remove": False,
        }
    ]


async def test_the_braze_request_continues_the_callers_trace(service: Service):
    sandbox = service.sandbox
    await create_users(sandbox, ["t1"])
    await service.stub.SyncCohort(iter(stream(cohort_message("traced"), [add("t1")])))
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "traced") == {"t1"}, 10)
    await _until_synced(service, "traced")
    spans = service.spans.get_finished_spans()
    [rpc] = [s for s in spans if s.name.endswith("DispatchService/SyncCohort")]
    [send] = [s for s in spans if s.name == "braze POST /partners/{partner}/cohorts/users"]
    assert send.context is not None and rpc.context is not None
    assert send.context.trace_id == rpc.context.trace_id
    assert (send.attributes or {})["braze.batch.ids"] == 1
    [request] = partner_requests(sandbox, MEMBERS_PATH)
    assert request.traceparent is not None
    assert request.traceparent.split("-")[1] == f"{rpc.context.trace_id:032x}"
