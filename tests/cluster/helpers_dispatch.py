"""Helpers of the dispatch cluster tests: the dispatch service started as production starts
it (``create_server``, connectors from a file, ``CROWD_DISPATCH_REDIS_CLUSTER=true`` and one
seed node URL), the Braze sandbox over HTTP, and probes of the queues on every master."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue.queues import GROUP
from dispatch_service.server import create_server
from dispatch_service.settings import DispatchSettings
from dispatch_service.worker import WorkerSettings
from service_common.keys import DispatchKeys, partition_of
from service_common.server import ManagedServer
from tests.cluster.helpers import RetryingRounds
from tests.dispatch.helpers import API_KEY, CONNECTOR, track_action
from tests.harness import RedisClusterHarness, eventually
from tests.profile_api.helpers import DISPATCH_KEY

PARTITIONS = 16
DELIVERED = action_pb2.ACTION_STATE_DELIVERED

FAST_WORKER = WorkerSettings(block_ms=50, promote_interval_s=0.05, claim_idle_ms=3000)
"""Short waits, so that a test's actions move without dead time."""


def connectors_file(directory: Path, url: str, **overrides: Any) -> Path:
    """The test connector at ``url`` (key by reference, as production configures it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / "braze.key"
    key_file.write_text(API_KEY, encoding="utf-8")
    path = directory / "connectors.json"
    connector = {"id": CONNECTOR, "url": url, "api_key_file": str(key_file), "linger_ms": 50}
    connector.update(overrides)
    path.write_text(json.dumps({"connectors": [connector]}), encoding="utf-8")
    return path


@asynccontextmanager
async def dispatch_on_cluster(
    cluster: RedisClusterHarness,
    sandbox: BrazeSandbox,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    worker: WorkerSettings = FAST_WORKER,
    consumer_name: str = "",
    connector: dict[str, Any] | None = None,
    tracer_provider: TracerProvider | None = None,
    **overrides: Any,
) -> AsyncIterator[ManagedServer]:
    """A started dispatch service on ``cluster`` (its documented settings: the cluster flag in
    the environment and one seed node's URL), stopped on exit.

    Args:
        connector: Settings of the test connector over the defaults (e.g. ``max_attempts``).
        tracer_provider: Where the service's spans go (default: its own provider).
        overrides: Further `DispatchSettings`.
    """
    monkeypatch.setenv(DispatchSettings.env_name("redis_cluster"), "true")
    settings = DispatchSettings.load(
        port=0,
        redis_url=cluster.url,
        partitions=PARTITIONS,
        connectors_file=connectors_file(directory, sandbox.url, **(connector or {})),
        api_keys={DISPATCH_KEY: ["dispatch", "read", "admin"]},
        shutdown_grace_seconds=2,
        consumer_name=consumer_name,
        **overrides,
    )
    assert settings.redis_cluster
    managed = await create_server(settings, worker_settings=worker, tracer_provider=tracer_provider)
    await managed.start()
    try:
        yield managed
    finally:
        await managed.stop(2)


def client_of(managed: ManagedServer) -> CrowdClient:
    """A crowd client of the dispatch service (caller enters it with ``async with``)."""
    return CrowdClient("", managed.address, api_key=DISPATCH_KEY)


async def states(client: CrowdClient, keys: Sequence[str]) -> list[int]:
    """The state of each action, through GetAction (up to 32 calls side by side)."""
    found: list[int] = []
    for start in range(0, len(keys), 32):
        chunk = keys[start : start + 32]
        found += [s.state for s in await asyncio.gather(*map(client.get_action, chunk))]
    return found


async def await_states(
    client: CrowdClient, keys: Sequence[str], state: int = DELIVERED, within: float = 30.0
) -> None:
    """Wait until every action has reached ``state``."""
    await eventually(
        lambda: states(client, keys),
        lambda found: all(s == state for s in found),
        within=within,
        what=f"{len(keys)} actions to reach state {state}",
    )


def events_delivered(sandbox: BrazeSandbox, name: str = "fired") -> Counter[str]:
    """How many times Braze accepted each user's event ``name`` (a duplicate counts twice)."""
    seen: Counter[str] = Counter()
    for request in sandbox.requests:
        accepted = 200 <= request.status < 300
        if request.path != "/users/track" or not accepted or not isinstance(request.body, dict):
            continue
        for event in request.body.get("events", []):
            if event.get("name") == name:
                seen[str(event.get("external_id"))] += 1
    return seen


async def pending_entries(redis: aioredis.RedisCluster, partitions: Sequence[int]) -> int:
    """Queue entries taken by a worker and not yet recorded, over ``partitions``."""
    total = 0
    for partition in partitions:
        summary = await redis.xpending(DispatchKeys(partition).queue, GROUP)
        total += int(summary["pending"])
    return total


def partition_queue(visitor_id: str) -> str:
    """The queue stream of a visitor's actions."""
    return DispatchKeys(partition_of(visitor_id, PARTITIONS)).queue


class SlotMigration:
    """One slot moved by hand, step by step as ``redis-cli --cluster reshard`` moves it, so
    that a test can hold it half-way: some of its keys on the target, the rest still on the
    source (the state in which Redis answers a script over both ``TRYAGAIN``).

    Blocking (plain clients to the nodes): call it through ``asyncio.to_thread``.
    """

    def __init__(self, cluster: RedisClusterHarness, key: str) -> None:
        self.cluster = cluster
        self.source = cluster.master_of_key(key)
        self.target = next(m for m in cluster.masters() if m.port != self.source.port)
        with self.source.client() as client:
            self.slot = int(client.execute_command("CLUSTER KEYSLOT", key))

    def begin(self, first_keys: Sequence[str]) -> None:
        """Mark the slot importing/migrating and move ``first_keys`` only."""
        source_id = self.cluster.node_id(self.source)
        target_id = self.cluster.node_id(self.target)
        with self.target.client() as target:
            target.execute_command("CLUSTER SETSLOT", self.slot, "IMPORTING", source_id)
        with self.source.client() as source:
            source.execute_command("CLUSTER SETSLOT", self.slot, "MIGRATING", target_id)
            self._migrate(source, list(first_keys))

    def finish(self) -> None:
        """Move the remaining keys and give the slot to the target on every master."""
        with self.source.client() as source:
            while keys := source.execute_command("CLUSTER GETKEYSINSLOT", self.slot, 100):
                self._migrate(source, [k.decode() if isinstance(k, bytes) else k for k in keys])
        target_id = self.cluster.node_id(self.target)
        for master in (self.target, self.source, *self.cluster.masters()):
            with master.client() as client:
                client.execute_command("CLUSTER SETSLOT", self.slot, "NODE", target_id)
        self.cluster.await_stable()

    def _migrate(self, source: Any, keys: list[str]) -> None:
        if keys:
            source.execute_command(
                "MIGRATE", self.target.host, self.target.port, "", 0, 5000, "KEYS", *keys
            )


def refusals(cluster: RedisClusterHarness, error: str = "TRYAGAIN") -> int:
    """How many commands the masters refused with ``error`` so far (INFO errorstats)."""
    total = 0
    for master in cluster.masters():
        with master.client() as client:
            stats = client.info("errorstats")
        total += int(stats.get(f"errorstat_{error}", {}).get("count", 0))
    return total


class RetryingSubmit(RetryingRounds):
    """Rounds of SubmitActions: one Track User action per visitor, key ``<visitor>:<round>``."""

    def keys(self, number: int) -> list[str]:
        """The idempotency keys of round ``number``."""
        return [f"{v}:{number}" for v in self.visitors]

    def acknowledged_keys(self) -> list[str]:
        """The keys of every acknowledged round."""
        return [k for n in range(self.acknowledged_rounds) for k in self.keys(n)]

    async def attempt_round(self, number: int) -> None:
        keys = self.keys(number)
        actions = [track_action(k, visitor=v) for k, v in zip(keys, self.visitors, strict=True)]
        outcomes = await self.client.submit_actions(actions)
        assert all(o.state == action_pb2.ACTION_STATE_ACCEPTED for o in outcomes), outcomes
