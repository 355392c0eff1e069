"""Deduplication by the event ids kept in the profile hash (field ``d``), and by the sorted
set of a profile written before that field existed."""

from __future__ import annotations

import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore
from tests.storage.helpers import STAND_IN_ENGINE, T0, event, make_defs


async def _count(reader: ProfileReader, visitor_id: str) -> float:
    found = await reader.get_profile(visitor_id)
    assert found is not None
    return float(found.state.attributes["count"])


async def test_the_recent_ids_live_in_the_profile_hash_not_in_a_key_of_their_own(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs()

    await store.apply_events(defs, [event("v", "e1"), event("v", "e2")], T0)

    pkeys = layout.keys_for("v")
    assert await client.hexists(pkeys.profile("v"), "d")
    assert not await client.exists(pkeys.dedup("v"))


async def test_a_profile_with_an_old_dedup_set_still_deduplicates_after_its_next_commit(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    defs = make_defs()
    pkeys = layout.keys_for("v")
    await store.apply_events(defs, [event("v", "e0")], T0)
    # The layout of a profile last written before the field existed: no d, a sorted set.
    await client.hdel(pkeys.profile("v"), "d")
    await client.zadd(pkeys.dedup("v"), {"old-1": T0 - 10, "old-2": T0 - 5})

    first = await store.apply_events(defs, [event("v", "old-1"), event("v", "e1")], T0 + 1)
    # old-2 was not in the batch that moved the ids into the hash: still recognised after.
    second = await store.apply_events(defs, [event("v", "old-2"), event("v", "e1")], T0 + 2)

    assert [r.duplicate for r in first] == [True, False]
    assert [r.duplicate for r in second] == [True, True]
    assert await _count(reader, "v") == 2


async def test_at_most_max_entries_ids_are_kept_oldest_dropped_first(
    client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    store = ProfileStore(client, layout, STAND_IN_ENGINE, dedup_max_entries=3)
    await store.prepare()
    defs = make_defs()
    for i in range(4):
        await store.apply_events(defs, [event("v", f"e{i}")], T0 + i)

    again = await store.apply_events(defs, [event("v", "e0"), event("v", "e3")], T0 + 10)

    assert [r.duplicate for r in again] == [False, True]
    assert await _count(reader, "v") == 5
