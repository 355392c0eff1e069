"""Collect HTTP ingest benchmark: the same workload through ``POST /event`` (one event per
request), ``POST /v3/collect/bulk-event`` (10 per request, Tealium's most) and gRPC
TrackEvents batches, against one profile service process (Collect on, rate limit raised).

Figures: events/s and p50/p99 request latency per path. The events are the ingest
benchmark's (`bench.workload`), converted to Collect JSON (``tealium_*`` fields + data).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.ingest import publish_bench_definitions
from bench.load import LoadResult, drive, percentile
from bench.procs import quiet_env
from bench.report import Check, fmt_int, fmt_ms, note, section, table
from bench.workload import build_batches
from crowd.common.v1 import value_pb2
from crowd.profile.v1 import event_pb2, profile_service_pb2
from demo.stack import PYTHON, Stack, free_port, start_redis, wait_serving

BULK_SIZE = 10
SHARED = {"tealium_account": "bench", "tealium_profile": "main", "tealium_datasource": "bench"}


@dataclass(frozen=True)
class CollectConfig:
    """Sizes of the Collect benchmark."""

    visitors: int = 5_000
    events_per_visitor: int = 4
    batch_size: int = 500
    clients: int = 4


@dataclass
class CollectResult:
    """Per path, what one pass measured."""

    passes: dict[str, LoadResult]


def _plain(value: value_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind in ("string_list", "number_list", "bool_list"):
        return list(getattr(value, kind).values)
    if kind == "timestamp_value":
        return value.timestamp_value.ToMilliseconds() / 1000
    return None if kind in (None, "null_value") else getattr(value, kind)


def collect_json(event: event_pb2.Event) -> dict[str, Any]:
    """One crowd event as Collect parameters."""
    params = {key: _plain(value) for key, value in event.data.items()}
    params |= {
        "tealium_visitor_id": event.visitor_id,
        "tealium_event": event.name,
        "tealium_event_id": event.event_id,
    }
    return params


def _bodies(payloads: Sequence[bytes], *, bulk: bool) -> list[bytes]:
    bodies: list[bytes] = []
    for payload in payloads:
        events = [
            collect_json(e)
            for e in profile_service_pb2.TrackEventsRequest.FromString(payload).events
        ]
        if bulk:
            bodies.append(json.dumps({"shared": SHARED, "events": events}).encode())
        else:
            bodies.extend(json.dumps({**SHARED, **e}).encode() for e in events)
    return bodies


async def _drive_http(
    url: str, api_key: str, bodies: list[bytes], events: int, clients: int
) -> LoadResult:
    """POST every body with ``clients`` concurrent requests; any non-200 is a crash."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    cursor = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal cursor
            while cursor < len(bodies):
                body = bodies[cursor]
                cursor += 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        error = response.headers.get("X-Error")
                        raise RuntimeError(f"collect answered {response.status}: {error}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return LoadResult(events, len(bodies), seconds, latencies)


async def run_collect(config: CollectConfig, run_dir: Path) -> CollectResult:
    """Start Redis and the profile service with Collect on; run the three passes."""
    section(
        f"Collect HTTP ingest: {config.visitors:,} visitors x {config.events_per_visitor} "
        f"events per path, {config.clients} concurrent clients"
    )
    api_key = secrets.token_urlsafe(24)
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        port, collect_port = free_port(), free_port()
        profile = stack.start(
            "profile",
            [PYTHON, "-m", "profile_service"],
            {
                **quiet_env("CROWD_PROFILE_"),
                "CROWD_PROFILE_REDIS_URL": redis_url,
                "CROWD_PROFILE_API_KEYS": json.dumps({api_key: ["ingest", "read", "admin"]}),
                "CROWD_PROFILE_DISPATCH_TARGET": "",
                "CROWD_PROFILE_WORKERS": "1",
                "CROWD_PROFILE_PORT": str(port),
                "CROWD_PROFILE_COLLECT_PORT": str(collect_port),
                "CROWD_PROFILE_COLLECT_RATE_PER_SECOND": "1000000000",
            },
        )
        target = f"127.0.0.1:{port}"
        await wait_serving(profile, target)
        await publish_bench_definitions(target, api_key)
        base = f"http://127.0.0.1:{collect_port}"
        passes: dict[str, LoadResult] = {}

        grpc_batches = build_batches(
            prefix="g",
            batch_size=config.batch_size,
            visitors=config.visitors,
            events_per_visitor=config.events_per_visitor,
        )
        note(f"gRPC TrackEvents (batches of {config.batch_size})")
        passes[f"gRPC TrackEvents x{config.batch_size}"] = await drive(
            target, api_key, grpc_batches, clients=config.clients, check_results=True
        )
        bulk = build_batches(
            prefix="b",
            batch_size=BULK_SIZE,
            visitors=config.visitors,
            events_per_visitor=config.events_per_visitor,
        )
        note(f"POST /v3/collect/bulk-event ({BULK_SIZE} per request)")
        passes[f"HTTP bulk-event x{BULK_SIZE}"] = await _drive_http(
            base + "/v3/collect/bulk-event",
            api_key,
            _bodies(bulk.payloads, bulk=True),
            bulk.events,
            config.clients,
        )
        single = build_batches(
            prefix="s",
            batch_size=BULK_SIZE,
            visitors=config.visitors,
            events_per_visitor=config.events_per_visitor,
        )
        note("POST /event (one event per request)")
        passes["HTTP /event x1"] = await _drive_http(
            base + "/event",
            api_key,
            _bodies(single.payloads, bulk=False),
            single.events,
            config.clients,
        )
        profile.check_alive()
    return CollectResult(passes)


def report_collect(result: CollectResult) -> list[Check]:
    """Print the figures; no targets (the comparison is the figure)."""
    rows = []
    for path, measured in result.passes.items():
        rows.append(
            (
                path,
                f"{measured.events_per_s:,.0f} events/s ({fmt_int(measured.events)} events), "
                f"request p50 / p99 {fmt_ms(percentile(measured.latencies_s, 0.5))} / "
                f"{fmt_ms(percentile(measured.latencies_s, 0.99))}",
            )
        )
    table(rows, title="Collect vs gRPC ingest")
    return []


def run(config: CollectConfig, run_dir: Path) -> CollectResult:
    """Synchronous entry point."""
    return asyncio.run(run_collect(config, run_dir))
