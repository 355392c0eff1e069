"""Cluster benchmark: the ingest workload on a 3-master Redis Cluster, next to one Redis.

The cluster is the test harness's (`tests.harness.RedisClusterHarness`): 3 masters + 3
replicas from the same ``redis-server`` binary on loopback, AOF on. The profile service runs
as one process (``--workers 1``, so its CPU is one pid's) with ``redis_cluster`` on and the
URL of one master (redis-py discovers the rest), and gets the same batches as the ingest
benchmark's single-Redis pass (`bench.ingest`), whose figures this one is printed beside.

Figures: events/s, profile-service CPU per event, Redis CPU per event summed over every
node (masters and replicas) and how the Redis commands spread over the masters
(``INFO commandstats`` per master). If the service cannot serve on a cluster, the section
says why (the tail of its log) instead of figures: it is no target, so the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

from bench.ingest import IngestConfig, IngestResult, publish_bench_definitions
from bench.load import LoadResult, drive
from bench.procs import cpu_seconds, quiet_env
from bench.report import fmt_int, note, section, table
from bench.workload import build_batches
from demo.stack import PYTHON, Stack, free_port, wait_serving
from tests.harness import RedisClusterHarness

SERVE_WITHIN_S = 60.0


@dataclass
class ClusterResult:
    """The cluster pass, or why it did not run."""

    load: LoadResult | None = None
    service_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    commands_by_master: list[int] | None = None
    failure: str = ""


async def _commands(port: int) -> int:
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    try:
        info = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(
        int(v["calls"]) for k, v in info.items() if isinstance(v, dict) and k != "cmdstat_info"
    )


async def run_cluster(config: IngestConfig, run_dir: Path) -> ClusterResult:
    """Start a cluster and the profile service on it; run the ingest batches."""
    section(
        f"Cluster: the ingest workload ({config.visitors:,} visitors x "
        f"{config.events_per_visitor} events) on a Redis Cluster of 3 masters + 3 replicas"
    )
    api_key = secrets.token_urlsafe(24)
    cluster = RedisClusterHarness(appendonly=True)
    await asyncio.to_thread(cluster.start)
    try:
        with Stack(run_dir=run_dir) as stack:
            port = free_port()
            target = f"127.0.0.1:{port}"
            profile = stack.start(
                "profile-cluster",
                [PYTHON, "-m", "profile_service"],
                {
                    **quiet_env("CROWD_PROFILE_"),
                    "CROWD_PROFILE_REDIS_URL": cluster.url,
                    "CROWD_PROFILE_REDIS_CLUSTER": "true",
                    "CROWD_PROFILE_API_KEYS": json.dumps({api_key: ["ingest", "read", "admin"]}),
                    "CROWD_PROFILE_DISPATCH_TARGET": "",
                    "CROWD_PROFILE_WORKERS": "1",
                    "CROWD_PROFILE_PORT": str(port),
                },
            )
            try:
                await wait_serving(profile, target, within_s=SERVE_WITHIN_S)
                await publish_bench_definitions(target, api_key)
            except Exception as exc:
                tail = profile.log_path.read_text(errors="replace").splitlines()[-5:]
                return ClusterResult(failure=f"{exc}; log tail: " + " | ".join(tail))
            batches = build_batches(
                prefix="c",
                visitors=config.visitors,
                events_per_visitor=config.events_per_visitor,
                batch_size=config.batch_size,
            )
            warmup = build_batches(
                prefix="cwarm",
                visitors=2 * config.batch_size,
                events_per_visitor=2,
                batch_size=config.batch_size,
            )
            await drive(target, api_key, warmup, clients=config.clients, check_results=True)
            masters = [server.port for server in cluster.masters()]
            node_pids = [pid for server in cluster.servers if (pid := server.pid) is not None]
            commands_before = [await _commands(p) for p in masters]
            redis_before = sum(cpu_seconds(pid) for pid in node_pids)
            service_before = cpu_seconds(profile.pid)
            load = await drive(target, api_key, batches, clients=config.clients, check_results=True)
            service_cpu = cpu_seconds(profile.pid) - service_before
            redis_cpu = sum(cpu_seconds(pid) for pid in node_pids) - redis_before
            commands = [
                await _commands(p) - b for p, b in zip(masters, commands_before, strict=True)
            ]
            profile.check_alive()
            note(f"  {load.events_per_s:,.0f} events/s on the cluster")
            return ClusterResult(load, service_cpu, redis_cpu, commands)
    finally:
        await asyncio.to_thread(cluster.cleanup)


def report_cluster(result: ClusterResult, single: IngestResult | None) -> None:
    """Print the cluster figures beside the single-Redis ones (no target)."""
    if result.load is None:
        table([("cluster run", f"did not run: {result.failure}")], title="Cluster figures")
        return
    load = result.load
    rows = [("events", fmt_int(load.events)), ("events/s, cluster", f"{load.events_per_s:,.0f}")]
    if single is not None:
        rows.append(("events/s, one Redis (ingest above)", f"{single.real.events_per_s:,.0f}"))
    rows.append(
        ("profile CPU per event, cluster", f"{result.service_cpu_s / load.events * 1e6:,.0f} µs")
    )
    if single is not None and "profile service" in single.cpu_s:
        per_event = single.cpu_s["profile service"] / single.real.events * 1e6
        rows.append(("profile CPU per event, one Redis", f"{per_event:,.0f} µs"))
    rows.append(
        (
            "Redis CPU per event, cluster (6 nodes)",
            f"{result.redis_cpu_s / load.events * 1e6:,.0f} µs",
        )
    )
    if single is not None and "redis-server" in single.cpu_s:
        per_event = single.cpu_s["redis-server"] / single.real.events * 1e6
        rows.append(("Redis CPU per event, one Redis", f"{per_event:,.0f} µs"))
    if result.commands_by_master:
        total = sum(result.commands_by_master) or 1
        split = " / ".join(f"{c / total:.0%}" for c in result.commands_by_master)
        rows.append(("Redis commands per master (split)", split))
    table(rows, title="Cluster figures (next to one Redis)")


def run(config: IngestConfig, run_dir: Path) -> ClusterResult:
    """Synchronous entry point."""
    return asyncio.run(run_cluster(config, run_dir))
