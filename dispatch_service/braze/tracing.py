"""Trace context of carried actions: the parent and the links of a Braze request span.

A request to Braze carries many actions, each with the trace context of the operation that
fired it. The request span *links* to every one of them, and is the *child* of the first: a
single-action request (the common case at low volume) thus continues the caller's trace all the
way to the HTTP request Braze receives, and a batch still points at every trace it serves.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from crowd.dispatch.v1.action_pb2 import Action

_PROPAGATOR = TraceContextTextMapPropagator()
#: Attribute on each link naming the action it stands for.
LINK_KEY_ATTRIBUTE = "crowd.idempotency_key"


def action_span_context(action: Action) -> SpanContext | None:
    """The W3C span context an action carries, or ``None`` if it has none (or a bad one)."""
    carried = action.trace_context
    if not carried.traceparent:
        return None
    carrier = {"traceparent": carried.traceparent}
    if carried.tracestate:
        carrier["tracestate"] = carried.tracestate
    context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return context if context.is_valid else None


def parent_and_links(
    actions: Sequence[tuple[str, Action]],
) -> tuple[Context | None, list[Link]]:
    """(parent context, links) for a span serving ``actions`` (idempotency key, action).

    The parent is the first action's context (``None``: start a new trace); links point at
    every distinct action context, each tagged with the action's idempotency key.
    """
    parent: Context | None = None
    links: list[Link] = []
    seen: set[tuple[int, int]] = set()
    # Actions submitted in one request share their context: each distinct one is parsed once.
    parsed: dict[tuple[str, str], SpanContext | None] = {}
    for key, action in actions:
        carried = action.trace_context
        text = (carried.traceparent, carried.tracestate)
        if text in parsed:
            context = parsed[text]
        else:
            context = parsed[text] = action_span_context(action)
        if context is None:
            continue
        if parent is None:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(context))
        ident = (context.trace_id, context.span_id)
        if ident in seen:
            continue
        seen.add(ident)
        links.append(Link(context, {LINK_KEY_ATTRIBUTE: key}))
    return parent, links
