"""Ingest benchmark: TrackEvents against the real profile service and a do-nothing server.

Processes (all on this machine): a fresh redis-server (AOF on, everysec, as in production),
the profile service (``python -m profile_service``, background workers on, **no dispatch
target**: fired actions stay in the Redis outbox, so the figures are the profile service's
alone) and the do-nothing server (``python -m bench.noop_server``). The same serialized
batches go to both with the same clients (`bench.load`).

Figures:

* events/s and p50/p99 batch latency for both servers, and their ratio;
* Redis commands per event: the sum of ``calls`` over ``INFO commandstats`` before and
  after the real pass, divided by the events. Commands run inside Lua scripts are counted
  by Redis too, so this is the work Redis does, not what crosses the network;
* the identity mix (`bench.workload.IDENTITY_MIX`: 20% of visitors identified on every event,
  2% second devices that stitch into them) through the same service right after the plain
  pass, and its CPU per event next to the plain pass's (the cost of identity resolution and
  stitching);
* Redis round trips per batch: a pipeline is one round trip however many commands it
  holds, which Redis cannot tell apart, so a separate pass runs the profile service
  **in this process** (``create_server``, same settings, background workers off so that
  only batches talk to Redis) and reads ``ProfileStore.stats`` (``round_trips`` counts
  every pipeline or single command sent; ``batches`` every ``apply_events``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio
from opentelemetry.sdk.trace import TracerProvider

from bench.definitions import bench_definitions
from bench.load import LoadResult, drive, percentile, summarize
from bench.procs import cpu_seconds, quiet_env
from bench.report import Check, fmt_int, fmt_ms, note, section, table
from bench.workload import IDENTITY_MIX, Batches, build_batches
from crowd.client import CrowdClient
from demo.stack import PYTHON, Stack, free_port, start_redis, wait_serving
from profile_service.server import create_server
from profile_service.settings import ProfileSettings
from profile_service.storage import ProfileStore

TARGET_RATIO = 0.25
TARGET_ROUND_TRIPS = 3.0


@dataclass(frozen=True)
class IngestConfig:
    """Sizes of the ingest benchmark."""

    visitors: int = 10_000
    events_per_visitor: int = 5
    batch_size: int = 500
    clients: int = 4
    round_trip_batches: int = 20
    """Batches of the in-process round-trip pass."""


@dataclass
class IngestResult:
    """Everything the ingest benchmark measured."""

    real: LoadResult
    noop: LoadResult
    commands: dict[str, int]
    """Per Redis command, calls during the real pass."""
    round_trips: int
    round_trip_batches: int
    conflicts: int
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds per process during the real pass."""
    identity: LoadResult | None = None
    """The identity-mix pass on the real service."""
    identity_cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds per process during the identity-mix pass."""

    @property
    def ratio(self) -> float:
        """Real events/s over the do-nothing server's."""
        return self.real.events_per_s / self.noop.events_per_s if self.noop.events_per_s else 0.0

    @property
    def commands_per_event(self) -> float:
        """Redis commands (script-internal ones included) per event."""
        return sum(self.commands.values()) / self.real.events if self.real.events else 0.0

    @property
    def round_trips_per_batch(self) -> float:
        """Redis round trips per TrackEvents batch (in-process pass)."""
        return self.round_trips / self.round_trip_batches if self.round_trip_batches else 0.0


async def _commandstats(client: redis.asyncio.Redis) -> dict[str, int]:
    info: dict[str, Any] = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in info.items()
        if isinstance(stats, dict)
    }


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    found = {name: calls - before.get(name, 0) for name, calls in after.items()}
    found.pop("info", None)  # our own INFO calls
    return {name: calls for name, calls in found.items() if calls > 0}


async def publish_bench_definitions(target: str, api_key: str) -> str:
    async with CrowdClient(target, api_key=api_key) as crowd:
        definitions = bench_definitions()
        check = await crowd.validate_definitions(definitions)
        if not check.valid:
            problems = "; ".join(f"{e.path}: {e.message}" for e in check.errors)
            raise RuntimeError(f"the benchmark definitions are invalid: {problems}")
        version = await crowd.publish_definitions(definitions)
        return version.version


def _settings(redis_url: str, api_key: str) -> ProfileSettings:
    return ProfileSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": 0,
            "redis_url": redis_url,
            "api_keys": {api_key: ["ingest", "read", "admin"]},
            "dispatch_target": "",
            "background_workers": False,
        }
    )


def _the_store() -> ProfileStore:
    """The ProfileStore of the in-process server (``create_server`` does not expose it)."""
    stores = [o for o in gc.get_objects() if isinstance(o, ProfileStore)]
    if len(stores) != 1:
        raise RuntimeError(f"expected one ProfileStore in this process, found {len(stores)}")
    return stores[0]


