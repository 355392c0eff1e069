"""Scaling benchmark: the same ingest load on one profile process and on N worker processes.

Processes: a fresh redis-server (AOF on, as in production) and the profile service started
twice, one after the other, as an operator would: ``python -m profile_service --workers 1``,
then ``--workers N`` (N = the cores, or ``--workers``). No dispatch target, so fired actions
stay in the outbox and the figures are the profile service's alone. Each pass sends the
same amount of new visitors' events (`bench.workload`) with the same closed-loop clients,
which share ``connections`` connections and take them in turn per batch, as tasks sharing
one `crowd.client.CrowdClient` (16 channels by default) do.

Figures, per pass: events/s, CPU seconds per event of all the service's processes (the
supervisor and every worker, from ``/proc``), each worker's share of the CPU and of the RPCs
(each worker logs the RPCs it handled when it stops: ``stopped`` with ``rpcs``), and the
bytes per event on the wire: Redis's ``INFO stats`` network counters (replies, commands and
the sweeper's polling) and the serialized gRPC requests and responses (for the capacity
figures of the README's "Running at scale").

Target: CPU per event with N processes within 10% of one process, i.e. running several
workers costs no more per event than one; how much faster N processes go depends on the
cores left free by Redis and the load generator on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio

from bench.ingest import publish_bench_definitions
from bench.load import LoadResult, drive
from bench.procs import children_of, cpu_seconds, quiet_env
from bench.report import Check, fmt_int, note, section, table
from bench.workload import build_batches
from crowd.client import DEFAULT_CHANNELS
from demo.stack import PYTHON, Process, Stack, free_port, start_redis, wait_serving
from service_common.settings import available_cores

IDLE_SAMPLE_S = 3.0
"""How long the idle processes' CPU is sampled before each pass."""

TARGET_CPU_RATIO = 1.10
"""CPU per event with N workers over CPU per event with one, at most."""


@dataclass(frozen=True)
class ScalingConfig:
    """Sizes of the scaling benchmark."""

    visitors: int = 10_000
    events_per_visitor: int = 4
    batch_size: int = 500
    clients: int = 4
    connections: int = DEFAULT_CHANNELS
    workers: int = 0
    """Worker processes of the second pass; 0: the cores this process may use."""

    @property
    def worker_count(self) -> int:
        return self.workers or max(2, available_cores())


@dataclass
class PassResult:
    """One pass: the load and what each process did."""

    workers: int
    load: LoadResult
    cpu_s: dict[int, float]
    """CPU seconds during the pass per process id (supervisor and workers)."""
    supervisor_pid: int
    rpcs: dict[int, int] = field(default_factory=dict)
    """TrackEvents and other application RPCs per worker pid (warm-up included)."""
    redis_bytes: int = 0
    """Bytes Redis received and sent (``INFO stats`` net counters) during the pass."""
    grpc_bytes: int = 0
    """Serialized request and response bytes of the pass (the gRPC payloads)."""
    redis_cpu_s: float = 0.0
    """CPU seconds of redis-server during the pass."""
    idle_cpu_per_s: float = 0.0
    """CPU seconds per second all the processes used while idle just before the pass (the
    background loops' polling: sweeper, reconciler, outbox forwarder, definitions watcher)."""

    @property
    def cpu_per_event_s(self) -> float:
        total = sum(self.cpu_s.values())
        return total / self.load.events if self.load.events else 0.0


@dataclass
class ScalingResult:
    """Both passes."""

    one: PassResult
    many: PassResult

    @property
    def cpu_ratio(self) -> float:
        """CPU per event with N workers over CPU per event with one."""
        base = self.one.cpu_per_event_s
        return self.many.cpu_per_event_s / base if base else 0.0


def _worker_lines(process: Process, message: str) -> list[dict[str, object]]:
    found = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if str(record.get("msg", "")).startswith(message):
                found.append(record)
    return found


async def _redis_net_bytes(client: redis.asyncio.Redis) -> int:
    stats = await client.info("stats")
    return int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])


async def _wait_workers(process: Process, target: str, workers: int) -> list[int]:
    """Wait until health answers SERVING and every worker has logged ``serving``."""
    await wait_serving(process, target, within_s=60)
    for _ in range(600):
        process.check_alive()
        pids = children_of(process.pid) if workers > 1 else [process.pid]
        serving = {int(str(r["pid"])) for r in _worker_lines(process, "serving")}
        if len(pids) == workers and set(pids) <= serving:
            return pids
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name}: {workers} workers did not all start")


