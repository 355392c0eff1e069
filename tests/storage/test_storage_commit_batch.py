"""The commit of a batch: one script call per partition, each profile compared and set on
its own (a conflicting profile does not stop the others of its call)."""

from __future__ import annotations

import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore
from profile_service.storage.commit import build_write, queue_commits
from tests.storage.helpers import T0, event, make_defs


def _same_partition(layout: Layout, count: int) -> list[str]:
    first = layout.keys_for("v0").partition
    same = [f"v{i}" for i in range(1000) if layout.keys_for(f"v{i}").partition == first]
    return same[:count]


async def test_one_call_per_partition_commits_every_profile_but_the_one_that_changed(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    defs = make_defs()
    visitors = _same_partition(layout, 3)
    await store.apply_events(defs, [event(v, f"{v}-e0") for v in visitors], T0)
    writes = []
    versions = []
    for n, visitor_id in enumerate(visitors):
        found = await reader.get_profile(visitor_id)
        assert found is not None
        versions.append(found.version)
        writes.append(
            build_write(
                layout=layout,
                defs=defs,
                profile_id=found.profile_id,
                expected_version="stale" if n == 1 else found.version,
                initial_audiences=found.state.audiences,
                final=found.state,
                steps=[],
                now_ms=T0 + 1,
            )
        )

    async with client.pipeline(transaction=False) as pipe:
        queued = queue_commits(pipe, writes)
        replies = await pipe.execute(raise_on_error=False)

    assert len(queued.calls) == 1
    assert queued.committed(replies) == [True, False, True]
    after = [await reader.get_profile(v) for v in visitors]
    expected = [writes[0].new_version, versions[1], writes[2].new_version]
    assert [found.version if found else None for found in after] == expected
