"""Open-loop GetProfile load: requests at a fixed rate, whatever the answers' latency.

A closed loop (send, wait, send) would slow down with the server and hide its stalls; here
request n leaves at ``start + n / rate`` on its own task, so a stalled event loop on the
server shows up as a latency spike (the p99), and the server's CPU per request is measured
at a known, moderate load (the issue's 300 requests/s). Requests are serialized up front
and answers are not parsed (raw bytes), so the client costs little.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import grpc.aio

from crowd.profile.v1 import event_pb2, profile_service_pb2

GET_PROFILE = "/crowd.profile.v1.ProfileService/GetProfile"
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ReadResult:
    """What one paced GetProfile pass measured."""

    requests: int
    seconds: float
    latencies_s: list[float]
    failures: int


def _identity(payload: bytes) -> bytes:
    return payload


def read_requests(visitor_ids: Sequence[str], count: int, seed: int = 11) -> list[bytes]:
    """``count`` serialized GetProfile requests for visitors drawn from ``visitor_ids``."""
    rng = random.Random(seed)
    return [
        profile_service_pb2.GetProfileRequest(
            visitor=event_pb2.VisitorLookup(visitor_id=rng.choice(visitor_ids))
        ).SerializeToString()
        for _ in range(count)
    ]


async def paced_reads(
    target: str, api_key: str, requests: Sequence[bytes], rate: float
) -> ReadResult:
    """Send ``requests`` to ``target`` at ``rate`` per second (open loop); time each.

    Raises:
        RuntimeError: A request failed (a crash for the benchmark).
    """
    metadata = (("authorization", f"Bearer {api_key}"),)
    channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
    call = channel.unary_unary(
        GET_PROFILE, request_serializer=_identity, response_deserializer=_identity
    )
    latencies: list[float] = []
    failures = 0

    async def one(payload: bytes) -> None:
        nonlocal failures
        sent = time.perf_counter()
        try:
            await call(payload, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            failures += 1
            return
        latencies.append(time.perf_counter() - sent)

    try:
        await asyncio.wait_for(channel.channel_ready(), 30)
        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        for n, payload in enumerate(requests):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(payload)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    finally:
        await channel.close()
    if failures:
        raise RuntimeError(f"{failures} of {len(requests)} GetProfile requests failed")
    return ReadResult(len(requests), seconds, latencies, failures)
