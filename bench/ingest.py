"""Ingest benchmark: the real profile service against its design floor, in the same run.

Processes (all on this machine): a fresh redis-server (AOF on, everysec, as in production),
the profile service (``python -m profile_service``, background workers on, **no dispatch
target**: fired actions stay in the Redis outbox, so the figures are the profile service's
alone) and the lean baseline server (``python -m bench.lean_server``: the same gRPC stack and
interceptors, one read pipeline and one compare-and-set per profile, see its docstring),
both on that one Redis. The same serialized batches go to both with the same clients
(`bench.load`), lean first, then real, for each workload:

* **plain**: the shop workload (`bench.workload`) of new visitors;
* **identity mix** (`bench.workload.IDENTITY_MIX`: 20% of visitors identified on every
  event, 2% second devices that stitch into them).

Per pass: CPU seconds of the server process and of redis-server (``/proc``), Redis commands
(``INFO commandstats``: commands run inside Lua scripts are counted too, so this is the work
Redis does, not what crosses the network) and Redis memory (``INFO memory``
``used_memory`` before and after, divided by the visitors the pass created). The targets
are ratios of the two servers over both workloads, measured in the same run, so they hold
on a busy machine too.

Then **GetProfile at 300 requests/s** (`bench.profile_reads`, open loop) for the visitors
of the plain pass, against each server: CPU per request and the latency p99.

Last, Redis round trips per batch: a pipeline is one round trip however many commands it
holds, which Redis cannot tell apart, so a separate pass runs the profile service **in this
process** (``create_server``, same settings, background workers off so that only batches
talk to Redis) and reads ``ProfileStore.stats`` (``round_trips`` counts every pipeline or
single command sent; ``batches`` every ``apply_events``).
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

from bench.definitions import bench_definitions, bench_document
from bench.load import LoadResult, drive, percentile, summarize
from bench.procs import cpu_seconds, quiet_env
from bench.profile_reads import ReadResult, paced_reads, read_requests
from bench.report import Check, fmt_int, fmt_ms, note, section, table
from bench.workload import IDENTITY_MIX, Batches, build_batches
from crowd.client import CrowdClient
from demo.stack import PYTHON, Stack, free_port, start_redis, wait_serving
from profile_service.server import create_server
from profile_service.settings import ProfileSettings
from profile_service.storage import Layout, ProfileStore
from service_common.keys import DEFAULT_PARTITIONS

TARGET_SERVICE_CPU_RATIO = 2.0
TARGET_REDIS_CPU_RATIO = 1.5
TARGET_MEMORY_PER_VISITOR_B = 2_500
TARGET_READ_CPU_RATIO = 1.3
TARGET_READ_P99_RATIO = 2.0
TARGET_ROUND_TRIPS = 3.0
READ_RATE = 300.0
"""GetProfile requests per second of the read passes (the issue's load)."""

SERVICE = "service"
REDIS = "redis-server"


@dataclass(frozen=True)
class IngestConfig:
    """Sizes of the ingest benchmark."""

    visitors: int = 10_000
    events_per_visitor: int = 5
    batch_size: int = 500
    clients: int = 4
    round_trip_batches: int = 20
    """Batches of the in-process round-trip pass."""
    read_seconds: float = 10.0
    """Length of each GetProfile pass at `READ_RATE`."""


@dataclass
class Pass:
    """One server's pass over one workload."""

    load: LoadResult
    cpu_s: dict[str, float]
    """CPU seconds per process (`SERVICE`, `REDIS`) during the pass."""
    commands: dict[str, int]
    """Redis commands by name during the pass."""
    memory_bytes: int
    """Growth of Redis ``used_memory`` over the pass."""
    visitors: int
    outbox_bytes: int = 0
    """Growth of the partitions' outbox streams over the pass (fired actions waiting for a
    dispatch target; in production the forwarder drains them within milliseconds)."""

    def cpu_per_event_us(self, process: str) -> float:
        """CPU µs of ``process`` per event."""
        return self.cpu_s.get(process, 0.0) / max(1, self.load.events) * 1e6

    @property
    def commands_per_event(self) -> float:
        """Redis commands (script-internal ones included) per event."""
        return sum(self.commands.values()) / max(1, self.load.events)

    @property
    def memory_per_visitor(self) -> float:
        """Bytes of Redis memory per visitor the pass created."""
        return self.memory_bytes / max(1, self.visitors)

    @property
    def state_per_visitor(self) -> float:
        """`memory_per_visitor` without the undrained outbox: what a visitor keeps."""
        return (self.memory_bytes - self.outbox_bytes) / max(1, self.visitors)


@dataclass
class ReadPass:
    """One server's paced GetProfile pass."""

    reads: ReadResult
    cpu_s: float

    @property
    def cpu_per_request_us(self) -> float:
        """Server CPU µs per request."""
        return self.cpu_s / max(1, self.reads.requests) * 1e6

    @property
    def p99_s(self) -> float:
        """Latency p99."""
        return percentile(self.reads.latencies_s, 0.99)


@dataclass
class IngestResult:
    """Everything the ingest benchmark measured."""

    passes: dict[tuple[str, str], Pass]
    """By (server: "real" / "lean", workload: "plain" / "identity")."""
    reads: dict[str, ReadPass]
    """By server."""
    round_trips: int
    round_trip_batches: int
    conflicts: int
    memory: dict[str, float] = field(default_factory=dict)
    """Redis bytes per visitor by kind of key, after the real plain pass."""

    @property
    def real(self) -> LoadResult:
        """The real service's plain pass."""
        return self.passes["real", "plain"].load

    @property
    def cpu_s(self) -> dict[str, float]:
        """CPU seconds of the real plain pass, by process (``profile service``,
        ``redis-server``)."""
        cpu = self.passes["real", "plain"].cpu_s
        return {"profile service": cpu.get(SERVICE, 0.0), "redis-server": cpu.get(REDIS, 0.0)}

    def combined_us(self, server: str, process: str) -> float:
        """CPU µs of ``process`` per event over both workloads of ``server``."""
        done = [p for (s, _), p in self.passes.items() if s == server]
        events = sum(p.load.events for p in done)
        return sum(p.cpu_s.get(process, 0.0) for p in done) / max(1, events) * 1e6

    def ratio(self, process: str) -> float:
        """Real over lean CPU per event of ``process``, both workloads."""
        lean = self.combined_us("lean", process)
        return self.combined_us("real", process) / lean if lean else 0.0

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


async def _used_memory(client: redis.asyncio.Redis) -> int:
    info: dict[str, Any] = await client.info("memory")
    return int(info["used_memory"])


async def _outbox_memory(client: redis.asyncio.Redis) -> int:
    async with client.pipeline(transaction=False) as pipe:
        for pkeys in Layout(DEFAULT_PARTITIONS).all_partitions():
            pipe.memory_usage(pkeys.outbox, samples=0)
        return sum(int(r or 0) for r in await pipe.execute())


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    found = {name: calls - before.get(name, 0) for name, calls in after.items()}
    found.pop("info", None)  # our own INFO calls
    return {name: calls for name, calls in found.items() if calls > 0}


async def _memory_breakdown(
    client: redis.asyncio.Redis, visitor_ids: list[str], visitors: int
) -> dict[str, float]:
    """Bytes per visitor by kind of key (``MEMORY USAGE``): the per-visitor keys of a sample
    of ``visitor_ids``, and the partition-wide structures over all partitions divided by
    ``visitors`` (call it right after the first pass of new visitors on a fresh Redis)."""
    layout = Layout(DEFAULT_PARTITIONS)
    sample = visitor_ids[:: max(1, len(visitor_ids) // 300)]
    kinds = ("profile hash", "dedup ids", "trace stream")
    async with client.pipeline(transaction=False) as pipe:
        for visitor_id in sample:
            pkeys = layout.keys_for(visitor_id)
            for key in (pkeys.profile(visitor_id), pkeys.dedup(visitor_id)):
                pipe.memory_usage(key, samples=0)
            pipe.memory_usage(pkeys.trace(visitor_id), samples=0)
        replies = await pipe.execute()
    out = {
        kind: sum(int(r or 0) for r in replies[n :: len(kinds)]) / max(1, len(sample))
        for n, kind in enumerate(kinds)
    }
    audiences = [a["id"] for a in bench_document()["audiences"]]
    wide = {"outbox (not drained: no dispatch target)": 0, "visit expiries": 0, "audience sets": 0}
    async with client.pipeline(transaction=False) as pipe:
        for pkeys in layout.all_partitions():
            pipe.memory_usage(pkeys.outbox, samples=0)
            pipe.memory_usage(pkeys.visits_due, samples=0)
            for audience_id in audiences:
                pipe.memory_usage(pkeys.audience(audience_id), samples=0)
        replies = await pipe.execute()
    step = 2 + len(audiences)
    for n in range(0, len(replies), step):
        outbox, due, *sets = (int(r or 0) for r in replies[n : n + step])
        wide["outbox (not drained: no dispatch target)"] += outbox
        wide["visit expiries"] += due
        wide["audience sets"] += sum(sets)
    out |= {kind: total / max(1, visitors) for kind, total in wide.items()}
    return out


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
    client: redis.asyncio.Redis,
    pids: dict[str, int],
    visitors: int,
) -> Pass:
    """Drive ``batches`` at ``target``; CPU of ``pids``, commands and memory over the pass."""
    before = await _commandstats(client)
    memory_before = await _used_memory(client)
    outbox_before = await _outbox_memory(client)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = await drive(
        target, api_key, batches, clients=clients, check_results=True, keep_answers=True
    )
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    commands = _delta(before, await _commandstats(client))
    memory = await _used_memory(client) - memory_before
    outbox = await _outbox_memory(client) - outbox_before
    return Pass(result, cpu, commands, memory, visitors, outbox)


async def _read_pass(target: str, api_key: str, requests: list[bytes], pid: int) -> ReadPass:
    before = cpu_seconds(pid)
    reads = await paced_reads(target, api_key, requests, READ_RATE)
    return ReadPass(reads, cpu_seconds(pid) - before)


def _visitor_ids(prefix: str, visitors: int) -> list[str]:
    return [f"{prefix}-{index:07d}" for index in range(visitors)]  # as bench.workload names them


async def run_ingest(config: IngestConfig, run_dir: Path) -> IngestResult:
    """Start the processes, run every pass, stop everything."""
    section(
        f"Ingest: {config.visitors:,} visitors x {config.events_per_visitor} events, "
        f"TrackEvents batches of {config.batch_size}, {config.clients} concurrent clients; "
        "real service against the lean baseline server"
    )
    api_key = secrets.token_urlsafe(24)
    keys_json = json.dumps({api_key: ["ingest", "read", "admin"]})
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        redis_pid = next(p.popen.pid for p in stack.processes if p.name == "redis")
        real_port, lean_port = free_port(), free_port()
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
        lean = stack.start(
            "lean-profile",
            [PYTHON, "-m", "bench.lean_server"],
            {**common, "CROWD_PROFILE_PORT": str(lean_port)},
        )
        targets = {"real": f"127.0.0.1:{real_port}", "lean": f"127.0.0.1:{lean_port}"}
        processes = {"real": real, "lean": lean}
        await wait_serving(real, targets["real"])
        await wait_serving(lean, targets["lean"])
        version = await publish_bench_definitions(targets["real"], api_key)
        note(f"definitions published as {version}; profile service has no dispatch target")

        workloads = {
            "plain": None,
            "identity": IDENTITY_MIX,
        }
        warmup = {
            server: build_batches(
                prefix=f"warm-{server}",
                visitors=2 * config.batch_size,
                events_per_visitor=2,
                batch_size=config.batch_size,
            )
            for server in targets
        }
        for server, target in targets.items():
            await drive(target, api_key, warmup[server], clients=config.clients, check_results=True)

        passes: dict[tuple[str, str], Pass] = {}
        memory: dict[str, float] = {}
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            for workload, identity in workloads.items():
                for server in ("lean", "real"):
                    batches = build_batches(
                        prefix=f"{workload[:2]}{server[0]}",
                        visitors=config.visitors,
                        events_per_visitor=config.events_per_visitor,
                        batch_size=config.batch_size,
                        identity=identity,
                    )
                    note(f"{server} server, {workload} workload: {batches.events:,} events")
                    pids = {SERVICE: processes[server].popen.pid, REDIS: redis_pid}
                    done = await _measured_pass(
                        targets[server],
                        api_key,
                        batches,
                        config.clients,
                        client,
                        pids,
                        config.visitors,
                    )
                    passes[server, workload] = done
                    if (server, workload) == ("real", "plain"):
                        memory = await _memory_breakdown(
                            client, _visitor_ids("plr", config.visitors), config.visitors
                        )
                    note(
                        f"  {done.load.events_per_s:,.0f} events/s, "
                        f"{done.cpu_per_event_us(SERVICE):,.0f} µs service CPU per event"
                    )
                    processes[server].check_alive()
        finally:
            await client.aclose()

        reads: dict[str, ReadPass] = {}
        count = max(1, int(READ_RATE * config.read_seconds))
        for server in ("real", "lean"):
            note(f"{server} server: GetProfile at {READ_RATE:,.0f}/s, {count:,} requests")
            visitors = _visitor_ids(f"pl{server[0]}", config.visitors)
            pid = processes[server].popen.pid
            requests = read_requests(visitors, count)
            reads[server] = await _read_pass(targets[server], api_key, requests, pid)
            note(
                f"  p99 {fmt_ms(reads[server].p99_s)}, "
                f"{reads[server].cpu_per_request_us:,.0f} µs CPU per request"
            )
            processes[server].check_alive()

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
        passes=passes,
        reads=reads,
        round_trips=round_trips,
        round_trip_batches=rt_batches,
        conflicts=conflicts,
        memory=memory,
    )


def _ratio(real: float, lean: float) -> float:
    return real / lean if lean else 0.0


def _pass_rows(result: IngestResult, workload: str) -> list[tuple[str, str]]:
    real, lean = result.passes["real", workload], result.passes["lean", workload]
    rows: list[tuple[str, str]] = [
        ("events", fmt_int(real.load.events)),
        (
            "events/s (real / lean)",
            f"{real.load.events_per_s:,.0f} / {lean.load.events_per_s:,.0f}",
        ),
        (
            "batch latency p50 / p99 (real)",
            f"{fmt_ms(percentile(real.load.latencies_s, 0.5))} / "
            f"{fmt_ms(percentile(real.load.latencies_s, 0.99))}",
        ),
        (
            "batch latency p50 / p99 (lean)",
            f"{fmt_ms(percentile(lean.load.latencies_s, 0.5))} / "
            f"{fmt_ms(percentile(lean.load.latencies_s, 0.99))}",
        ),
    ]
    for label, process in (("service", SERVICE), ("Redis", REDIS)):
        r, l_ = real.cpu_per_event_us(process), lean.cpu_per_event_us(process)
        rows.append(
            (
                f"{label} CPU per event (real / lean)",
                f"{r:,.0f} µs / {l_:,.0f} µs = {_ratio(r, l_):.2f}x",
            )
        )
    rows += [
        (
            "Redis commands per event (real / lean)",
            f"{real.commands_per_event:.2f} / {lean.commands_per_event:.2f}",
        ),
        (
            "Redis memory per visitor (real / lean)",
            f"{real.memory_per_visitor:,.0f} B / {lean.memory_per_visitor:,.0f} B "
            f"(real without the undrained outbox: {real.state_per_visitor:,.0f} B)",
        ),
    ]
    return rows


def report_ingest(result: IngestResult) -> list[Check]:
    """Print the ingest figures; return its target checks."""
    table(_pass_rows(result, "plain"), title="Ingest, plain workload (same run, same Redis)")
    table(
        [(what, fmt_int(count)) for what, count in summarize(result.real.answers).items()],
        title="What the plain events did (from the real service's responses)",
    )
    if ("real", "identity") in result.passes:
        table(
            _pass_rows(result, "identity"),
            title="Ingest, identity mix: 20% identified, 2% second devices that stitch",
        )
        done = summarize(result.passes["real", "identity"].load.answers)
        table([("stitches (profiles merged)", fmt_int(done["profiles stitched"]))])
    real_plain = result.passes["real", "plain"]
    top = sorted(real_plain.commands.items(), key=lambda item: -item[1])[:10]
    table(
        [(name, f"{calls / real_plain.load.events:.2f} per event") for name, calls in top],
        title="Redis commands by name, real service, plain workload (top 10)",
    )
    if result.memory:
        table(
            [(kind, f"{size:,.0f} B") for kind, size in result.memory.items()],
            title="Redis memory per visitor by key (real service, plain workload)",
        )
    real_reads, lean_reads = result.reads["real"], result.reads["lean"]
    read_cpu = _ratio(real_reads.cpu_per_request_us, lean_reads.cpu_per_request_us)
    read_p99 = _ratio(real_reads.p99_s, lean_reads.p99_s)
    table(
        [
            (
                "requests (real / lean)",
                f"{real_reads.reads.requests:,} / {lean_reads.reads.requests:,}",
            ),
            (
                "latency p50 (real / lean)",
                f"{fmt_ms(percentile(real_reads.reads.latencies_s, 0.5))} / "
                f"{fmt_ms(percentile(lean_reads.reads.latencies_s, 0.5))}",
            ),
            (
                "latency p99 (real / lean)",
                f"{fmt_ms(real_reads.p99_s)} / {fmt_ms(lean_reads.p99_s)} = {read_p99:.2f}x",
            ),
            (
                "service CPU per request (real / lean)",
                f"{real_reads.cpu_per_request_us:,.0f} µs / "
                f"{lean_reads.cpu_per_request_us:,.0f} µs = {read_cpu:.2f}x",
            ),
        ],
        title=f"GetProfile at {READ_RATE:,.0f} requests/s (open loop)",
    )
    table(
        [
            (
                "Redis round trips per batch",
                f"{result.round_trips_per_batch:.2f} "
                f"({result.round_trips} in {result.round_trip_batches} batches, "
                f"{result.conflicts} CAS conflicts)",
            )
        ]
    )
    service_ratio, redis_ratio = result.ratio(SERVICE), result.ratio(REDIS)
    memory = real_plain.state_per_visitor
    both = "plain + identity mix"
    return [
        Check(
            f"ingest: service CPU per event, real / lean ({both})",
            f"{result.combined_us('real', SERVICE):,.0f} / "
            f"{result.combined_us('lean', SERVICE):,.0f} µs = {service_ratio:.2f}x",
            f"<= {TARGET_SERVICE_CPU_RATIO:.1f}x",
            0 < service_ratio <= TARGET_SERVICE_CPU_RATIO,
        ),
        Check(
            f"ingest: Redis CPU per event, real / lean ({both})",
            f"{result.combined_us('real', REDIS):,.0f} / "
            f"{result.combined_us('lean', REDIS):,.0f} µs = {redis_ratio:.2f}x",
            f"<= {TARGET_REDIS_CPU_RATIO:.1f}x",
            0 < redis_ratio <= TARGET_REDIS_CPU_RATIO,
        ),
        Check(
            "ingest: Redis memory per visitor (real, plain; outbox drained)",
            f"{memory / 1000:,.2f} KB ({real_plain.memory_per_visitor / 1000:,.2f} KB with "
            "the undrained outbox)",
            f"<= {TARGET_MEMORY_PER_VISITOR_B / 1000:.1f} KB",
            0 < memory <= TARGET_MEMORY_PER_VISITOR_B,
        ),
        Check(
            f"GetProfile CPU per request at {READ_RATE:,.0f}/s, real / lean",
            f"{real_reads.cpu_per_request_us:,.0f} / "
            f"{lean_reads.cpu_per_request_us:,.0f} µs = {read_cpu:.2f}x",
            f"<= {TARGET_READ_CPU_RATIO:.1f}x",
            0 < read_cpu <= TARGET_READ_CPU_RATIO,
        ),
        Check(
            f"GetProfile p99 at {READ_RATE:,.0f}/s, real / lean",
            f"{fmt_ms(real_reads.p99_s)} / {fmt_ms(lean_reads.p99_s)} = {read_p99:.2f}x",
            f"<= {TARGET_READ_P99_RATIO:.1f}x",
            0 < read_p99 <= TARGET_READ_P99_RATIO,
        ),
        Check(
            "ingest: Redis round trips per batch",
            f"{result.round_trips_per_batch:.2f}",
            f"<= {TARGET_ROUND_TRIPS:.0f}",
            0 < result.round_trips_per_batch <= TARGET_ROUND_TRIPS,
        ),
    ]


def run(config: IngestConfig, run_dir: Path) -> IngestResult:
    """Synchronous entry point."""
    return asyncio.run(run_ingest(config, run_dir))
