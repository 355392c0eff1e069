"""The span tree of a slow event (issue 13 B): caller → TrackEvent → engine steps and their
Redis round trips in the profile service → (the fired action) → the Braze request and its
HTTP call in the dispatch service, all one trace, with counts as attributes and no personal
data."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tests.e2e.conftest import Stack
from tests.e2e.tracing import (
    BRAZE_TRACK_SPAN,
    TracedCaller,
    find_spans,
    is_server_span,
    only,
    service_of,
    wait_for_span,
)
from tests.profile_api.helpers import ADMIN_KEY
from tests.profile_api.shop import shop_definitions


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def child(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> ReadableSpan:
    return only(
        [s for s in children(spans, parent) if s.name == name], f"{name} under {parent.name}"
    )


async def test_engine_and_redis_spans_sit_between_the_rpc_and_the_braze_request(
    stack: Stack,
) -> None:
    exporter = stack.tracing.exporter
    await stack.client.publish_definitions(shop_definitions())
    caller = TracedCaller(stack.profile.address, ADMIN_KEY, stack.tracing.provider("shop"))
    try:
        await caller.track("span-shopper", "page_view", {"customer_id": "cust-spans"})
        result = await caller.track("span-shopper", "purchase", {"order_total": 750.0})
    finally:
        await caller.close()
    assert len(result.actions_fired) == 1
    braze = await wait_for_span(exporter, lambda s: s.name == BRAZE_TRACK_SPAN, "Braze request")

    trace_id = caller.root_spans[-1].get_span_context().trace_id
    spans = find_spans(exporter, lambda s: s.context.trace_id == trace_id)
    server = only([s for s in spans if is_server_span(s, "TrackEvent")], "TrackEvent server")
    apply = child(spans, server, "engine.apply")
    load = child(spans, apply, "engine.load")
    evaluate = child(spans, apply, "engine.evaluate")
    commit = child(spans, apply, "engine.commit")
    read = child(spans, load, "redis read")
    write = child(spans, commit, "redis commit")
    for span in (apply, load, evaluate, commit, read, write):
        assert service_of(span) == "crowd-profile"
    assert read.kind is SpanKind.CLIENT and write.kind is SpanKind.CLIENT
    assert dict(read.attributes or {})["db.system"] == "redis"
    # Steps run in order inside the RPC.
    assert load.end_time is not None and evaluate.start_time is not None
    assert load.end_time <= evaluate.start_time
    assert evaluate.end_time is not None and commit.start_time is not None
    assert evaluate.end_time <= commit.start_time

    attributes = dict(apply.attributes or {})
    assert attributes["crowd.event_count"] == 1
    assert attributes["crowd.audiences_changed"] == 1  # joined vips
    assert attributes["crowd.actions_fired"] == 1
    assert dict(commit.attributes or {})["crowd.conflicts"] == 0

    # The action's request to Braze continues the same trace, and its HTTP call under it.
    assert braze.context.trace_id == trace_id and service_of(braze) == "crowd-dispatch"
    assert braze.parent is not None and braze.parent.span_id == server.context.span_id
    http = only([s for s in children(spans, braze) if s.kind is SpanKind.CLIENT], "Braze HTTP span")
    assert service_of(http) == "crowd-dispatch"

    # No personal data in the step spans: no visitor id, customer id or amount.
    for span in (apply, load, evaluate, commit, read, write):
        text = repr(dict(span.attributes or {}))
        assert "span-shopper" not in text and "cust-spans" not in text and "750" not in text
