"""Deduplication by the event ids kept in the profile hash (field ``d``), and by the sorted
set of a profile written before that field existed."""

from __future__ import annotations

import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore, recent_ids
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


# --- TTL refreshes ---------------------------------------------------------------------------

DAY_MS = 24 * 3600 * 1000


async def _deadline(client: redis.asyncio.Redis, key: str) -> int | None:
    return recent_ids.decode(await client.hget(key, "d"))[1]


async def test_a_commit_sets_the_ttl_again_only_when_the_stored_deadline_lags_by_a_day(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs()
    retention = defs.limits.visitor_retention_ms
    key = layout.keys_for("v").profile("v")
    await store.apply_events(defs, [event("v", "e1")], T0)
    assert await _deadline(client, key) == T0 + retention
    # A TTL shorter than the deadline says: a commit that left the TTL alone keeps it.
    await client.pexpire(key, 1_000_000)

    await store.apply_events(defs, [event("v", "e2")], T0 + DAY_MS - 1)
    kept = await client.pttl(key)
    await store.apply_events(defs, [event("v", "e3")], T0 + DAY_MS + 1)
    refreshed = await client.pttl(key)

    assert 0 < kept <= 1_000_000
    assert retention - 60_000 < refreshed <= retention
    assert await _deadline(client, key) == T0 + DAY_MS + 1 + retention


async def test_a_shorter_retention_setting_applies_at_the_next_commit(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    key = layout.keys_for("v").profile("v")
    await store.apply_events(make_defs(), [event("v", "e1")], T0)

    await store.apply_events(make_defs(retention_ms=3_600_000), [event("v", "e2")], T0 + 1)

    assert 3_600_000 - 60_000 < await client.pttl(key) <= 3_600_000
