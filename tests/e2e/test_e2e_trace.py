"""One trace from the caller's TrackEvent to the HTTP request Braze received (issue 4 §6).

An action fired *during* an event (the audience ``vips`` joined by the purchase that crosses
500) carries the trace context of that TrackEvent through the outbox, SubmitActions and the
dispatch queue, so the request to Braze continues the caller's trace:

    caller "checkout purchase"                 (test, root span)
      └ child: TrackEvent CLIENT span          (caller's gRPC client interceptor)
          └ child: TrackEvent SERVER span      (profile service; its context is copied
              ┊                                  into the fired action's trace_context)
              ┊ carried in the action: outbox → forwarder → SubmitActions → Redis queue
              └ child: "braze POST /users/track"  (dispatch worker; parent = the first
                  │                               action's context, and one *link* per
                  │                               carried action's context)
                  └ child: HTTP "POST" CLIENT span (aiohttp instrumentation), whose
                                                  context is the traceparent Braze receives

The forwarder's SubmitActions call (CLIENT span in the profile service, SERVER span in the
dispatch service) runs in the forwarder's own trace: it carries many actions from many
traces at once, so it is not part of any one of them; the action's own trace context is what
crosses that hop.
"""

from __future__ import annotations

import logging

import pytest
from opentelemetry.trace import SpanKind, format_trace_id

from braze_sandbox import fingerprint
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from tests.e2e.conftest import Stack
from tests.e2e.tracing import (
    BRAZE_DELETE_SPAN,
    BRAZE_TRACK_SPAN,
    TracedCaller,
    find_spans,
    is_server_span,
    only,
    service_of,
    traceparent_of,
    wait_for_span,
)
from tests.profile_api.helpers import (
    ADMIN_KEY,
    BRAZE_KEY,
    DISPATCH_KEY,
    secrets_in_logs,
    secrets_in_spans,
    wait_for,
)
from tests.profile_api.shop import DELETE_ACTION, VIP_ACTION, shop_definitions