async def _round_trip_pass(
    redis_url: str, api_key: str, batches: Batches, clients: int
) -> tuple[int, int, int]:
    """Run the batches through an in-process profile service; (round trips, batches,
    compare-and-set conflicts)."""
    managed = await create_server(_settings(redis_url, api_key), tracer_provider=TracerProvider())
    await managed.start()
    try:
        store = _the_store()
        before = (store.stats.round_trips, store.stats.batches, store.stats.conflicts)
        await drive(managed.address, api_key, batches, clients=clients, check_results=True)
        return (
            store.stats.round_trips - before[0],
            store.stats.batches - before[1],
            store.stats.conflicts - before[2],
        )
    finally:
        await managed.stop(1.0)


async def _measured_pass(
    target: str,
    api_key: str,
    batches: Batches,
    clients: int,
    redis_url: str,
    pids: dict[str, int],
) -> tuple[LoadResult, dict[str, float], dict[str, int]]:
    """Drive ``batches`` at ``target``; (result, CPU seconds per process of ``pids``, Redis
    commands by name) over the pass."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        before = await _commandstats(client)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        result = await drive(
            target, api_key, batches, clients=clients, check_results=True, keep_answers=True
        )
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        commands = _delta(before, await _commandstats(client))
    finally:
        await client.aclose()
    return result, cpu, commands


async def run_ingest(config: IngestConfig, run_dir: Path) -> IngestResult:
    """Start the processes, run both passes and the round-trip pass, stop everything."""
    section(
        f"Ingest: {config.visitors:,} visitors x {config.events_per_visitor} events, "
        f"TrackEvents batches of {config.batch_size}, {config.clients} concurrent clients"
    )
    api_key = secrets.token_urlsafe(24)
    keys_json = json.dumps({api_key: ["ingest", "read", "admin"]})
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        redis_pid = next(p.popen.pid for p in stack.processes if p.name == "redis")
        real_port, noop_port = free_port(), free_port()
        common = {
            **quiet_env("CROWD_PROFILE_"),
            "CROWD_PROFILE_REDIS_URL": redis_url,
            "CROWD_PROFILE_API_KEYS": keys_json,
            "CROWD_PROFILE_DISPATCH_TARGET": "",
            # One process each: the CPU figures below are per process (bench.scaling runs
            # several workers).
            "CROWD_PROFILE_WORKERS": "1",
        }
        real = stack.start(
            "profile",
            [PYTHON, "-m", "profile_service"],
            {**common, "CROWD_PROFILE_PORT": str(real_port)},
        )
        noop = stack.start(
            "noop-profile",
            [PYTHON, "-m", "bench.noop_server"],
            {**common, "CROWD_PROFILE_PORT": str(noop_port)},
        )
        real_target, noop_target = f"127.0.0.1:{real_port}", f"127.0.0.1:{noop_port}"
        await wait_serving(real, real_target)
        await wait_serving(noop, noop_target)
        version = await publish_bench_definitions(real_target, api_key)
        note(f"definitions published as {version}; profile service has no dispatch target")

        batches = build_batches(
            prefix="v",
            visitors=config.visitors,
            events_per_visitor=config.events_per_visitor,
            batch_size=config.batch_size,
        )
        warmup = build_batches(
            prefix="warm",
            visitors=2 * config.batch_size,
            events_per_visitor=2,
            batch_size=config.batch_size,
        )
        note(f"{batches.events:,} events in {len(batches.payloads)} batches built")
        for target, check in ((noop_target, False), (real_target, True)):
            await drive(target, api_key, warmup, clients=config.clients, check_results=check)

        note("do-nothing server pass")
        noop_result = await drive(
            noop_target, api_key, batches, clients=config.clients, check_results=False
        )
        note(f"  {noop_result.events_per_s:,.0f} events/s")

        note("profile service pass")
        pids = {"profile service": real.popen.pid, "redis-server": redis_pid}
        real_result, cpu, commands = await _measured_pass(
            real_target, api_key, batches, config.clients, redis_url, pids
        )
        note(f"  {real_result.events_per_s:,.0f} events/s")
        real.check_alive()

        note("identity-mix pass (20% identified, 2% second devices that stitch)")
        identity_batches = build_batches(
            prefix="id",
            visitors=config.visitors,
            events_per_visitor=config.events_per_visitor,
            batch_size=config.batch_size,
            identity=IDENTITY_MIX,
        )
        identity_result, identity_cpu, _ = await _measured_pass(
            real_target, api_key, identity_batches, config.clients, redis_url, pids
        )
        note(f"  {identity_result.events_per_s:,.0f} events/s")
        real.check_alive()

        note("round-trip pass (profile service in this process)")
        probe = build_batches(
            prefix="rt",
            visitors=config.batch_size * max(1, config.round_trip_batches // 2),
            events_per_visitor=2,
            batch_size=config.batch_size,
        )
        round_trips, rt_batches, conflicts = await _round_trip_pass(
            redis_url, api_key, probe, config.clients
        )
    return IngestResult(
        real=real_result,
        noop=noop_result,
        commands=commands,
        round_trips=round_trips,
        round_trip_batches=rt_batches,
        conflicts=conflicts,
        cpu_s=cpu,
        identity=identity_result,
        identity_cpu_s=identity_cpu,
    )


def report_ingest(result: IngestResult) -> list[Check]:
    """Print the ingest figures; return its target checks."""
    real, noop = result.real, result.noop
    rows = [
        ("events", fmt_int(real.events)),
        ("profile service events/s", f"{real.events_per_s:,.0f}"),
        ("do-nothing server events/s", f"{noop.events_per_s:,.0f}"),
        ("ratio (real / do-nothing)", f"{result.ratio:.1%}"),
        (
            "batch latency p50 / p99 (real)",
            f"{fmt_ms(percentile(real.latencies_s, 0.5))} / "
            f"{fmt_ms(percentile(real.latencies_s, 0.99))}",
        ),
        (
            "batch latency p50 / p99 (do-nothing)",
            f"{fmt_ms(percentile(noop.latencies_s, 0.5))} / "
            f"{fmt_ms(percentile(noop.latencies_s, 0.99))}",
        ),
        ("Redis commands per event (commandstats)", f"{result.commands_per_event:.2f}"),
        (
            "Redis round trips per batch",
            f"{result.round_trips_per_batch:.2f} "
            f"({result.round_trips} in {result.round_trip_batches} batches, "
            f"{result.conflicts} CAS conflicts)",
        ),
    ]
    for process, seconds in result.cpu_s.items():
        rows.append(
            (
                f"CPU of {process} (real pass)",
                f"{seconds:.1f} s = {seconds / real.seconds:.0%} of wall, "
                f"{seconds / real.events * 1e6:,.0f} µs per event",
            )
        )
    table(rows, title="Ingest figures")
    table(
        [(what, fmt_int(count)) for what, count in summarize(real.answers).items()],
        title="What the events did (from the real service's responses)",
    )
    if result.identity is not None:
        _report_identity(result, result.identity)
    top = sorted(result.commands.items(), key=lambda item: -item[1])[:10]
    table(
        [(name, f"{calls / real.events:.2f} per event") for name, calls in top],
        title="Redis commands by name (top 10)",
    )
    return [
        Check(
            "ingest: events/s vs do-nothing server",
            f"{result.ratio:.1%}",
            f">= {TARGET_RATIO:.0%}",
            result.ratio >= TARGET_RATIO,
        ),
        Check(
            "ingest: Redis round trips per batch",
            f"{result.round_trips_per_batch:.2f}",
            f"<= {TARGET_ROUND_TRIPS:.0f}",
            0 < result.round_trips_per_batch <= TARGET_ROUND_TRIPS,
        ),
    ]


def _report_identity(result: IngestResult, identity: LoadResult) -> None:
    plain_us = result.cpu_s.get("profile service", 0.0) / max(1, result.real.events) * 1e6
    identity_us = result.identity_cpu_s.get("profile service", 0.0) / max(1, identity.events) * 1e6
    redis_plain = result.cpu_s.get("redis-server", 0.0) / max(1, result.real.events) * 1e6
    redis_identity = result.identity_cpu_s.get("redis-server", 0.0) / max(1, identity.events) * 1e6
    done = summarize(identity.answers)
    table(
        [
            ("events", fmt_int(identity.events)),
            (
                "events/s (identity mix / plain)",
                f"{identity.events_per_s:,.0f} / {result.real.events_per_s:,.0f}",
            ),
            (
                "profile service CPU per event (identity / plain)",
                f"{identity_us:,.0f} µs / {plain_us:,.0f} µs = "
                f"{identity_us / plain_us if plain_us else 0:.2f}x",
            ),
            (
                "redis-server CPU per event (identity / plain)",
                f"{redis_identity:,.0f} µs / {redis_plain:,.0f} µs",
            ),
            ("stitches (profiles merged)", fmt_int(done["profiles stitched"])),
        ],
        title="Identity mix: 20% identified, 2% second devices (same run, same service)",
    )


def run(config: IngestConfig, run_dir: Path) -> IngestResult:
    """Synchronous entry point."""
    return asyncio.run(run_ingest(config, run_dir))
