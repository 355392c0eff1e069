"""service_common.redis_toolkit against a real redis-server: the Lua runner survives a lost
script cache (EVAL, never SCRIPT LOAD in a pipeline), the partition guard, the stream reader
recreating a vanished group, and the shared retry policy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from service_common.redis_toolkit import streams
from service_common.redis_toolkit.partitions import PartitionMismatchError, check_partitions
from service_common.redis_toolkit.retry import BRAZE_DELIVERY, Backoff, retrying
from service_common.redis_toolkit.scripts import (
    LuaScript,
    ScriptCall,
    execute_with_scripts,
    run_scripts,
)

INCR_BY = LuaScript("return redis.call('INCRBY', KEYS[1], ARGV[1])", name="incr_by")


@pytest_asyncio.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_a_script_runs_again_by_source_after_the_cache_was_flushed(
    client: aioredis.Redis,
) -> None:
    assert await INCR_BY.run(client, ["toolkit:{p1}:n"], [2]) == 2
    await client.script_flush()
    calls = [ScriptCall(INCR_BY, [f"toolkit:{{p{p}}}:n"], [1]) for p in range(3)]
    assert await run_scripts(client, calls) == [1, 3, 1]
    await client.script_flush()
    assert await INCR_BY.run(client, ["toolkit:{p1}:n"], [1]) == 4
    # EVAL cached the script again: the next EVALSHA needs no source.
    assert (await client.script_exists(INCR_BY.sha)) == [True]


async def test_a_mixed_pipeline_is_rebuilt_with_eval_after_noscript(
    client: aioredis.Redis,
) -> None:
    await client.script_flush()
    sent: list[int] = []

    def fill(pipe: aioredis.client.Pipeline) -> None:
        sent.append(len(sent) + 1)
        pipe.set("toolkit:{p2}:plain", "x")
        INCR_BY.queue(pipe, ["toolkit:{p2}:n"], [5])

    replies = await execute_with_scripts(client, fill)
    assert replies[1] == 5
    assert sent == [1, 2]  # first with EVALSHA (NOSCRIPT), then rebuilt with the source


async def test_the_partition_count_is_recorded_once_and_checked(
    client: aioredis.Redis,
) -> None:
    await check_partitions(client, "toolkit:meta:partitions", 8, "test")
    await check_partitions(client, "toolkit:meta:partitions", 8, "test")
    with pytest.raises(PartitionMismatchError, match="8 partitions, not 16"):
        await check_partitions(client, "toolkit:meta:partitions", 16, "test")


async def test_the_reader_recreates_a_vanished_group(client: aioredis.Redis) -> None:
    names = [f"toolkit:{{p{p}}}:stream" for p in range(2)]
    await streams.create_groups(client, names, "g")
    await client.delete(names[1])  # the stream and its group are gone
    await client.xadd(names[0], {b"k": b"a"})
    taken = await streams.read_new(client, names, "g", "c", 10, 0, per_stream=True)
    assert [fields for _, _, fields in taken] == [{b"k": b"a"}]
    assert await client.xinfo_groups(names[1])  # created again
    await streams.ack(client, names, "g", {0: [taken[0][1]]})
    assert await client.xlen(names[0]) == 0


def test_delays_are_full_jitter_below_a_capped_ceiling() -> None:
    rng = random.Random(7)
    delays = [BRAZE_DELIVERY.delay(attempt, rng) for attempt in range(1, 40)]
    assert all(0 <= d <= min(60.0, 0.5 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert BRAZE_DELIVERY.ceiling(30) == 60.0


async def test_retrying_logs_each_failed_attempt_once_then_succeeds() -> None:
    failures = 3
    logged: list[int] = []

    async def flaky() -> str:
        nonlocal failures
        if failures:
            failures -= 1
            raise RedisConnectionError("down")
        return "up"

    result = None
    async for attempt in retrying(
        Backoff(0.001, 0.002),
        retry_on=RedisConnectionError,
        log=lambda n, _error, _delay: logged.append(n),
    ):
        with attempt:
            result = await flaky()
    assert result == "up"
    assert logged == [1, 2, 3]


async def test_retrying_gives_up_at_once_on_an_error_that_will_not_heal() -> None:
    calls = 0
    with pytest.raises(ValueError):
        async for attempt in retrying(Backoff(0.001, 0.002), retry_on=RedisConnectionError):
            with attempt:
                calls += 1
                await asyncio.sleep(0)
                raise ValueError("bad")
    assert calls == 1
