"""The seed scenario end to end (issue 3 Acceptance, issue 4 §8): events through the profile
service's API, the visit ending by itself, the audience joined, the action forwarded to the
dispatch service and delivered to the Braze sandbox over HTTP, exactly once.

The scenario runs once for the module (two visits must end by inactivity: at least 5 s each);
the tests below assert on what it recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.trace import SpanKind

from braze_sandbox import (
    ALL_PERMISSIONS,
    BrazeSandbox,
    RecordedRequest,
    SandboxConfig,
    fingerprint,
)
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import trace_pb2
from dispatch_service.worker import WorkerSettings
from tests.e2e.tracing import (
    BRAZE_TRACK_SPAN,
    TracedCaller,
    capture_logs,
    find_spans,
    is_server_span,
    only,
    traceparent_of,
    wait_for_span,
)
from tests.harness import RedisServer
from tests.profile_api.helpers import (
    ADMIN_KEY,
    BRAZE_KEY,
    DISPATCH_KEY,
    secrets_in_logs,
    secrets_in_spans,
    wait_for,
)
from tests.profile_api.servers import Servers, Tracing, write_connectors
from tests.profile_api.shop import SEED_ACTION, SEED_AUDIENCE, seed_definitions

VISITOR = "seed-visitor"
CUSTOMER = "seed-customer-17"
VISITS: list[list[tuple[str, dict[str, Any]]]] = [
    [
        ("page_view", {"customer_id": CUSTOMER}),
        ("purchase", {"order_total": 320.0}),
        ("purchase", {"order_total": 240.0}),
    ],
    [("page_view", {}), ("cart_add", {"product_id": "sku-42"})],
]


@dataclass
class SeedRun:
    """What the scenario produced."""

    sandbox: BrazeSandbox
    tracing: Tracing
    caller: TracedCaller
    track_requests: list[RecordedRequest]
    """/users/track requests for the customer once the action was delivered."""
    user_attributes: dict[str, Any]
    user_events: list[str]
    profile_badges: list[str]
    audience_size: int
    fired_key: str
    action_status: action_pb2.ActionStatus
    trace_entries: list[trace_pb2.TraceEntry] = field(default_factory=list)
    track_requests_at_end: list[RecordedRequest] = field(default_factory=list)
    """/users/track requests for the customer after a further event and a later request."""
    log_records: list[logging.LogRecord] = field(default_factory=list)
    delivered_entry: trace_pb2.TraceEntry | None = None
    """The visitor's trace entry noting the Track User delivery (written by dispatch)."""


def track_requests_for(sandbox: BrazeSandbox, customer: str) -> list[RecordedRequest]:
    return [r for r in sandbox.requests if r.path == "/users/track" and customer in repr(r.body)]


async def read_trace(client: CrowdClient, until_kind: int) -> list[trace_pb2.TraceEntry]:
    """The visitor's stored trace, up to the first entry of ``until_kind``."""
    entries: list[trace_pb2.TraceEntry] = []
    async for entry in client.stream_trace(VISITOR, after="0"):
        entries.append(entry)
        if entry.kind == until_kind:
            return entries
    return entries


