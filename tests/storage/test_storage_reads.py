"""ProfileReader, TraceLog and AudienceReconciler on a real Redis: lookups, deletion,
audience size and members, trace history and following."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from crowd.profile.v1 import trace_pb2
from profile_service.storage import (
    AudienceReconciler,
    Layout,
    ProfileReader,
    ProfileStore,
    TraceLog,
)
from service_common import keys
from service_common.errors import InvalidArgument
from tests.storage.helpers import T0, event, make_defs


async def _join_big(store: ProfileStore, *visitor_ids: str) -> None:
    events = [event(v, f"{v}-{i}") for v in visitor_ids for i in range(3)]
    await store.apply_events(make_defs(), events, T0)


async def _key_names(client: redis.asyncio.Redis) -> list[str]:
    return [k.decode() async for k in client.scan_iter(count=1000)]


async def test_get_profile_returns_none_for_an_unknown_visitor(reader: ProfileReader) -> None:
    assert await reader.get_profile("nobody") is None


async def test_delete_removes_everything_of_the_visitor(
    store: ProfileStore, reader: ProfileReader, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs()
    await store.apply_events(
        defs,
        [event("v", f"e{i}", email="v@example.com", trace_id="t1") for i in range(3)],
        T0,
    )
    await _join_big(store, "other")
    await client.set(layout.keys_for("anon").alias("anon"), "v")  # a stitched anonymous id
    pkeys = layout.keys_for("v")
    assert await client.sismember(pkeys.audience("big"), "v")

    deleted = await reader.delete_profile("anon", defs)

    assert deleted is not None
    assert deleted.profile_id == "v"
    assert sorted(deleted.visitor_ids) == ["anon", "v"]
    assert await reader.get_profile("v") is None
    assert await reader.get_profile("anon") is None
    assert await reader.find_by_identity("email", "v@example.com") is None
    names = await _key_names(client)
    # Nothing named after the visitor is left (the live-trace-id stream is the trace id's,
    # and expires on its own); its memberships and visit entry are gone.
    assert [n for n in names if n.endswith(":v") or ":v:" in n or n.endswith(":anon")] == []
    assert not any("v@example.com" in n for n in names)
    assert not await client.sismember(pkeys.audience("big"), "v")
    assert await client.zscore(pkeys.visits_due, "v") is None
    assert await reader.audience_size("big") == 1  # "other" is untouched
    assert await reader.delete_profile("v", defs) is None


async def test_find_by_identity_ignores_an_index_entry_the_profile_no_longer_backs(
    store: ProfileStore, reader: ProfileReader, client: redis.asyncio.Redis, layout: Layout
) -> None:
    await client.set(keys.identity_index("email", "x@example.com", layout.partitions), "v")
    assert await reader.find_by_identity("email", "x@example.com") is None  # no profile

    await store.apply_events(make_defs(), [event("v", "e1", email="y@example.com")], T0)
    assert await reader.find_by_identity("email", "x@example.com") is None  # other value


async def test_audience_size_counts_members_over_all_partitions(
    store: ProfileStore, reader: ProfileReader, layout: Layout
) -> None:
    visitors = [f"visitor-{i}" for i in range(25)]
    await _join_big(store, *visitors)
    await store.apply_events(make_defs(), [event("small", "s1")], T0)  # not in big

    assert len({layout.keys_for(v).partition for v in visitors}) > 1
    assert await reader.audience_size("big") == 25
    assert await reader.audience_size("unknown") == 0


@pytest.mark.parametrize("page_size", [1, 7, 1000])
async def test_audience_members_pages_through_every_member_once(
    store: ProfileStore, reader: ProfileReader, page_size: int
) -> None:
    visitors = {f"visitor-{i}" for i in range(60)}
    await _join_big(store, *visitors)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await reader.audience_members("big", page_size, token)
        assert len(page.profile_ids) <= page_size
        seen += page.profile_ids
        pages += 1
        token = page.next_page_token
        if not token:
            break
        assert pages < 200

    assert sorted(seen) == sorted(visitors)


async def test_audience_members_refuses_bad_input(reader: ProfileReader) -> None:
    with pytest.raises(InvalidArgument):
        await reader.audience_members("big", 0)
    with pytest.raises(InvalidArgument):
        await reader.audience_members("big", 10, "not-a-token")
    page_token = (await reader.audience_members("empty", 10)).next_page_token
    assert page_token == ""


async def test_a_token_of_another_audience_is_refused(
    store: ProfileStore, reader: ProfileReader
) -> None:
    await _join_big(store, *(f"visitor-{i}" for i in range(5)))
    token = (await reader.audience_members("big", 1)).next_page_token
    assert token

    with pytest.raises(InvalidArgument):
        await reader.audience_members("other", 1, token)


async def test_the_reconciler_removes_members_whose_profile_expired(
    store: ProfileStore, reader: ProfileReader, client: redis.asyncio.Redis, layout: Layout
) -> None:
    await _join_big(store, "kept", "expired")
    await client.delete(layout.keys_for("expired").profile("expired"))  # as by its TTL
    defs = make_defs()

    removed = await AudienceReconciler(client, layout, lambda: defs).reconcile_once()

    assert removed == 1
    assert await reader.audience_size("big") == 1
    assert await client.sismember(layout.keys_for("kept").audience("big"), "kept")


async def test_trace_history_and_follow(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    log = TraceLog(client, layout, block_ms=100)
    defs = make_defs()
    await store.apply_events(defs, [event("v", "e1", trace_id="dbg")], T0)
    stream = await log.visitor_stream("v")

    history = await log.history(stream)
    assert [(e.event_id, e.kind) for e in history] == [
        ("e1", trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED)
    ]
    assert history[0].profile_id == "v"
    assert history[0].trace_id == "dbg"
    assert history[0].details["count"].number_value == 1
    assert await log.history(stream, after=history[0].cursor) == []

    # "" follows only what is written after the starting point.
    start = await log.start_cursor(stream, "")
    await store.apply_events(defs, [event("v", "e2")], T0 + 1)
    following = log.follow(stream, start)
    assert (await asyncio.wait_for(anext(following), 5)).event_id == "e2"

    # A follower that has caught up receives the next entry when it is written.
    pending = asyncio.ensure_future(anext(following))
    await store.apply_events(defs, [event("v", "e3")], T0 + 2)
    assert (await asyncio.wait_for(pending, 5)).event_id == "e3"
    await following.aclose()

    replay = log.follow(stream, "0")
    assert [(await anext(replay)).event_id for _ in range(3)] == ["e1", "e2", "e3"]
    await replay.aclose()

    # A follower whose consumer is gone (active() false) ends after its current XREAD.
    checks = 0

    def active() -> bool:
        nonlocal checks
        checks += 1
        return checks == 1

    stoppable = log.follow(stream, "", active=active)
    assert await asyncio.wait_for(anext(stoppable, None), 5) is None
    assert checks == 2

    by_trace_id = await log.history(TraceLog.trace_id_stream("dbg"))
    assert [e.event_id for e in by_trace_id] == ["e1"]


async def test_trace_cursors_are_validated(client: redis.asyncio.Redis, layout: Layout) -> None:
    with pytest.raises(InvalidArgument):
        await TraceLog(client, layout).history("any", after="yesterday")
