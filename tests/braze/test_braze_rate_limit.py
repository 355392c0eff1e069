"""Shared rate limits: never above the budget across replicas; 429 pauses every replica."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from braze_sandbox import RateLimit
from dispatch_service.braze import Outcome, PendingAction, RateGroup
from dispatch_service.braze.rate_limit import SharedRateLimiter, Throttled
from tests.braze.conftest import SandboxFactory, StackFactory
from tests.braze.helpers import track_action


class BusyBeforeSend(SpanProcessor):
    """Burns CPU on the event loop when chosen HTTP requests start.

    The aiohttp instrumentation opens its client span after the rate-limit slot was granted
    and before the request's bytes go out, so this is what a CPU-bound replica does to a
    request between its grant and its arrival at Braze: every other coroutine (the other
    replica, the sandbox) stalls too, exactly as on a busy core.
    """

    def __init__(self, stall_s: float, at: set[int]) -> None:
        self.stall_s = stall_s
        self.at = at
        """1-based numbers of the HTTP requests to stall."""
        self.started = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.kind is not SpanKind.CLIENT:
            return
        self.started += 1
        if self.started in self.at:
            until = time.monotonic() + self.stall_s
            digest = b""
            while time.monotonic() < until:
                digest = hashlib.sha256(digest).digest()

    def on_end(self, span: ReadableSpan) -> None:
        return None


async def test_two_replicas_never_exceed_the_shared_limit(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(5, 1.0)})
    # The margin absorbs scheduling delays between a grant and the request's arrival: the
    # replicas and the sandbox share one event loop here.
    replicas = [
        await make_stack(sandbox.url, track_rate="5/1s", rate_margin_s=0.25) for _ in range(2)
    ]

    async def send(replica: int, count: int) -> list[Outcome]:
        outcomes: list[Outcome] = []
        stack = replicas[replica]
        # One single-action request per call: 8 requests per replica, all sent at once.
        batches = [
            [PendingAction(f"r{replica}-{i}", track_action(f"r{replica}-user-{i}", {"i": i}))]
            for i in range(count)
        ]
        results = await asyncio.gather(*(stack.delivery.deliver(b) for b in batches))
        outcomes.extend(r.outcome for batch in results for r in batch)
        return outcomes

    outcomes = await asyncio.gather(send(0, 8), send(1, 8))
    assert [o for per in outcomes for o in per] == [Outcome.DELIVERED] * 16
    traffic = sandbox.traffic("track")
    assert traffic.total == 16
    assert traffic.rejected == 0
    assert sandbox.max_requests_in_window("track", sliding=True) <= 5


@pytest.mark.parametrize("stall_at", [{1}, {1, 6, 11}], ids=["first", "every-fifth"])
async def test_cpu_stall_between_grant_and_send_never_exceeds_braze_windows(
    make_sandbox: SandboxFactory,
    make_stack: StackFactory,
    tracer_provider: TracerProvider,
    stall_at: set[int],
) -> None:
    # Regression: with slots stamped at grant time, a request stalled for longer than the
    # margin (0.1 s) after its grant arrived together with the next window's requests (6 of
    # 5 in one second, and a 429). A slot now counts until Braze has answered its request.
    tracer_provider.add_span_processor(BusyBeforeSend(0.4, stall_at))
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(5, 1.0)}, window_alignment="clock")
    replicas = [await make_stack(sandbox.url, track_rate="5/1s") for _ in range(2)]

    async def send(replica: int, count: int) -> list[Outcome]:
        stack = replicas[replica]
        batches = [
            [PendingAction(f"r{replica}-{i}", track_action(f"r{replica}-user-{i}", {"i": i}))]
            for i in range(count)
        ]
        results = await asyncio.gather(*(stack.delivery.deliver(b) for b in batches))
        return [r.outcome for batch in results for r in batch]

    outcomes = await asyncio.gather(send(0, 8), send(1, 8))
    assert [o for per in outcomes for o in per] == [Outcome.DELIVERED] * 16
    traffic = sandbox.traffic("track")
    assert (traffic.total, traffic.rejected) == (16, 0)
    assert sandbox.max_requests_in_window("track") <= 5
    assert sandbox.max_requests_in_window("track", sliding=True) <= 5


async def test_a_slot_counts_until_it_is_released(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox()
    one = await make_stack(sandbox.url, admin_rate="1/0.2s", rate_margin_s=0)
    other = await make_stack(sandbox.url, admin_rate="1/0.2s", rate_margin_s=0)
    slot = await one.limiter.reserve(RateGroup.ADMIN)
    # In flight (no answer yet): it holds the only slot for longer than one window.
    with pytest.raises(Throttled) as throttled:
        await other.limiter.reserve(RateGroup.ADMIN, max_wait_s=0.7)
    assert throttled.value.wait_s is not None and throttled.value.wait_s > 0
    await slot.release()
    # Released: the slot counts for one window from its release, then the other gets one.
    after = await other.limiter.reserve(RateGroup.ADMIN, max_wait_s=0.7)
    await after.release()
    # A release after the slot already counts as sent changes nothing.
    await slot.release()


async def test_an_unreleased_slot_counts_until_its_lease_ends(
    make_sandbox: SandboxFactory, make_stack: StackFactory, redis_client: Redis
) -> None:
    # A replica that died with a request in flight must not hold the slot forever.
    sandbox = await make_sandbox()
    stack = await make_stack(sandbox.url, admin_rate="1/0.1s", rate_margin_s=0, timeout_s=0.2)
    died = SharedRateLimiter(redis_client, stack.connector, in_flight_grace_s=0.2)
    await died.reserve(RateGroup.ADMIN)
    # Longer than the window, shorter than the lease (0.4 s): still held.
    with pytest.raises(Throttled):
        await stack.limiter.reserve(RateGroup.ADMIN, max_wait_s=0.25)
    survivor = SharedRateLimiter(redis_client, stack.connector, in_flight_grace_s=0.2)
    slot = await survivor.reserve(RateGroup.ADMIN, max_wait_s=died.in_flight_lease_s() + 5)
    await slot.release()


async def test_a_429_pauses_the_other_replica_until_the_pause_ends(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox()
    one = await make_stack(sandbox.url)
    other = await make_stack(sandbox.url)
    sandbox.faults.force_rate_limit(1, requests=1)
    [limited] = await one.delivery.deliver([PendingAction("k1", track_action("u1", {"a": 1}))])
    assert (limited.outcome, limited.http_status) == (Outcome.RETRY, 429)
    # A lower bound of the pause's end: Redis computed the remaining time after this clock read.
    asked_at = time.time()
    pause_ends = asked_at + await other.limiter.paused_for(RateGroup.TRACK)
    # The other replica's limiter holds its request back until the pause set by the first
    # one has ended, then sends it.
    [sent] = await other.delivery.deliver([PendingAction("k2", track_action("u2", {"a": 1}))])
    assert sent.outcome is Outcome.DELIVERED
    assert len(sandbox.requests) == 2
    assert sandbox.requests[-1].time >= pause_ends - 0.002  # the pause is kept in whole ms
    assert await other.limiter.paused_for(RateGroup.TRACK) == 0


async def test_limiter_instances_share_grants_through_redis(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox()
    first = await make_stack(sandbox.url, admin_rate="3/60s")
    second = await make_stack(sandbox.url, admin_rate="3/60s")
    for limiter in (first.limiter, second.limiter, first.limiter):
        await limiter.acquire(RateGroup.ADMIN)
    # The budget of 3 per minute is spent across the two instances: a fourth grant must wait.
    fourth = asyncio.create_task(second.limiter.acquire(RateGroup.ADMIN))
    done, _ = await asyncio.wait({fourth}, timeout=0.5)
    assert not done
    fourth.cancel()
    # The track group has its own budget.
    assert await first.limiter.acquire(RateGroup.TRACK) >= 0


async def test_429_with_retry_after_retries_and_pauses_every_replica(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox()
    one = await make_stack(sandbox.url)
    other = await make_stack(sandbox.url)
    sandbox.faults.force_rate_limit(7, requests=1)
    [result] = await one.delivery.deliver([PendingAction("k1", track_action("u1", {"a": 1}))])
    assert (result.outcome, result.http_status, result.retry_after_s) == (Outcome.RETRY, 429, 7.0)
    assert "429" in result.reason
    assert sandbox.requests[-1].response == {"message": "Rate Limited"}
    paused = await other.limiter.paused_for(RateGroup.TRACK)
    assert 5.0 < paused <= 7.0
    assert await other.limiter.paused_for(RateGroup.ADMIN) == 0


async def test_acquire_waits_out_a_shared_pause(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox()
    one = await make_stack(sandbox.url)
    other = await make_stack(sandbox.url)
    await one.limiter.pause(RateGroup.TRACK, 0.3)
    remaining = await other.limiter.paused_for(RateGroup.TRACK)
    waited = await other.limiter.acquire(RateGroup.TRACK)
    assert remaining > 0
    assert waited >= remaining - 0.05
    assert await other.limiter.paused_for(RateGroup.TRACK) == 0
    # A shorter pause never shortens a running one.
    assert await one.limiter.pause(RateGroup.ADMIN, 5) == 5
    assert await other.limiter.pause(RateGroup.ADMIN, 1) > 4


async def test_spent_budget_header_pauses_before_braze_says_429(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    # Braze's real budget (2 per 10 s) is below the configured one (3000 per 3 s): the
    # "X-RateLimit-Remaining: 0" answer pauses everyone instead of running into 429s.
    sandbox = await make_sandbox(rate_limits={"track": RateLimit(2, 10.0)}, reset_header="seconds")
    stack = await make_stack(sandbox.url)
    for i in range(2):
        [result] = await stack.delivery.deliver(
            [PendingAction(f"k{i}", track_action(f"u{i}", {"a": 1}))]
        )
        assert result.outcome is Outcome.DELIVERED
    assert sandbox.requests[-1].status == 201
    assert await stack.limiter.paused_for(RateGroup.TRACK) > 5


async def test_a_long_shared_pause_hands_actions_back_instead_of_blocking(
    make_sandbox: SandboxFactory, make_stack: StackFactory
) -> None:
    sandbox = await make_sandbox()
    one = await make_stack(sandbox.url, max_rate_wait_s=1.0)
    other = await make_stack(sandbox.url, max_rate_wait_s=1.0)
    sandbox.faults.force_rate_limit(30, requests=1)
    [limited] = await one.delivery.deliver([PendingAction("k1", track_action("u1", {"a": 1}))])
    assert limited.retry_after_s == 30.0
    # Another replica does not even try while the pause lasts: it hands the action back.
    [held] = await other.delivery.deliver([PendingAction("k2", track_action("u2", {"a": 1}))])
    assert held.outcome is Outcome.RETRY
    assert held.retry_after_s is not None and 25.0 < held.retry_after_s <= 30.0
    assert held.reason.startswith("not sent: rate limit")
    assert len(sandbox.requests) == 1
