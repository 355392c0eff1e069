"""OutboxForwarder on a real Redis: every committed action reaches ``submit`` exactly once,
across submit failures, a forwarder crash between read and acknowledgement, refused actions
and several forwarders sharing the outboxes."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis.asyncio

from crowd.dispatch.v1 import action_pb2
from profile_service.storage import Layout, OutboxForwarder, ProfileStore, SubmitRejected
from profile_service.storage.outbox import FORWARDER_GROUP
from tests.harness import eventually
from tests.storage.helpers import (
    STAND_IN_ENGINE,
    T0,
    RecordingSubmit,
    event,
    make_defs,
)


async def _fire(store: ProfileStore, count: int) -> set[str]:
    """Commit ``count`` feed actions over several visitors (so several partitions)."""
    events = [event(f"v{i % 7}", f"e{i}", name="fire", amount=0) for i in range(count)]
    await store.apply_events(make_defs(), events, T0)
    return {f"v{i % 7}:feed:e{i}" for i in range(count)}


async def _outboxes_drained(client: redis.asyncio.Redis, layout: Layout) -> bool:
    async with client.pipeline(transaction=False) as pipe:
        for pkeys in layout.all_partitions():
            pipe.xlen(pkeys.outbox)
            pipe.xpending(pkeys.outbox, FORWARDER_GROUP)
        replies = await pipe.execute(raise_on_error=False)
    lengths = replies[0::2]
    pending = [r["pending"] if isinstance(r, dict) else 0 for r in replies[1::2]]
    return sum(lengths) == 0 and sum(pending) == 0


def _fast(
    client: redis.asyncio.Redis, layout: Layout, submit: object, **options: object
) -> OutboxForwarder:
    defaults: dict[str, object] = {
        "idle_interval_s": 0.02,
        "initial_backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "claim_interval_s": 0.05,
    }
    defaults.update(options)
    return OutboxForwarder(client, layout, submit, **defaults)  # type: ignore[arg-type]


async def test_committed_actions_reach_submit_exactly_once_and_leave_the_outbox(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    expected = await _fire(store, 40)
    submit = RecordingSubmit()
    forwarder = _fast(client, layout, submit)

    while await forwarder.forward_once():
        pass

    assert Counter(submit.idempotency_keys()) == Counter(expected)
    assert all(a.connector_id == "braze" for a in submit.accepted)
    assert await _outboxes_drained(client, layout)


async def test_actions_written_before_the_forwarder_existed_are_forwarded(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    # No consumer group exists when the actions are committed.
    assert not await client.exists(layout.keys_for("x").outbox)
    expected = await _fire(store, 5)
    submit = RecordingSubmit()

    await _fast(client, layout, submit).forward_once()

    assert sorted(submit.idempotency_keys()) == sorted(expected)


async def test_a_failing_submit_is_retried_until_the_dispatch_service_accepts(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    expected = await _fire(store, 10)
    submit = RecordingSubmit(failures=3)
    forwarder = _fast(client, layout, submit)
    forwarder.start()
    try:
        await eventually(lambda: _outboxes_drained(client, layout), what="the outbox to drain")
    finally:
        await forwarder.stop()

    assert submit.attempts >= 4
    assert forwarder.stats.submit_failures == 3
    assert Counter(submit.idempotency_keys()) == Counter(expected)


async def test_entries_of_a_forwarder_that_died_before_acknowledging_are_reclaimed(
    store: ProfileStore, redis_url: str, client: redis.asyncio.Redis, layout: Layout
) -> None:
    expected = await _fire(store, 20)
    submit_called = asyncio.Event()

    async def hanging_submit(actions: list[action_pb2.Action]) -> None:
        submit_called.set()
        await asyncio.Event().wait()  # the dispatch call never returns: we "crash" here

    crashed_client = redis.asyncio.Redis.from_url(redis_url)
    crashed = _fast(crashed_client, layout, hanging_submit, consumer="crashed")
    crashed.start()
    await asyncio.wait_for(submit_called.wait(), 10)
    await crashed.stop(grace_s=0)  # killed between reading and acknowledging
    await crashed_client.aclose()

    submit = RecordingSubmit()
    survivor = _fast(client, layout, submit, consumer="survivor", claim_idle_ms=200)
    survivor.start()
    try:
        await eventually(lambda: _outboxes_drained(client, layout), what="the outbox to drain")
    finally:
        await survivor.stop()

    assert Counter(submit.idempotency_keys()) == Counter(expected)
    assert survivor.stats.claimed == len(expected)


async def test_refused_actions_are_dropped_and_the_others_still_forwarded(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    expected = await _fire(store, 6)
    bad = sorted(expected)[0]
    accepted: list[str] = []

    async def picky_submit(actions: list[action_pb2.Action]) -> None:
        if any(a.idempotency_key == bad for a in actions):
            raise SubmitRejected([bad], "invalid")
        accepted.extend(a.idempotency_key for a in actions)

    forwarder = _fast(client, layout, picky_submit)
    while await forwarder.forward_once():
        pass

    assert sorted(accepted) == sorted(expected - {bad})
    assert forwarder.stats.rejected == 1
    assert await _outboxes_drained(client, layout)


async def test_two_forwarders_share_the_outboxes_without_duplicates(
    store: ProfileStore, redis_url: str, client: redis.asyncio.Redis, layout: Layout
) -> None:
    other_client = redis.asyncio.Redis.from_url(redis_url)
    submit = RecordingSubmit()  # both replicas submit to the same dispatch service
    forwarders = [
        _fast(client, layout, submit, consumer="a"),
        _fast(other_client, layout, submit, consumer="b"),
    ]
    for forwarder in forwarders:
        forwarder.start()
    try:
        expected: set[str] = set()
        for _ in range(5):  # actions keep arriving while both forward
            expected |= await _fire_more(store, len(expected))
        await eventually(lambda: _outboxes_drained(client, layout), what="the outbox to drain")
    finally:
        for forwarder in forwarders:
            await forwarder.stop()
        await other_client.aclose()

    assert Counter(submit.idempotency_keys()) == Counter(expected)


async def _fire_more(store: ProfileStore, offset: int) -> set[str]:
    events = [event(f"v{i % 5}", f"e{offset + i}", name="fire", amount=0) for i in range(20)]
    await store.apply_events(make_defs(), events, T0)
    return {f"v{i % 5}:feed:e{offset + i}" for i in range(20)}


async def test_wake_forwards_without_waiting_for_the_idle_poll(
    client: redis.asyncio.Redis, layout: Layout
) -> None:
    submit = RecordingSubmit()
    forwarder = OutboxForwarder(client, layout, submit, idle_interval_s=600)
    store = ProfileStore(client, layout, STAND_IN_ENGINE, on_outbox_write=forwarder.wake)
    await store.prepare()
    forwarder.start()
    try:
        # After its first (empty) round the forwarder idles for 10 minutes unless woken.
        await eventually(lambda: _rounds_at_least(forwarder, 1), what="a first round")
        await store.apply_events(make_defs(), [event("v", "e1", name="fire")], T0)
        await eventually(lambda: _has(submit, "v:feed:e1"), within=10, what="the action")
    finally:
        await forwarder.stop()


async def _rounds_at_least(forwarder: OutboxForwarder, rounds: int) -> bool:
    return forwarder.stats.rounds >= rounds


async def _has(submit: RecordingSubmit, key: str) -> bool:
    return key in submit.idempotency_keys()
