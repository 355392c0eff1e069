"""MergeUsers through the dispatch service: intake validation (refused whole with field paths)
and a real worker delivering to the sandbox (the never-sent skip visible in the status)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from service_common.errors import InvalidArgument
from tests.dispatch.conftest import PARTITIONS, WorkerFactory
from tests.dispatch.helpers import CONNECTOR, queued_keys, track_action
from tests.dispatch.test_worker import _until_states


def merge(key: str, to_merge: action_pb2.UserIds, to_keep: action_pb2.UserIds) -> action_pb2.Action:
    return action_pb2.Action(
        idempotency_key=key,
        connector_id=CONNECTOR,
        visitor_id="survivor",
        action_id="stitch-merge",
        merge_users=action_pb2.MergeUsers(user_to_merge=to_merge, user_to_keep=to_keep),
    )


def ext(value: str) -> action_pb2.UserIds:
    return action_pb2.UserIds(external_id=value)


async def test_bad_merges_are_refused_whole_naming_each_field(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    two_ids = action_pb2.UserIds(external_id="a", email="a@example.com")
    actions = [
        merge("good", ext("old"), ext("new")),
        merge("same", ext("x"), ext("x")),
        merge("empty", action_pb2.UserIds(), ext("new")),
        merge("two", two_ids, ext("new")),
        merge("braze-id", action_pb2.UserIds(braze_id="b1"), ext("new")),
        merge("bad-email", ext("old"), action_pb2.UserIds(email="not-an-email")),
        merge(
            "half-alias",
            action_pb2.UserIds(user_alias=action_pb2.UserAlias(alias_name="n")),
            ext("k"),
        ),
    ]
    with pytest.raises(InvalidArgument) as caught:
        await store.submit(actions)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "actions[1].merge_users.user_to_keep",
        "actions[2].merge_users.user_to_merge",
        "actions[3].merge_users.user_to_merge",
        "actions[4].merge_users.user_to_merge.braze_id",
        "actions[5].merge_users.user_to_keep.email",
        "actions[6].merge_users.user_to_merge.user_alias.alias_label",
    }
    assert await queued_keys(redis_client, PARTITIONS) == []


async def test_good_merge_is_accepted_and_queued(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    outcomes = await store.submit([merge("m1", ext("old"), ext("new"))])
    assert [o.state for o in outcomes] == [action_pb2.ACTION_STATE_ACCEPTED]
    assert await queued_keys(redis_client, PARTITIONS) == ["m1"]


async def test_worker_delivers_a_merge_and_skips_one_never_sent(
    store: ActionStore, start_worker: WorkerFactory, sandbox: BrazeSandbox
) -> None:
    await start_worker()
    await store.submit([track_action("t-old", visitor="old"), track_action("t-new", visitor="new")])
    await _until_states(store, ["t-old", "t-new"], action_pb2.ACTION_STATE_DELIVERED)
    await store.submit(
        [merge("m-sent", ext("old"), ext("new")), merge("m-never", ext("ghost"), ext("new"))]
    )
    sent, never = await _until_states(
        store,
        ["m-sent", "m-never"],
        action_pb2.ACTION_STATE_DELIVERED,
        action_pb2.ACTION_STATE_SKIPPED,
    )
    assert sent.state == action_pb2.ACTION_STATE_DELIVERED and sent.last_http_status == 202
    assert never.state == action_pb2.ACTION_STATE_SKIPPED
    assert "never sent" in never.reason
    assert sandbox.get_user("old") is None and sandbox.get_user("new") is not None
    assert [r.path for r in sandbox.requests].count("/users/merge") == 1
