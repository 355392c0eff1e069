"""The Redis Cluster harness itself: topology, slot routing, redis-py clients, failover, resharding.

Fault tests (kill, reshard) await conditions with generous deadlines and assert outcomes only:
how long a failover takes on a loaded machine is never asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio.cluster
from redis.crc import key_slot

from tests.harness import RedisClusterError, RedisClusterHarness, RedisServer

pytestmark = pytest.mark.cluster


def _tagged_keys(count: int, prefix: str = "visitor") -> list[str]:
    # One hash tag per key, so the keys spread over every slot range.
    return [f"{{{prefix}:{index}}}:profile" for index in range(count)]


def _keys_on_masters(cluster: RedisClusterHarness) -> int:
    total = 0
    for master in cluster.masters():
        with master.client() as direct:
            total += int(direct.dbsize())
    return total


@pytest.fixture
def cluster(redis_cluster: RedisClusterHarness) -> RedisClusterHarness:
    """The session cluster, whole and stable again and with every master empty."""
    redis_cluster.heal()
    redis_cluster.flushall()
    return redis_cluster


@pytest.fixture
def durable_cluster() -> Iterator[RedisClusterHarness]:
    """A cluster of its own (appendonly) for a test that kills nodes."""
    with RedisClusterHarness(appendonly=True) as own:
        yield own


def test_three_masters_three_replicas_all_connected(cluster: RedisClusterHarness) -> None:
    masters = cluster.masters()
    assert len(masters) == 3
    replicas = [cluster.replicas_of(master) for master in masters]
    assert [len(of_one) for of_one in replicas] == [1, 1, 1]
    all_nodes = {server.port for server in masters} | {r[0].port for r in replicas}
    assert len(all_nodes) == 6
    assert sorted(all_nodes) == sorted(port for _, port in cluster.startup_nodes)
    assert cluster.nodes == [f"127.0.0.1:{port}" for _, port in cluster.startup_nodes]
    assert sum(cluster.slot_count(master) for master in masters) == 16384

    for master, (replica,) in zip(masters, replicas, strict=True):
        with replica.client() as client:
            role = client.execute_command("ROLE")
            assert role[0] == b"slave"
            assert int(role[2]) == master.port
            assert role[3] == b"connected"
            info = client.execute_command("CLUSTER", "INFO").decode()
            assert "cluster_state:ok" in info.split()
            assert "cluster_known_nodes:6" in info.split()
            assert client.config_get("cluster-enabled")["cluster-enabled"] == "yes"
            assert client.config_get("bind")["bind"] == "127.0.0.1"
        with master.client() as client:
            assert client.info("replication")["connected_slaves"] == 1
            assert client.config_get("appendonly")["appendonly"] == "no"

    assert cluster.url == f"redis://127.0.0.1:{masters[0].port}"
    with redis.Redis.from_url(cluster.url) as client:
        assert client.execute_command("CLUSTER", "MYID").decode() == cluster.node_id(masters[0])


def test_different_hash_tags_land_on_different_masters(cluster: RedisClusterHarness) -> None:
    keys = _tagged_keys(60)
    owners = {key: cluster.master_of_key(key) for key in keys}
    assert {server.port for server in owners.values()} == {m.port for m in cluster.masters()}

    # Keys sharing a tag share a slot, whatever follows the tag.
    assert cluster.master_of_key("{visitor:7}:badges").port == owners[keys[7]].port

    # master_of_key agrees with where redis-py's cluster client really wrote each key.
    with cluster.client() as client:
        for key in keys:
            client.set(key, key)
    for key, owner in owners.items():
        with owner.client() as direct:
            assert direct.get(key) == key.encode()


def test_sync_client_writes_and_reads_across_slots(cluster: RedisClusterHarness) -> None:
    keys = _tagged_keys(200)
    with cluster.client() as client:
        for index, key in enumerate(keys):
            client.set(key, index)
        assert [int(client.get(key)) for key in keys] == list(range(200))
        # A cluster pipeline splits itself per node.
        pipe = client.pipeline()
        for key in keys:
            pipe.incr(key)
        assert pipe.execute() == list(range(1, 201))
    assert _keys_on_masters(cluster) == 200


async def test_asyncio_client_writes_and_reads_across_slots(
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
) -> None:
    client = redis_cluster_client
    keys = _tagged_keys(200)
    for index, key in enumerate(keys):
        await client.set(key, index)
    assert [await client.get(key) for key in keys] == [str(i).encode() for i in range(200)]
    async with client.pipeline() as pipe:
        for key in keys:
            pipe.incr(key)
        assert await pipe.execute() == list(range(1, 201))
    # A script runs on the node of its keys (all in one slot thanks to the hash tag).
    script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[2])"
    assert await client.eval(script, 2, "{v:1}:a", "{v:1}:b", "x") is None
    assert await client.get("{v:1}:a") == b"x"


# The two tests below run in file order: the first leaves keys behind on every master, the
# second must not see them (redis_cluster_client flushes every master first).
async def test_flush_isolation_writer(
    redis_cluster_client: redis.asyncio.cluster.RedisCluster, redis_cluster: RedisClusterHarness
) -> None:
    for key in _tagged_keys(30, prefix="leftover"):
        await redis_cluster_client.set(key, "1")
    assert _keys_on_masters(redis_cluster) == 30


async def test_flush_isolation_reader(
    redis_cluster_client: redis.asyncio.cluster.RedisCluster, redis_cluster: RedisClusterHarness
) -> None:
    assert _keys_on_masters(redis_cluster) == 0
    assert await redis_cluster_client.get("{leftover:0}:profile") is None


async def test_killed_master_fails_over_and_clients_recover(
    durable_cluster: RedisClusterHarness,
) -> None:
    cluster = durable_cluster
    victim = cluster.masters()[0]
    (its_replica,) = cluster.replicas_of(victim)
    keys = _tagged_keys(150)
    doomed = [key for key in keys if cluster.master_of_key(key).port == victim.port]
    assert doomed, "some keys must live on the master that is killed"

    client = cluster.async_client()
    try:
        for key in keys:
            await client.set(key, f"before:{key}")
        # WAIT on the connection that wrote: the write reached the replica before the crash.
        with victim.client(single_connection_client=True) as direct:
            assert direct.config_get("appendonly")["appendonly"] == "yes"
            direct.set(doomed[0], "acknowledged")
            assert direct.execute_command("WAIT", 1, 10_000) == 1
        await asyncio.to_thread(cluster.await_replicated)

        killed = await asyncio.to_thread(cluster.kill_master, 0)
        assert killed.port == victim.port and not victim.is_running
        promoted = await asyncio.to_thread(cluster.await_failover, victim)
        assert promoted.port == its_replica.port
        assert cluster.master_of_key(doomed[0]).port == promoted.port

        # The client opened before the crash follows the new topology (its retries refresh
        # the slot map) and reads and writes every slot again.
        for key in keys:
            expected = "acknowledged" if key == doomed[0] else f"before:{key}"
            assert await client.get(key) == expected.encode()
        for key in doomed:
            await client.set(key, "after")
        assert await client.get(doomed[-1]) == b"after"
    finally:
        await client.aclose()

    with cluster.client() as sync_client:
        assert sync_client.get(doomed[-1]) == b"after"

    # The old master comes back as a replica of the node that replaced it.
    await asyncio.to_thread(cluster.restart_node, victim)
    assert [r.port for r in cluster.replicas_of(promoted)] == [victim.port]
    assert len(cluster.masters()) == 3


async def test_reshard_moves_slots_while_a_client_keeps_writing(
    redis_cluster_client: redis.asyncio.cluster.RedisCluster, redis_cluster: RedisClusterHarness
) -> None:
    cluster = redis_cluster
    source, target, _ = cluster.masters()
    before = (cluster.slot_count(source), cluster.slot_count(target))
    # redis-cli moves a source's lowest slots first: half the writes go to those slots (the
    # ones that will move mid-write), half anywhere.
    moving = set(cluster.slots(source)[:200])
    in_moving = [
        tag for tag in (f"m{n}" for n in range(20_000)) if key_slot(tag.encode()) in moving
    ]
    assert len(in_moving) >= 50
    written: list[str] = []
    stop = asyncio.Event()

    async def keep_writing() -> None:
        index = 0
        while not stop.is_set() or index < 400:
            tag = in_moving[index % len(in_moving)] if index % 2 else f"w{index}"
            key = f"{{{tag}}}:{index}"
            await redis_cluster_client.set(key, index)
            written.append(key)
            index += 1

    writer = asyncio.create_task(keep_writing())
    try:
        await asyncio.to_thread(cluster.reshard, source, target, 200)
    finally:
        stop.set()
        await writer

    assert cluster.slot_count(source) == before[0] - 200
    assert cluster.slot_count(target) == before[1] + 200
    assert set(cluster.slots(target)) >= moving
    # Every acknowledged write is readable, wherever its slot ended up.
    values = [await redis_cluster_client.get(key) for key in written]
    assert values == [str(index).encode() for index in range(len(written))]
    moved = [key for key in written if key_slot(key.encode()) in moving]
    assert all(cluster.master_of_key(key).port == target.port for key in moved)
    with target.client() as direct:
        assert all(direct.exists(key) for key in moved)


def test_reshard_rejects_nonsense(cluster: RedisClusterHarness) -> None:
    source, target, _ = cluster.masters()
    with pytest.raises(ValueError, match="positive"):
        cluster.reshard(source, target, 0)
    stranger = RedisServer()
    with pytest.raises(RedisClusterError, match="not a node of this cluster"):
        cluster.node_id(stranger)


def test_cluster_needs_three_masters() -> None:
    with pytest.raises(ValueError, match="at least 3 masters"):
        RedisClusterHarness(masters=2)
