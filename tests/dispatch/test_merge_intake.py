"""MergeUsers at intake: bad merges are refused whole with field paths, good ones stored."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from service_common.errors import InvalidArgument
from tests.dispatch.conftest import PARTITIONS
from tests.dispatch.helpers import CONNECTOR, queued_keys


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
