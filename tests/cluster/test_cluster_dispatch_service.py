"""The dispatch service on a real Redis Cluster, through its gRPC API: configured by its
documented settings (``CROWD_DISPATCH_REDIS_CLUSTER=true``, one seed node's URL), delivering
to the Braze sandbox over HTTP."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import redis.asyncio.cluster
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from braze_sandbox import ALL_PERMISSIONS
from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue.queues import GROUP
from dispatch_service.worker import WorkerSettings
from service_common.keys import DispatchKeys
from tests.cluster.helpers_dispatch import (
    PARTITIONS,
    await_states,
    client_of,
    dispatch_on_cluster,
    events_delivered,
)
from tests.dispatch.helpers import API_KEY, CONNECTOR, cooldown, track_action
from tests.harness import RedisClusterHarness, running_sandbox

ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED
SUPPRESSED = action_pb2.ACTION_STATE_SUPPRESSED
DELIVERED = action_pb2.ACTION_STATE_DELIVERED
FAILED = action_pb2.ACTION_STATE_FAILED


async def test_actions_on_every_master_are_delivered_once_with_caps_and_statuses(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The dispatch partitions are spread over every master: the worker must read them all.
    homes = {redis_cluster.master_of_key(DispatchKeys(p).queue).port for p in range(PARTITIONS)}
    assert homes == {master.port for master in redis_cluster.masters()}
    visitors = [f"visitor-{i}" for i in range(200)]
    keys = [f"every-master-{v}" for v in visitors]
    actions = [track_action(k, visitor=v) for k, v in zip(keys, visitors, strict=True)]
    # Two actions of one visitor in one cooldown group: the higher priority fires.
    actions += [
        track_action("promo-low", visitor="visitor-0", event="promo", cap=cooldown("promo", 1)),
        track_action("promo-high", visitor="visitor-0", event="promo", cap=cooldown("promo", 5)),
    ]
    async with (
        running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox,
        dispatch_on_cluster(redis_cluster, sandbox, tmp_path, monkeypatch) as dispatch,
        client_of(dispatch) as client,
    ):
        outcomes = await client.submit_actions(actions)
        assert [o.state for o in outcomes] == [ACCEPTED] * len(keys) + [SUPPRESSED, ACCEPTED]
        assert "lower priority than promo-high" in outcomes[-2].reason

        await await_states(client, [*keys, "promo-high"])
        # Submitted again (a forwarder retrying): known keys, nothing new is sent.
        again = await client.submit_actions(actions)
        assert all(o.duplicate for o in again)
        assert [o.state for o in again] == [o.state for o in outcomes]
        suppressed = await client.get_action("promo-low")
        assert (suppressed.state, suppressed.visitor_id) == (SUPPRESSED, "visitor-0")
        assert await client.failed_actions() == []
    assert events_delivered(sandbox) == {v: 1 for v in visitors}
    assert events_delivered(sandbox, "promo") == {"visitor-0": 1}
    # Every queue entry was acknowledged and deleted, on every master.
    for partition in range(PARTITIONS):
        assert await redis_cluster_client.xlen(DispatchKeys(partition).queue) == 0


async def test_dead_letters_of_every_master_are_listed_and_requeued(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    visitors = [f"visitor-{i}" for i in range(48)]
    keys = [f"doomed-{v}" for v in visitors]
    async with (
        running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox,
        dispatch_on_cluster(
            redis_cluster, sandbox, tmp_path, monkeypatch, connector={"max_attempts": 1}
        ) as dispatch,
        client_of(dispatch) as client,
    ):
        sandbox.faults.set(down=True)
        await client.submit_actions(
            [track_action(k, visitor=v) for k, v in zip(keys, visitors, strict=True)]
        )
        await await_states(client, keys, FAILED)

        failed = await client.failed_actions(CONNECTOR)
        assert sorted(s.idempotency_key for s in failed) == sorted(keys)
        assert all("gave up after 1 attempts" in s.reason for s in failed)
        sandbox.faults.set(down=False)
        response = await client.retry_failed_actions(all_failed=True)
        assert response.requeued == len(keys)

        await await_states(client, keys, DELIVERED)
        assert await client.failed_actions() == []
    assert events_delivered(sandbox) == {v: 1 for v in visitors}


async def test_two_replicas_share_the_queues_of_every_master(
    redis_cluster: RedisClusterHarness,
    redis_cluster_client: redis.asyncio.cluster.RedisCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each replica holds at most 16 actions at a time, and Braze answers slowly: while one
    # waits for its answers, only the other can take new entries.
    worker = WorkerSettings(block_ms=50, read_count=16, max_buffered=16, promote_interval_s=0.05)
    exporters = {name: InMemorySpanExporter() for name in ("replica-a", "replica-b")}
    visitors = [f"visitor-{i}" for i in range(160)]
    keys = [f"shared-{v}" for v in visitors]
    async with running_sandbox(api_keys={API_KEY: ALL_PERMISSIONS}) as sandbox:
        sandbox.faults.set(latency_ms=300)
        async with contextlib.AsyncExitStack() as stack:
            replicas = [
                await stack.enter_async_context(
                    dispatch_on_cluster(
                        redis_cluster,
                        sandbox,
                        tmp_path / name,
                        monkeypatch,
                        worker=worker,
                        consumer_name=name,
                        tracer_provider=_provider(exporter),
                    )
                )
                for name, exporter in exporters.items()
            ]
            client = await stack.enter_async_context(client_of(replicas[0]))
            await client.submit_actions(
                [track_action(k, visitor=v) for k, v in zip(keys, visitors, strict=True)]
            )
            await await_states(client, keys)
    # Every replica reads every partition, on every master, as one consumer of the group.
    for partition in range(PARTITIONS):
        consumers = await redis_cluster_client.xinfo_consumers(DispatchKeys(partition).queue, GROUP)
        assert {c["name"].decode() for c in consumers} == set(exporters)
    sent = {name: _actions_sent(exporter) for name, exporter in exporters.items()}
    assert all(count > 0 for count in sent.values()), sent
    assert sum(sent.values()) == len(keys)
    assert events_delivered(sandbox) == {v: 1 for v in visitors}


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _actions_sent(exporter: InMemorySpanExporter) -> int:
    """Actions of the Braze requests a replica sent."""
    total = 0
    for span in exporter.get_finished_spans():
        if span.name == "braze POST /users/track" and span.attributes is not None:
            actions = span.attributes.get("braze.batch.actions", 0)
            assert isinstance(actions, int)
            total += actions
    return total