async def play(servers: Servers, sandbox: BrazeSandbox, tmp: Path) -> SeedRun:
    dispatch = await servers.dispatch(
        write_connectors(tmp, sandbox.url), WorkerSettings(block_ms=50, promote_interval_s=0.05)
    )
    profile = await servers.profile(dispatch_target=dispatch.address, dispatch_api_key=DISPATCH_KEY)
    caller = TracedCaller(profile.address, ADMIN_KEY, servers.tracing.provider("shop-backend"))
    async with (
        CrowdClient(profile.address, api_key=ADMIN_KEY) as client,
        CrowdClient("", dispatch.address, api_key=DISPATCH_KEY) as dispatch_client,
    ):
        await client.publish_definitions(seed_definitions(visit_timeout="5s"))

        async def visit_ended() -> bool:
            return not (await client.get_profile(VISITOR)).HasField("current_visit")

        for steps in VISITS:
            for name, data in steps:
                result = await caller.track(VISITOR, name, data)
                assert not result.actions_fired  # the action fires when the visit ends
            await wait_for(visit_ended, "the visit to end by inactivity", within_s=30)

        await sandbox.wait_until(lambda: bool(track_requests_for(sandbox, CUSTOMER)), timeout=30)
        await wait_for_span(
            servers.tracing.exporter, lambda s: s.name == BRAZE_TRACK_SPAN, "Braze request"
        )
        user = sandbox.get_user(CUSTOMER)
        assert user is not None
        profile_now = await client.get_profile(VISITOR)
        entries = await read_trace(client, trace_pb2.TRACE_ENTRY_KIND_ACTION_TRIGGERED)
        fired_key = entries[-1].details["idempotency_key"].string_value
        status = await dispatch_client.get_action(fired_key)
        # The dispatch service notes the delivery in the visitor's live trace.
        delivered = await asyncio.wait_for(
            read_trace(client, trace_pb2.TRACE_ENTRY_KIND_ACTION_DELIVERED), timeout=30
        )
        run = SeedRun(
            sandbox=sandbox,
            tracing=servers.tracing,
            caller=caller,
            track_requests=track_requests_for(sandbox, CUSTOMER),
            user_attributes=dict(user.attributes),
            user_events=[e.name for e in user.events],
            profile_badges=list(profile_now.badges),
            audience_size=await client.audience_size(SEED_AUDIENCE),
            fired_key=fired_key,
            action_status=status,
            trace_entries=entries,
            delivered_entry=delivered[-1],
        )

        # A further event (a new visit; still in the audience) must not send it again. As a
        # barrier, the account deletion fires the seed's Delete User action after it, through
        # the same outbox partition and queue: once that request arrived, a resend triggered
        # by the further event would have been sent as well.
        await caller.track(VISITOR, "page_view")
        await caller.track(VISITOR, "account_deleted")
        await sandbox.wait_until(
            lambda: any(r.path == "/users/delete" for r in sandbox.requests), timeout=30
        )
        run.track_requests_at_end = track_requests_for(sandbox, CUSTOMER)
        await caller.close()
        return run


@asynccontextmanager
async def recorded_seed_run(servers: Servers, tmp: Path) -> AsyncIterator[SeedRun]:
    """Play the scenario with ``servers`` (their Redis flushed) and a fresh sandbox; yield what
    it recorded, with the log records of the whole run including the servers' shutdown."""
    sandbox = BrazeSandbox(
        SandboxConfig(api_keys={BRAZE_KEY: ALL_PERMISSIONS}, window_alignment="first_request")
    )
    await sandbox.start()
    try:
        with capture_logs() as logs:
            run = await play(servers, sandbox, tmp)
            await servers.close()  # shutdown logs are checked too
        run.log_records = logs.records
        yield run
    finally:
        await servers.close()
        await sandbox.stop()


@pytest_asyncio.fixture(scope="module")
async def seed_run(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SeedRun]:
    if not redis_server.is_running:
        redis_server.start()
    flush = redis_server.client()
    try:
        flush.flushall()
    finally:
        flush.close()
    tracing = Tracing()
    try:
        async with recorded_seed_run(
            Servers(redis_server.url, tracing), tmp_path_factory.mktemp("seed")
        ) as run:
            yield run
    finally:
        tracing.shutdown()


def test_profile_reaches_the_audience(seed_run: SeedRun) -> None:
    assert seed_run.profile_badges == ["cart_abandoner", "vip"]
    assert seed_run.audience_size == 1
    kinds = [e.kind for e in seed_run.trace_entries]
    assert kinds.count(trace_pb2.TRACE_ENTRY_KIND_VISIT_ENDED) == 2
    assert trace_pb2.TRACE_ENTRY_KIND_AUDIENCE_JOINED in kinds
    assert seed_run.trace_entries[-1].details["action_id"].string_value == SEED_ACTION


