"""CreateAlias through the dispatch service: intake validation (refused whole with field
paths, nothing queued) and a real worker delivering /users/alias/new to the sandbox, the
already-created alias skipped without a request."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from service_common.errors import InvalidArgument
from tests.dispatch.conftest import PARTITIONS, WorkerFactory
from tests.dispatch.helpers import CONNECTOR, queued_keys
from tests.dispatch.test_worker import _until_states

LABEL = "crowd_visitor"


def create(key: str, name: str, label: str = LABEL, external_id: str = "") -> action_pb2.Action:
    return action_pb2.Action(
        idempotency_key=key,
        connector_id=CONNECTOR,
        visitor_id=name or "v",
        action_id="create_alias",
        create_alias=action_pb2.CreateAlias(
            user_alias=action_pb2.UserAlias(alias_name=name, alias_label=label),
            external_id=external_id,
        ),
    )


async def test_bad_aliases_are_refused_whole_naming_each_field(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    actions = [
        create("good", "anon-1"),
        create("no-label", "anon-2", label=""),
        create("no-name", ""),
        create("long", "x" * 256),
        create("blocked", "anon-3", external_id="undefined"),
    ]
    with pytest.raises(InvalidArgument) as caught:
        await store.submit(actions)
    assert {v.field for v in caught.value.violations} == {
        "actions[1].create_alias.user_alias.alias_label",
        "actions[2].create_alias.user_alias.alias_name",
        "actions[3].create_alias.user_alias.alias_name",
        "actions[4].create_alias.external_id",
    }
    assert await queued_keys(redis_client, PARTITIONS) == []


async def test_worker_creates_the_alias_once(
    store: ActionStore, start_worker: WorkerFactory, sandbox: BrazeSandbox
) -> None:
    await start_worker()
    await store.submit([create("a1", "anon-1")])
    [created] = await _until_states(store, ["a1"], action_pb2.ACTION_STATE_DELIVERED)
    assert created.last_http_status == 201
    user = sandbox.get_user_by_alias("anon-1", LABEL)
    assert user is not None and user.external_id is None
    await store.submit([create("a2", "anon-1")])
    [again] = await _until_states(store, ["a2"], action_pb2.ACTION_STATE_SKIPPED)
    assert "already created" in again.reason
    assert [r.path for r in sandbox.requests] == ["/users/alias/new"]