async def test_one_trace_from_track_event_to_the_braze_request(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    exporter = stack.tracing.exporter
    await stack.client.publish_definitions(shop_definitions())
    caller = TracedCaller(stack.profile.address, ADMIN_KEY, stack.tracing.provider("shop-backend"))
    try:
        await caller.track("traced-shopper", "page_view", {"customer_id": "cust-traced"})
        result = await caller.track("traced-shopper", "purchase", {"order_total": 750.0})
    finally:
        await caller.close()
    [fired] = result.actions_fired
    assert fired.action_id == VIP_ACTION

    sandbox = stack.sandbox
    await sandbox.wait_until(
        lambda: any(r.path == "/users/track" for r in sandbox.requests), timeout=20
    )
    braze = await wait_for_span(exporter, lambda s: s.name == BRAZE_TRACK_SPAN, "Braze request")
    [received] = [r for r in sandbox.requests if r.path == "/users/track"]
    assert received.status == 201
    assert received.body["attributes"] == [
        {"external_id": "cust-traced", "lifetime_order_value": 750}
    ]

    root = caller.root_spans[-1]  # "checkout purchase"
    trace_id = root.get_span_context().trace_id
    in_trace = find_spans(exporter, lambda s: s.context.trace_id == trace_id)
    client = only(
        [s for s in in_trace if s.kind is SpanKind.CLIENT and s.name.endswith("/TrackEvent")],
        "TrackEvent client span",
    )
    server = only(
        [s for s in in_trace if is_server_span(s, "TrackEvent")], "TrackEvent server span"
    )
    http = only(
        [s for s in in_trace if s.kind is SpanKind.CLIENT and service_of(s) == "crowd-dispatch"],
        "HTTP client span",
    )
    # Parent → child, hop by hop, all in the caller's trace.
    assert client.parent is not None and client.parent.span_id == root.get_span_context().span_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert service_of(server) == "crowd-profile"
    assert braze.context.trace_id == trace_id
    assert braze.parent is not None and braze.parent.span_id == server.context.span_id
    assert service_of(braze) == "crowd-dispatch"
    assert http.parent is not None and http.parent.span_id == braze.context.span_id
    # What Braze received is the HTTP span itself.
    assert received.traceparent == traceparent_of(http)
    # The request span links to the action's context (the TrackEvent server span).
    [link] = braze.links
    assert (link.context.trace_id, link.context.span_id) == (trace_id, server.context.span_id)
    assert (link.attributes or {}).get("crowd.idempotency_key") == fired.idempotency_key
    attributes = dict(braze.attributes or {})
    assert attributes["braze.endpoint"] == "/users/track"
    assert attributes["braze.batch.actions"] == 1
    assert attributes["http.response.status_code"] == 201

    # The dispatch service accepted it (from the forwarder's SubmitActions) and delivered it.
    submits = find_spans(exporter, lambda s: is_server_span(s, "SubmitActions"))
    assert submits and all(service_of(s) == "crowd-dispatch" for s in submits)
    async with CrowdClient("", stack.dispatch.address, api_key=DISPATCH_KEY) as dispatch:
        status = await dispatch.get_action(fired.idempotency_key)
    assert status.state == action_pb2.ACTION_STATE_DELIVERED
    assert status.action_id == VIP_ACTION and status.visitor_id == "traced-shopper"

    # The Braze key was used (the sandbox keeps only its fingerprint) and leaked nowhere.
    assert received.credential == fingerprint(BRAZE_KEY)
    assert BRAZE_KEY not in repr(received.headers)
    secrets = [ADMIN_KEY, DISPATCH_KEY, BRAZE_KEY]
    assert secrets_in_spans(exporter.get_finished_spans(), secrets) == []
    assert caplog.records
    assert secrets_in_logs(caplog.records, secrets) == []


async def test_event_feed_action_continues_the_trace_to_the_delete_request(stack: Stack) -> None:
    # The seed's own event-fed action (account_deleted → Braze Delete User) takes the same path.
    exporter = stack.tracing.exporter
    await stack.client.publish_definitions(shop_definitions())
    caller = TracedCaller(stack.profile.address, ADMIN_KEY, stack.tracing.provider("backend"))
    try:
        await caller.track("leaving", "page_view", {"customer_id": "cust-leaving"})
        result = await caller.track("leaving", "account_deleted")
    finally:
        await caller.close()
    assert [a.action_id for a in result.actions_fired] == [DELETE_ACTION]

    sandbox = stack.sandbox
    await sandbox.wait_until(
        lambda: any(r.path == "/users/delete" for r in sandbox.requests), timeout=20
    )
    [received] = [r for r in sandbox.requests if r.path == "/users/delete"]
    assert received.body == {"external_ids": ["cust-leaving"]}
    braze = await wait_for_span(exporter, lambda s: s.name == BRAZE_DELETE_SPAN, "delete request")
    trace_id = caller.root_spans[-1].get_span_context().trace_id
    assert format_trace_id(braze.context.trace_id) == format_trace_id(trace_id)
    server = only(
        find_spans(
            exporter,
            lambda s: s.context.trace_id == trace_id and is_server_span(s, "TrackEvent"),
        ),
        "TrackEvent server span",
    )
    assert braze.parent is not None and braze.parent.span_id == server.context.span_id
    [http] = find_spans(
        exporter,
        lambda s: (
            s.kind is SpanKind.CLIENT
            and s.parent is not None
            and s.parent.span_id == braze.context.span_id
        ),
    )
    assert received.traceparent == traceparent_of(http)


async def test_unrelated_requests_do_not_join_the_callers_trace(stack: Stack) -> None:
    # Two callers' actions: each Braze request continues its own caller's trace only.
    exporter = stack.tracing.exporter
    await stack.client.publish_definitions(shop_definitions())
    caller = TracedCaller(stack.profile.address, ADMIN_KEY, stack.tracing.provider("backend"))
    try:
        for visitor in ("first", "second"):
            await caller.track(
                visitor, "purchase", {"order_total": 900.0, "customer_id": f"cust-{visitor}"}
            )
    finally:
        await caller.close()

    caller_traces = {s.get_span_context().trace_id for s in caller.root_spans}

    async def linked_traces() -> set[int]:
        spans = find_spans(exporter, lambda s: s.name == BRAZE_TRACK_SPAN)
        linked = {link.context.trace_id for s in spans for link in s.links}
        return linked if linked >= caller_traces else set()

    # Whether batched together or not, every caller's trace is reached (as parent or link),
    # and no request span joins a trace other than its actions'.
    assert await wait_for(linked_traces, "Braze requests linking both callers") == caller_traces
    braze_spans = find_spans(exporter, lambda s: s.name == BRAZE_TRACK_SPAN)
    assert {s.context.trace_id for s in braze_spans} <= caller_traces
    assert len(stack.sandbox.users) == 2