def test_track_user_arrives_once_with_the_mapped_values(seed_run: SeedRun) -> None:
    [request] = seed_run.track_requests
    assert request.status == 201
    body = request.body
    assert body["attributes"] == [
        {"external_id": CUSTOMER, "lifetime_order_value": 560, "vip": True}
    ]
    [event] = body["events"]
    assert (event["external_id"], event["name"]) == (CUSTOMER, "vip_cart_abandoner")
    assert "purchases" not in body or not body["purchases"]
    assert seed_run.user_attributes["lifetime_order_value"] == 560
    assert seed_run.user_attributes["vip"] is True
    assert seed_run.user_events == ["vip_cart_abandoner"]
    status = seed_run.action_status
    assert status.state == action_pb2.ACTION_STATE_DELIVERED
    assert (status.action_id, status.visitor_id) == (SEED_ACTION, VISITOR)
    assert status.last_http_status == 201


def test_the_visitors_trace_shows_the_delivery(seed_run: SeedRun) -> None:
    entry = seed_run.delivered_entry
    assert entry is not None
    assert entry.kind == trace_pb2.TRACE_ENTRY_KIND_ACTION_DELIVERED
    assert entry.details["idempotency_key"].string_value == seed_run.fired_key
    assert entry.details["connector_id"].string_value == "braze"
    assert "braze_vip_cart_abandoner" in entry.message


def test_a_further_event_does_not_send_it_again(seed_run: SeedRun) -> None:
    assert [r.seq for r in seed_run.track_requests_at_end] == [
        r.seq for r in seed_run.track_requests
    ]
    deletes = [r for r in seed_run.sandbox.requests if r.path == "/users/delete"]
    assert [r.body for r in deletes] == [{"external_ids": [CUSTOMER]}]


def test_braze_request_continues_the_trace_that_carried_the_action(seed_run: SeedRun) -> None:
    # The action fired when the visit ended (the sweeper, not an RPC). Today it carries no
    # trace context of its own, so the dispatch service gives it the context of the
    # SubmitActions call that accepted it, and the chain is
    #   forwarder SubmitActions CLIENT (profile) → child: SubmitActions SERVER (dispatch)
    #   → child: "braze POST /users/track" (also *linked* to that same context)
    #   → child: HTTP CLIENT span = the traceparent the sandbox received.
    # Visit-end actions carry the context of the visitor's latest TrackEvent, so the parent
    # is that TrackEvent SERVER span (see the test below).
    exporter = seed_run.tracing.exporter
    [request] = seed_run.track_requests
    braze = only(find_spans(exporter, lambda s: s.name == BRAZE_TRACK_SPAN), "Braze request")
    http = only(
        find_spans(
            exporter,
            lambda s: (
                s.kind is SpanKind.CLIENT
                and s.parent is not None
                and s.parent.span_id == braze.context.span_id
            ),
        ),
        "HTTP client span",
    )
    assert request.traceparent == traceparent_of(http)
    assert http.context.trace_id == braze.context.trace_id
    assert braze.parent is not None
    [link] = braze.links
    assert (link.context.trace_id, link.context.span_id) == (
        braze.parent.trace_id,
        braze.parent.span_id,
    )
    assert (link.attributes or {}).get("crowd.idempotency_key") == seed_run.fired_key
    parent_id = braze.parent.span_id
    parent = only(
        find_spans(exporter, lambda s: s.context.span_id == parent_id),
        "parent of the Braze request span",
    )
    assert is_server_span(parent, "SubmitActions") or is_server_span(parent, "TrackEvent")


def test_seed_braze_request_is_in_a_callers_track_event_trace(seed_run: SeedRun) -> None:
    braze = only(
        find_spans(seed_run.tracing.exporter, lambda s: s.name == BRAZE_TRACK_SPAN),
        "Braze request",
    )
    caller_traces = {span.get_span_context().trace_id for span in seed_run.caller.root_spans}
    assert braze.context.trace_id in caller_traces


def test_keys_appear_in_no_span_and_no_log_record(seed_run: SeedRun) -> None:
    spans = seed_run.tracing.exporter.get_finished_spans()
    secrets = [ADMIN_KEY, DISPATCH_KEY, BRAZE_KEY]
    assert len(spans) > 10 and len(seed_run.log_records) > 0
    assert secrets_in_spans(spans, secrets) == []
    assert secrets_in_logs(seed_run.log_records, secrets) == []
    [request] = seed_run.track_requests
    assert request.credential == fingerprint(BRAZE_KEY)
