"""Tracing: the request span links every carried action, the HTTP span's context reaches
Braze as traceparent, and the API key appears in no span and no log line."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from braze_sandbox import BrazeSandbox
from dispatch_service.braze import Outcome, PendingAction
from tests.braze.conftest import SandboxFactory, StackFactory
from tests.braze.helpers import API_KEY, track_action

TRACES = [
    ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
    ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
    ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"),
]


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def request_span(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    [span] = [s for s in spans if s.name == "braze POST /users/track"]
    return span


def text_of(span: ReadableSpan) -> str:
    """Everything a span exports that could carry a secret."""
    parts = [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
    parts += [repr(dict(e.attributes or {})) + e.name for e in span.events]
    parts += [repr(dict(link.attributes or {})) for link in span.links]
    parts += [repr(dict(span.resource.attributes))]
    return "\n".join(parts)


async def test_request_span_links_actions_and_http_span_reaches_braze(
    sandbox: BrazeSandbox, make_stack: StackFactory, exporter: InMemorySpanExporter
) -> None:
    stack = await make_stack(sandbox.url)
    actions = [
        PendingAction(f"k{i}", track_action(f"u{i}", {"a": i}, traceparent=traceparent(*ids)))
        for i, ids in enumerate(TRACES)
    ]
    actions.append(PendingAction("k-untraced", track_action("u9", {"a": 9})))
    results = await stack.delivery.deliver(actions)
    assert {r.outcome for r in results} == {Outcome.DELIVERED}

    spans = exporter.get_finished_spans()
    batch = request_span(spans)
    [http] = [s for s in spans if s.kind is SpanKind.CLIENT]
    # The HTTP client span is the child of the request span, and is what Braze received.
    assert http.parent is not None and http.parent.span_id == batch.context.span_id
    [received] = sandbox.requests
    assert received.traceparent == traceparent(
        format_trace_id(http.context.trace_id), format_span_id(http.context.span_id)
    )
    # Links to every traced action; the first action's trace is continued.
    linked = {
        (format_trace_id(link.context.trace_id), format_span_id(link.context.span_id))
        for link in batch.links
    }
    assert linked == set(TRACES)
    keys = {(link.attributes or {}).get("crowd.idempotency_key") for link in batch.links}
    assert keys == {"k0", "k1", "k2"}
    assert format_trace_id(batch.context.trace_id) == TRACES[0][0]
    assert batch.parent is not None and format_span_id(batch.parent.span_id) == TRACES[0][1]
    attributes = dict(batch.attributes or {})
    assert attributes["braze.connector_id"] == "braze-test"
    assert attributes["braze.endpoint"] == "/users/track"
    assert attributes["braze.batch.actions"] == 4
    assert attributes["braze.batch.objects"] == 4
    assert attributes["braze.attempt"] == 1
    assert attributes["http.response.status_code"] == 201
    assert attributes["braze.results.delivered"] == 4


async def test_the_api_key_appears_in_no_span_and_no_log(
    make_sandbox: SandboxFactory,
    make_stack: StackFactory,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = await make_sandbox()
    stack = await make_stack(sandbox.url)
    await stack.delivery.deliver([PendingAction("ok", track_action("u1", {"a": 1}))])
    sandbox.faults.set(down=True)
    await stack.delivery.deliver([PendingAction("down", track_action("u1", {"a": 2}))])
    sandbox.faults.set(down=False)
    refusing = await make_sandbox(api_keys={"other": frozenset({"users.track"})})
    denied = await make_stack(refusing.url)
    [result] = await denied.delivery.deliver([PendingAction("no", track_action("u1", {"a": 4}))])
    assert result.http_status == 401
    closed = await make_stack("http://127.0.0.1:9")
    await closed.delivery.deliver([PendingAction("refused", track_action("u1", {"a": 3}))])

    spans = exporter.get_finished_spans()
    assert len([s for s in spans if s.name.startswith("braze POST")]) == 4
    for span in spans:
        assert API_KEY not in text_of(span)
    assert API_KEY not in caplog.text
    assert "Braze answered 503" in caplog.text  # the failures were logged, without the key
    # The key did reach Braze, in the header only (the sandbox stores it redacted).
    assert sandbox.requests[0].headers["authorization"] == "[REDACTED]"


async def test_failed_request_span_has_error_status_and_attempt(
    sandbox: BrazeSandbox, make_stack: StackFactory, exporter: InMemorySpanExporter
) -> None:
    stack = await make_stack(sandbox.url)
    sandbox.faults.set(down=True)
    await stack.delivery.deliver([PendingAction("k", track_action("u1", {"a": 1}), attempt=3)])
    batch = request_span(exporter.get_finished_spans())
    assert batch.status.status_code.name == "ERROR"
    assert (batch.attributes or {})["braze.attempt"] == 3
    assert (batch.attributes or {})["http.response.status_code"] == 503
    assert (batch.attributes or {})["braze.results.retry"] == 1
    assert batch.parent is None  # no trace context on the action: a new trace
