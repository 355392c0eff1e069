"""Closed-loop load: a few concurrent clients sending pre-serialized TrackEvents batches.

Each client keeps one batch in flight: it takes the next batch from a shared cursor, sends
it, waits for the answer, repeats. By default each client has its own channel (its own
HTTP/2 connection); with ``connections`` the clients share that many connections, taking
them in turn for each batch, as tasks sharing one `crowd.client.CrowdClient` do (a server
with several worker processes on one port spreads connections, not calls). The
requests are already serialized and responses are not parsed (raw bytes both ways), so the
client spends as little CPU as possible on the machine it shares with the server. The first
answer of a real server is parsed to check it holds one result per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio

from bench.workload import Batches
from crowd.profile.v1 import profile_service_pb2

TRACK_EVENTS = "/crowd.profile.v1.ProfileService/TrackEvents"
CALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadResult:
    """What one pass measured."""

    events: int
    batches: int
    seconds: float
    latencies_s: list[float]
    """Per batch, send to answer."""
    answers: list[bytes] = field(default_factory=list)
    """The serialized responses, when kept."""

    @property
    def events_per_s(self) -> float:
        """Events answered per second of wall time."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def _identity(payload: bytes) -> bytes:
    return payload


async def drive(
    target: str,
    api_key: str,
    batches: Batches,
    *,
    clients: int,
    check_results: bool,
    keep_answers: bool = False,
    connections: int | None = None,
) -> LoadResult:
    """Send every batch to ``target`` with ``clients`` concurrent clients; time it.

    ``connections``: that many connections shared by the clients, used in turn per batch
    (default: one per client).

    ``keep_answers`` keeps the serialized responses (parsed after the clock stops).

    Raises:
        grpc.aio.AioRpcError: A batch failed (the benchmark treats this as a crash).
        RuntimeError: ``check_results`` and the first answer does not have one result per
            event.
    """
    metadata = (("authorization", f"Bearer {api_key}"),)
    # A private subchannel pool per channel: otherwise channels to one target share one
    # connection, and the "clients" would be streams of one HTTP/2 connection.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    channels = [
        grpc.aio.insecure_channel(target, options=options) for _ in range(connections or clients)
    ]
    calls = [
        channel.unary_unary(
            TRACK_EVENTS, request_serializer=_identity, response_deserializer=_identity
        )
        for channel in channels
    ]
    latencies: list[float] = []
    answers: list[bytes] = []
    cursor = 0
    checked = not check_results

    async def client() -> None:
        nonlocal cursor, checked
        while cursor < len(batches.payloads):
            index = cursor
            cursor += 1
            call = calls[index % len(calls)]
            started = time.perf_counter()
            answer = await call(batches.payloads[index], metadata=metadata, timeout=CALL_TIMEOUT_S)
            latencies.append(time.perf_counter() - started)
            if not checked:
                checked = True
                _check_answer(answer, batches.sizes[index])
            if keep_answers:
                answers.append(answer)

    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()
    return LoadResult(batches.events, len(batches.payloads), seconds, latencies, answers)


def summarize(answers: Sequence[bytes]) -> dict[str, int]:
    """Totals over the kept responses: what the events changed (the bench asks for BASIC
    results, without attribute changes, so those are not counted)."""
    totals = {
        "new visitors": 0,
        "visits started": 0,
        "badges assigned": 0,
        "audiences joined": 0,
        "audiences left": 0,
        "actions fired": 0,
        "profiles stitched": 0,
    }
    for answer in answers:
        for result in profile_service_pb2.TrackEventsResponse.FromString(answer).results:
            totals["new visitors"] += result.new_visitor
            totals["visits started"] += result.visit_started
            totals["badges assigned"] += len(result.badges_assigned)
            totals["audiences joined"] += len(result.audiences_joined)
            totals["audiences left"] += len(result.audiences_left)
            totals["actions fired"] += len(result.actions_fired)
            totals["profiles stitched"] += len(result.stitched_profile_ids)
    return totals


def _check_answer(answer: bytes, expected: int) -> None:
    response = profile_service_pb2.TrackEventsResponse.FromString(answer)
    if len(response.results) != expected:
        raise RuntimeError(f"a batch of {expected} events got {len(response.results)} results")