async def _pass(
    stack: Stack,
    config: ScalingConfig,
    workers: int,
    env: dict[str, str],
    api_key: str,
    publish: bool,
) -> PassResult:
    redis_pid = next(p.pid for p in stack.processes if p.name == "redis")
    port = free_port()
    target = f"127.0.0.1:{port}"
    name = f"profile-workers-{workers}"
    process = stack.start(
        name,
        [PYTHON, "-m", "profile_service"],
        {
            **env,
            "CROWD_PROFILE_PORT": str(port),
            "CROWD_PROFILE_WORKERS": str(workers),
            "CROWD_PROFILE_LOG_FORMAT": "json",
        },
    )
    worker_pids = await _wait_workers(process, target, workers)
    if publish:
        version = await publish_bench_definitions(target, api_key)
        note(f"definitions published as {version}; no dispatch target")
    prefix = f"w{workers}-"
    warmup = build_batches(
        prefix=prefix + "warm",
        visitors=2 * config.batch_size,
        events_per_visitor=2,
        batch_size=config.batch_size,
    )
    batches = build_batches(
        prefix=prefix,
        visitors=config.visitors,
        events_per_visitor=config.events_per_visitor,
        batch_size=config.batch_size,
    )
    await drive(
        target,
        api_key,
        warmup,
        clients=config.clients,
        check_results=True,
        connections=config.connections,
    )
    pids = sorted({process.pid, *worker_pids})
    idle_before = sum(cpu_seconds(pid) for pid in pids)
    await asyncio.sleep(IDLE_SAMPLE_S)
    idle_cpu_per_s = (sum(cpu_seconds(pid) for pid in pids) - idle_before) / IDLE_SAMPLE_S
    redis_client = redis.asyncio.Redis.from_url(env["CROWD_PROFILE_REDIS_URL"])
    try:
        net_before = await _redis_net_bytes(redis_client)
        before = {pid: cpu_seconds(pid) for pid in pids}
        redis_before = cpu_seconds(redis_pid)
        load = await drive(
            target,
            api_key,
            batches,
            clients=config.clients,
            check_results=True,
            connections=config.connections,
            keep_answers=True,
        )
        cpu = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
        redis_cpu = cpu_seconds(redis_pid) - redis_before
        redis_bytes = await _redis_net_bytes(redis_client) - net_before
    finally:
        await redis_client.aclose()
    grpc_bytes = sum(map(len, batches.payloads)) + sum(map(len, load.answers))
    process.check_alive()
    if not process.stop(stack.stop_grace_s):
        raise RuntimeError(f"{name} did not stop on SIGTERM")
    rpcs = {int(str(r["pid"])): int(str(r["rpcs"])) for r in _worker_lines(process, "stopped")}
    note(f"  {workers} worker(s): {load.events_per_s:,.0f} events/s")
    return PassResult(
        workers, load, cpu, process.pid, rpcs, redis_bytes, grpc_bytes, redis_cpu, idle_cpu_per_s
    )


async def run_scaling(config: ScalingConfig, run_dir: Path) -> ScalingResult:
    """Run the one-process and the N-process pass on a fresh Redis."""
    n = config.worker_count
    section(
        f"Scaling: ingest with 1 and with {n} profile processes (--workers), "
        f"{config.visitors:,} visitors x {config.events_per_visitor} events each pass, "
        f"{config.clients} clients over {config.connections} connections"
    )
    api_key = secrets.token_urlsafe(24)
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        env = {
            **quiet_env("CROWD_PROFILE_"),
            "CROWD_PROFILE_REDIS_URL": redis_url,
            "CROWD_PROFILE_API_KEYS": json.dumps({api_key: ["ingest", "read", "admin"]}),
            "CROWD_PROFILE_DISPATCH_TARGET": "",
        }
        one = await _pass(stack, config, 1, env, api_key, publish=True)
        many = await _pass(stack, config, n, env, api_key, publish=False)
    return ScalingResult(one, many)


def _share(values: dict[int, float], pids: list[int]) -> str:
    total = sum(values.get(pid, 0) for pid in pids)
    if not total:
        return "-"
    return " / ".join(f"{values.get(pid, 0) / total:.0%}" for pid in pids)


def report_scaling(result: ScalingResult) -> list[Check]:
    """Print the scaling figures; return its target check."""
    one, many = result.one, result.many
    workers = sorted(many.rpcs) or [p for p in sorted(many.cpu_s) if p != many.supervisor_pid]
    rows = [
        ("events per pass", fmt_int(one.load.events)),
        ("events/s, 1 process", f"{one.load.events_per_s:,.0f}"),
        (f"events/s, {many.workers} processes", f"{many.load.events_per_s:,.0f}"),
        ("speed-up", f"{many.load.events_per_s / one.load.events_per_s:.2f}x"),
        ("CPU per event, 1 process", f"{one.cpu_per_event_s * 1e6:,.0f} µs"),
        (
            f"CPU per event, {many.workers} processes",
            f"{many.cpu_per_event_s * 1e6:,.0f} µs "
            f"(supervisor {many.cpu_s.get(many.supervisor_pid, 0.0):.2f} s in all)",
        ),
        ("CPU per event, N over 1", f"{result.cpu_ratio:.3f}"),
        (
            "idle background CPU (all processes)",
            f"{one.idle_cpu_per_s:.1%} of a core (1 process), "
            f"{many.idle_cpu_per_s:.1%} ({many.workers})",
        ),
        (
            "RPC split over the workers",
            _share({k: float(v) for k, v in many.rpcs.items()}, workers),
        ),
        ("RPCs per worker", " / ".join(fmt_int(many.rpcs.get(pid, 0)) for pid in workers)),
        ("CPU split over the workers", _share(many.cpu_s, workers)),
        (
            "redis-server CPU per event",
            f"{one.redis_cpu_s / one.load.events * 1e6:,.0f} µs (1 process), "
            f"{many.redis_cpu_s / many.load.events * 1e6:,.0f} µs ({many.workers})",
        ),
        (
            "Redis traffic per event (in + out)",
            f"{one.redis_bytes / one.load.events:,.0f} B (1 process), "
            f"{many.redis_bytes / many.load.events:,.0f} B ({many.workers})",
        ),
        (
            "gRPC payload per event (request + response)",
            f"{one.grpc_bytes / one.load.events:,.0f} B",
        ),
    ]
    table(rows, title="Scaling figures (--workers)")
    return [
        Check(
            f"workers: CPU per event, {many.workers} processes vs 1",
            f"{result.cpu_ratio:.3f}x",
            f"<= {TARGET_CPU_RATIO:.2f}x",
            0 < result.cpu_ratio <= TARGET_CPU_RATIO,
        )
    ]


def run(config: ScalingConfig, run_dir: Path) -> ScalingResult:
    """Synchronous entry point."""
    return asyncio.run(run_scaling(config, run_dir))
