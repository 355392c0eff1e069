"""Helpers of the end-to-end tests: a traced caller, span lookups and a log capture."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from crowd.client import make_event
from crowd.profile.v1 import event_pb2, profile_service_pb2, profile_service_pb2_grpc
from service_common.client import create_channel

BRAZE_TRACK_SPAN = "braze POST /users/track"
BRAZE_DELETE_SPAN = "braze POST /users/delete"


class TracedCaller:
    """A backend calling TrackEvent inside its own span, over a channel whose client
    interceptors create a CLIENT span and send ``traceparent`` (as a caller's service would)."""

    def __init__(self, target: str, api_key: str, provider: TracerProvider) -> None:
        self._channel = create_channel(target, api_key=api_key, tracer_provider=provider)
        self._stub = profile_service_pb2_grpc.ProfileServiceStub(self._channel)
        self._tracer = trace.get_tracer("crowd.tests.caller", tracer_provider=provider)
        self.root_spans: list[trace.Span] = []

    async def track(
        self, visitor: str, name: str, data: Mapping[str, Any] | None = None
    ) -> event_pb2.EventResult:
        """TrackEvent inside a new root span ``checkout <name>``."""
        with self._tracer.start_as_current_span(f"checkout {name}") as span:
            self.root_spans.append(span)
            response = await self._stub.TrackEvent(
                profile_service_pb2.TrackEventRequest(event=make_event(visitor, name, data)),
                timeout=10,
            )
            return response.result

    async def close(self) -> None:
        await self._channel.close()


def traceparent_of(span: ReadableSpan) -> str:
    """The W3C traceparent naming ``span``, with its trace flags."""
    context = span.context
    ids = f"{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}"
    return f"00-{ids}-{int(context.trace_flags):02x}"


def only(spans: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(spans) == 1, f"expected one {what}, found {len(spans)}: {[s.name for s in spans]}"
    return spans[0]


def find_spans(
    exporter: InMemorySpanExporter, predicate: Callable[[ReadableSpan], bool]
) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if predicate(s)]


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name", ""))


def is_server_span(span: ReadableSpan, method: str) -> bool:
    return span.kind is SpanKind.SERVER and span.name.endswith(f"/{method}")


async def wait_for_span(
    exporter: InMemorySpanExporter,
    predicate: Callable[[ReadableSpan], bool],
    what: str,
    within_s: float = 10.0,
) -> ReadableSpan:
    """Wait until a span matching ``predicate`` has ended (spans end after the work they
    cover, e.g. a request span after the sandbox answered)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        found = find_spans(exporter, predicate)
        if found:
            return only(found, what)
        if loop.time() >= deadline:
            raise AssertionError(f"no {what} span within {within_s}s")
        await asyncio.sleep(0.02)


class RecordList(logging.Handler):
    """Keeps every record that reaches the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capture_logs() -> Iterator[RecordList]:
    """Every log record at DEBUG and above while the block runs (for scopes where pytest's
    function-scoped caplog is not available)."""
    root = logging.getLogger()
    handler = RecordList()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
