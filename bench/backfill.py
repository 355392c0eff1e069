"""Audience backfill benchmark: profiles/s re-evaluated by one backfill worker, unthrottled.

``visitors`` profiles are stored (one purchase each, through the store's batch commit),
then a version adding an audience is published and one `BackfillWorker` (one replica,
default 256 partitions, rate limit lifted) runs until the job is done. The figure is
profiles scanned per second of that run, commits of the joins included.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

from bench.report import fmt_int, section, table
from demo.stack import Stack, start_redis
from profile_service.definitions.checked import validate_remembered
from profile_service.definitions.compiler import compile_definitions, digest
from profile_service.engine.state import NormalizedEvent
from profile_service.storage import DefinitionsStore, EngineFunctions, Layout, ProfileStore
from profile_service.storage.backfill import BackfillWorker, read_backfill_progress
from tests.backfill.helpers import amount_of, base_definitions, with_audience


@dataclass(frozen=True)
class BackfillResult:
    """What one backfill run measured."""

    profiles: int
    joins: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.profiles / self.seconds if self.seconds else 0.0


async def _run(redis_url: str, visitors: int) -> BackfillResult:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        layout = Layout()
        store = ProfileStore(client, layout, EngineFunctions.real())
        await store.prepare()
        await layout.check_partitions(client)
        definitions = DefinitionsStore(client, validate=validate_remembered, digest=digest)
        base_doc = base_definitions()
        base = compile_definitions(base_doc, (await definitions.publish(base_doc)).version.version)
        for start in range(0, visitors, 500):
            events = [
                NormalizedEvent(f"p{n}", f"e{n}", "purchase", 1_000, {"amount": amount_of(n)})
                for n in range(start, min(visitors, start + 500))
            ]
            await store.apply_events(base, events)
        doc = with_audience()
        defs = compile_definitions(doc, (await definitions.publish(doc)).version.version)
        worker = BackfillWorker(client, store, definitions, lambda: defs, profiles_per_second=1e9)
        started = time.perf_counter()
        while (await read_backfill_progress(client, layout.partitions)).state != "done":
            await worker.step()
        seconds = time.perf_counter() - started
        progress = await read_backfill_progress(client, layout.partitions)
        return BackfillResult(progress.scanned, progress.joins, seconds)
    finally:
        await client.aclose()


def run(visitors: int, run_dir: Path) -> BackfillResult:
    """Run the benchmark on a fresh Redis."""
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        return asyncio.run(_run(redis_url, visitors))


def report_backfill(result: BackfillResult) -> None:
    """Print the figures (no target: a rate to size ``backfill_profiles_per_second`` by)."""
    section("Backfill")
    table(
        [
            ("profiles backfilled", fmt_int(result.profiles)),
            ("joins committed", fmt_int(result.joins)),
            ("profiles/s (one replica, unthrottled)", fmt_int(result.rate)),
        ]
    )
