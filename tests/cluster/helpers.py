"""Helpers of the profile cluster tests (tests/cluster/test_cluster_profile_*.py): settings that
point a profile server at the cluster fixture, which master serves a visitor, and an ingest
client that retries through failovers and resharding."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from crowd.client import CrowdClient, make_event
from dispatch_service.worker import WorkerSettings
from service_common.keys import DEFAULT_PARTITIONS, partition_keys_for
from service_common.server import ManagedServer
from tests.harness import RedisClusterHarness, RedisServer
from tests.profile_api.servers import Servers, Tracing


def cluster_settings(cluster: RedisClusterHarness, **overrides: Any) -> dict[str, Any]:
    """Settings overrides (either service) for ``cluster``: the documented ``redis_cluster`` switch,
    one seed in ``redis_url`` and every node in ``redis_cluster_nodes``."""
    values: dict[str, Any] = {
        "redis_url": cluster.url,
        "redis_cluster": True,
        "redis_cluster_nodes": ",".join(cluster.nodes),
    }
    values.update(overrides)
    return values


def profile_master(
    cluster: RedisClusterHarness, visitor_id: str, partitions: int = DEFAULT_PARTITIONS
) -> RedisServer:
    """The master serving the profile of ``visitor_id`` now."""
    return cluster.master_of_key(partition_keys_for(visitor_id, partitions).profile(visitor_id))


def visitors_on_every_master(
    cluster: RedisClusterHarness, count: int, prefix: str = "v", per_master: int = 1
) -> list[str]:
    """``count`` visitor ids (at least ``per_master`` served by each master)."""
    visitors = [f"{prefix}-{i}" for i in range(count)]
    served: dict[int, int] = {}
    for visitor in visitors:
        port = profile_master(cluster, visitor).port
        served[port] = served.get(port, 0) + 1
    masters = {m.port for m in cluster.masters()}
    assert set(served) == masters and min(served.values()) >= per_master, served
    return visitors


class ClusterProfileServers(Servers):
    """`Servers` whose profile servers run on ``cluster`` (dispatch servers keep the
    ``redis_url`` they are given, e.g. a single Redis)."""

    def __init__(self, cluster: RedisClusterHarness, tracing: Tracing) -> None:
        super().__init__(cluster.url, tracing)
        self.cluster = cluster

    async def profile(self, **overrides: Any) -> ManagedServer:
        return await super().profile(**cluster_settings(self.cluster, **overrides))


class ClusterServers(ClusterProfileServers):
    """`Servers` whose profile *and* dispatch servers run on ``cluster``, as in production:
    the dispatch service's visitor-trace notes land beside the profiles they belong to."""

    async def dispatch(
        self, connectors_file: Path, worker_settings: WorkerSettings | None = None, **overrides: Any
    ) -> ManagedServer:
        return await super().dispatch(
            connectors_file, worker_settings, **cluster_settings(self.cluster, **overrides)
        )


#: Codes a client retries while the cluster fails over or moves slots.
RETRIED_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


class RetryingRounds:
    """Sends rounds of requests, in order, each retried until acknowledged, as a client riding
    out a failover or a slot move would; counts what it saw. Subclasses say what a round is
    (`attempt_round`); the retries of a round carry the same ids (event ids, idempotency
    keys), so whatever a failed attempt applied is a duplicate."""

    def __init__(self, client: CrowdClient, visitors: Sequence[str], give_up_s: float = 90.0):
        self.client = client
        self.visitors = list(visitors)
        self.give_up_s = give_up_s
        self.acknowledged_rounds = 0
        self.failed_attempts: Counter[grpc.StatusCode] = Counter()
        self._progress = asyncio.Condition()

    async def attempt_round(self, number: int) -> None:
        """Send round ``number`` once (raises what the call raised)."""
        raise NotImplementedError

    async def send_round(self, number: int) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(self._retried),
            wait=wait_random_exponential(multiplier=0.05, max=0.5),
            stop=stop_after_delay(self.give_up_s),
            reraise=True,
        ):
            with attempt:
                await self.attempt_round(number)
        async with self._progress:
            self.acknowledged_rounds += 1
            self._progress.notify_all()

    async def run(self, stop: asyncio.Event) -> None:
        """Send rounds, in order, until ``stop`` is set (the round in flight finishes)."""
        while not stop.is_set():
            await self.send_round(self.acknowledged_rounds)

    async def reached(self, rounds: int) -> None:
        """Return once ``rounds`` rounds were acknowledged."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.acknowledged_rounds >= rounds)

    def _retried(self, error: BaseException) -> bool:
        if isinstance(error, grpc.aio.AioRpcError) and error.code() in RETRIED_CODES:
            self.failed_attempts[error.code()] += 1
            return True
        return False


class RetryingIngest(RetryingRounds):
    """Rounds of TrackEvents: one page view per visitor, event id ``<visitor>:<round>``."""

    async def attempt_round(self, number: int) -> None:
        await self.client.track_events(
            [make_event(v, "page_view", event_id=f"{v}:{number}") for v in self.visitors]
        )


async def counters(client: CrowdClient, visitors: Sequence[str]) -> dict[str, float]:
    """The ``counter`` attribute of each visitor's profile (counter definitions)."""
    profiles = await asyncio.gather(*(client.get_profile(v) for v in visitors))
    return {
        v: p.attributes["counter"].number_value for v, p in zip(visitors, profiles, strict=True)
    }
