"""Dead letters: ListFailedActions pagination and RetryFailedActions, on the real queues."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from dispatch_service.queue.queues import Completion, complete, read_new
from service_common.errors import InvalidArgument
from tests.dispatch.conftest import PARTITIONS
from tests.dispatch.helpers import CONNECTOR, OTHER_CONNECTOR, queued_keys, track_action

FAILED = action_pb2.ACTION_STATE_FAILED
ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED
NOW_MS = 1_700_000_000_000


async def _fail_all(
    store: ActionStore, redis_client: aioredis.Redis, now_ms: int, reason: str = "refused"
) -> None:
    """Take every queued entry and record it as refused by Braze at ``now_ms``."""
    taken = await read_new(redis_client, PARTITIONS, "tester", count=10_000, block_ms=0)
    statuses = {t.key: await store.get(t.key) for t in taken}
    completions = [
        Completion(
            t,
            "failed",
            connector_id=statuses[t.key].connector_id,  # type: ignore[union-attr]
            http_status=400,
            reason=reason,
        )
        for t in taken
    ]
    await complete(redis_client, completions, now_ms, store.retention_ms)


async def _submit_failures(
    store: ActionStore, redis_client: aioredis.Redis, keys: list[str], now_ms: int, **kw: str
) -> None:
    await store.submit([track_action(k, visitor=f"visitor-{k}", **kw) for k in keys])  # type: ignore[arg-type]
    await _fail_all(store, redis_client, now_ms)


async def _all_pages(store: ActionStore, connector_id: str, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await store.list_failed(connector_id, page_size, token)
        pages.append([s.idempotency_key for s in page.actions])
        token = page.next_page_token
        if not token:
            return pages


async def test_failed_action_has_reason_and_is_listed(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    await _submit_failures(store, redis_client, ["bad"], NOW_MS)

    status = await store.get("bad")
    assert status is not None
    assert (status.state, status.reason, status.attempts) == (FAILED, "refused", 1)
    assert status.last_http_status == 400
    page = await store.list_failed()
    assert [s.idempotency_key for s in page.actions] == ["bad"]
    assert page.next_page_token == ""
    # The entry was acknowledged and deleted: nothing left to deliver.
    assert await queued_keys(redis_client, PARTITIONS) == []


async def test_pages_cover_every_dead_letter_once_newest_first(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    # Many failures share one timestamp (a whole batch fails at once) across partitions.
    older = [f"old-{i}" for i in range(23)]
    newer = [f"new-{i}" for i in range(31)]
    await _submit_failures(store, redis_client, older, NOW_MS)
    await _submit_failures(store, redis_client, newer, NOW_MS + 5)

    pages = await _all_pages(store, "", page_size=7)

    listed = [key for page in pages for key in page]
    assert sorted(listed) == sorted(older + newer)
    assert len(listed) == len(set(listed))
    assert set(listed[: len(newer)]) == set(newer)
    assert all(len(page) == 7 for page in pages[:-1])


async def test_listing_filters_by_connector(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    await _submit_failures(store, redis_client, [f"us-{i}" for i in range(5)], NOW_MS)
    await _submit_failures(
        store, redis_client, [f"eu-{i}" for i in range(4)], NOW_MS, connector=OTHER_CONNECTOR
    )

    pages = await _all_pages(store, OTHER_CONNECTOR, page_size=3)

    assert sorted(key for page in pages for key in page) == [f"eu-{i}" for i in range(4)]
    assert [len(page) for page in pages] == [3, 1]


async def test_bad_page_requests_are_invalid(store: ActionStore) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await store.list_failed(CONNECTOR, page_size=1001, page_token="not-a-token")
    assert {v.field for v in caught.value.violations} == {"page_size", "page_token"}


async def test_retry_requeues_failed_actions_and_names_the_others(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    await _submit_failures(store, redis_client, ["f1", "f2"], NOW_MS)
    await store.submit([track_action("pending")])

    requeued, not_failed = await store.retry_failed(["f1", "pending", "unknown"])

    assert (requeued, not_failed) == (1, ["pending", "unknown"])
    status = await store.get("f1")
    assert status is not None
    assert (status.state, status.attempts, status.reason) == (ACCEPTED, 0, "")
    assert sorted(await queued_keys(redis_client, PARTITIONS)) == ["f1", "pending"]
    page = await store.list_failed()
    assert [s.idempotency_key for s in page.actions] == ["f2"]


async def test_retry_all_of_one_connector(store: ActionStore, redis_client: aioredis.Redis) -> None:
    await _submit_failures(store, redis_client, ["us-1", "us-2"], NOW_MS)
    await _submit_failures(store, redis_client, ["eu-1"], NOW_MS, connector=OTHER_CONNECTOR)

    requeued, not_failed = await store.retry_failed(retry_all=True, connector_id=CONNECTOR)

    assert (requeued, not_failed) == (2, [])
    assert sorted(await queued_keys(redis_client, PARTITIONS)) == ["us-1", "us-2"]
    remaining = await store.list_failed()
    assert [s.idempotency_key for s in remaining.actions] == ["eu-1"]
    assert (await store.retry_failed(retry_all=True))[0] == 1


async def test_retry_needs_keys_or_all(store: ActionStore) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await store.retry_failed([])
    assert [v.field for v in caught.value.violations] == ["idempotency_keys"]
