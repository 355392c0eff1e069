"""A backfill that dies part-way resumes from its stored cursors: nothing lost, nothing twice.

Storage level on a real Redis with the real engine: the worker's explicit fault hook
(``fault_after_commit``) kills a step after its commits and before its progress is saved,
the worst moment; a fresh worker (a restarted replica) then finishes the job.
"""

from __future__ import annotations

from collections import Counter

import pytest
import redis.asyncio

from crowd.profile.v1 import definitions_pb2
from profile_service.definitions.checked import validate_remembered
from profile_service.definitions.compiler import compile_definitions, digest
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent
from profile_service.storage import DefinitionsStore, EngineFunctions, Layout, ProfileStore
from profile_service.storage.backfill import BackfillWorker, read_backfill_progress
from profile_service.storage.replies import as_text
from tests.backfill.helpers import (
    ACTION,
    AUDIENCE,
    amount_of,
    base_definitions,
    outbox_actions,
    with_audience,
)

PARTITIONS = 8
PROFILES = 3_000


class Died(Exception):
    """The fault hook's stand-in for a replica dying."""


async def _publish(
    definitions: DefinitionsStore, document: definitions_pb2.Definitions
) -> CompiledDefinitions:
    published = await definitions.publish(document)
    return compile_definitions(document, published.version.version)


def _worker(
    client: redis.asyncio.Redis, store: ProfileStore, definitions: DefinitionsStore,
    defs: CompiledDefinitions, chunk: int = 50,
) -> BackfillWorker:  # fmt: skip
    return BackfillWorker(
        client, store, definitions, lambda: defs, profiles_per_second=1e6, chunk=chunk
    )


@pytest.mark.parametrize("fires_actions", [False, True])
async def test_a_backfill_killed_mid_way_resumes_without_losing_or_repeating_anything(
    redis_client: redis.asyncio.Redis, fires_actions: bool
) -> None:
    layout = Layout(PARTITIONS)
    store = ProfileStore(redis_client, layout, EngineFunctions.real())
    await store.prepare()
    definitions = DefinitionsStore(redis_client, validate=validate_remembered, digest=digest)
    base = await _publish(definitions, base_definitions())
    events = [
        NormalizedEvent(
            f"p{n}",
            f"e{n}",
            "purchase",
            1_000,
            {"amount": amount_of(n), "customer_id": f"cust-{n:05d}"},
        )
        for n in range(PROFILES)
    ]
    for start in range(0, PROFILES, 500):
        await store.apply_events(base, events[start : start + 500])
    defs = await _publish(definitions, with_audience(fires_actions=fires_actions))

    dying = _worker(redis_client, store, definitions, defs)
    steps = 0

    def die_on_the_third_chunk() -> None:
        nonlocal steps
        steps += 1
        if steps == 3:
            raise Died

    dying.fault_after_commit = die_on_the_third_chunk
    with pytest.raises(Died):
        while True:
            await dying.step()
    partial = await read_backfill_progress(redis_client, PARTITIONS)
    assert partial.state == "running"

    restarted = _worker(redis_client, store, definitions, defs)
    while (await read_backfill_progress(redis_client, PARTITIONS)).state != "done":
        await restarted.step()

    expected = {f"p{n}" for n in range(PROFILES) if amount_of(n) > 50}
    members: set[str] = set()
    for pkeys in layout.all_partitions():
        members |= {as_text(m) for m in await redis_client.smembers(pkeys.audience(AUDIENCE))}
    assert members == expected
    fired = Counter(await outbox_actions(redis_client, PARTITIONS))
    if fires_actions:
        assert fired == Counter({f"{p}:{ACTION}:backfill:{defs.version}": 1 for p in expected})
    else:
        assert fired == Counter()


async def _with_purchases(
    redis_client: redis.asyncio.Redis, visitors: int
) -> tuple[Layout, ProfileStore, DefinitionsStore]:
    """A store under the base definitions in which ``p0``… ``p<visitors-1>`` each made one
    purchase of ``amount_of(n)``."""
    layout = Layout(PARTITIONS)
    store = ProfileStore(redis_client, layout, EngineFunctions.real())
    await store.prepare()
    definitions = DefinitionsStore(redis_client, validate=validate_remembered, digest=digest)
    base = await _publish(definitions, base_definitions())
    await store.apply_events(
        base,
        [
            NormalizedEvent(f"p{n}", f"e{n}", "purchase", 1_000, {"amount": amount_of(n)})
            for n in range(visitors)
        ],
    )
    return layout, store, definitions


async def test_a_newer_publish_supersedes_a_running_backfill_and_keeps_its_audiences(
    redis_client: redis.asyncio.Redis,
) -> None:
    layout, store, definitions = await _with_purchases(redis_client, 500)
    first = await _publish(definitions, with_audience())
    # One small chunk per partition: the first backfill is still running.
    await _worker(redis_client, store, definitions, first, chunk=1).step()
    running = await read_backfill_progress(redis_client, PARTITIONS)
    assert (running.version, running.state) == (first.version, "running")

    document = with_audience()
    document.audiences.add().CopyFrom(document.audiences[0])
    document.audiences[1].id = "huge_spenders"
    document.audiences[1].name = "Huge spenders"
    document.audiences[1].expression.condition.value.constant.number_value = 95
    newest = await _publish(definitions, document)
    worker = _worker(redis_client, store, definitions, newest)
    await worker.step()
    progress = await read_backfill_progress(redis_client, PARTITIONS)
    assert progress.version == newest.version
    assert set(progress.audience_ids) == {AUDIENCE, "huge_spenders"}
    while (await read_backfill_progress(redis_client, PARTITIONS)).state != "done":
        await worker.step()

    for audience_id, threshold in ((AUDIENCE, 50), ("huge_spenders", 95)):
        members: set[str] = set()
        for pkeys in layout.all_partitions():
            found = await redis_client.smembers(pkeys.audience(audience_id))
            members |= {as_text(m) for m in found}
        assert members == {f"p{n}" for n in range(500) if amount_of(n) > threshold}


async def _calls(client: redis.asyncio.Redis, command: str) -> int:
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_finished_backfill_is_not_re_read_at_every_step(
    redis_client: redis.asyncio.Redis,
) -> None:
    _, store, definitions = await _with_purchases(redis_client, 100)
    defs = await _publish(definitions, with_audience())
    worker = _worker(redis_client, store, definitions, defs)
    while (await read_backfill_progress(redis_client, PARTITIONS)).state != "done":
        await worker.step()
    await worker.step()  # the step that finds every partition done
    before = await _calls(redis_client, "hgetall")

    assert await worker.step() == 0

    # Only the job record (no partition progress rows): the idle loop costs one command.
    assert await _calls(redis_client, "hgetall") - before == 1
