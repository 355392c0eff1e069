"""The consumer-group reader both dispatch queues use, in both of its read modes."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from service_common.redis_toolkit import streams

STREAMS = [f"test:{{p{p}}}:queue" for p in range(4)]
GROUP = "readers"


@pytest.mark.parametrize("per_stream", [False, True], ids=["one-command", "cluster-safe"])
async def test_reads_every_partition_once_and_claims_stale_entries(
    redis_client: aioredis.Redis, per_stream: bool
) -> None:
    for stream in STREAMS:
        await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    added: set[tuple[int, bytes]] = set()  # entry ids are unique per stream only
    for partition, stream in enumerate(STREAMS):
        for n in range(3):
            entry_id = await redis_client.xadd(stream, {b"k": f"{n}".encode()})
            assert isinstance(entry_id, bytes)
            added.add((partition, entry_id))

    taken: list[streams.RawEntry] = []
    while len(taken) < len(added):
        batch = await streams.read_new(
            redis_client, STREAMS, GROUP, "a", count=100, block_ms=10, per_stream=per_stream
        )
        assert batch, "entries remain unread"
        taken += batch
    assert sorted((partition, entry_id) for partition, entry_id, _ in taken) == sorted(added)
    assert not await streams.read_new(
        redis_client, STREAMS, GROUP, "a", count=100, block_ms=10, per_stream=per_stream
    )

    # Consumer "a" never acknowledged: "b" takes everything over once idle long enough.
    claimed = await streams.claim_stale(redis_client, STREAMS, GROUP, "b", 0, count=100)
    assert sorted((partition, entry_id) for partition, entry_id, _ in claimed) == sorted(added)
