"""Spans for the steps inside an RPC (engine steps, Redis round trips), in the RPC's provider.

The server's :class:`StepTracerInterceptor` puts its tracer in a context variable for the
duration of each RPC, so deep code (the profile store) can open child spans of the RPC span
without every constructor taking a tracer. Outside an RPC (background loops), or when the
RPC's span is not sampled, :func:`step_span` costs one context-variable read and no span.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from service_common._handlers import call_unary, iterate_stream, rewrap_handler
from service_common.redis_timing import redis_step

__all__ = ["StepTracerInterceptor", "redis_span", "step_span"]

_tracer: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "crowd_step_tracer", default=None
)


@contextmanager
def step_span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[Span]:
    """A child span of the current (RPC) span; a no-op span when nothing would record it."""
    tracer = _tracer.get()
    if tracer is None or not trace.get_current_span().is_recording():
        yield INVALID_SPAN
        return
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


@contextmanager
def redis_span(operation: str, **attributes: AttributeValue) -> Iterator[Span]:
    """A CLIENT span for one Redis round trip (``db.system`` redis; no keys or values).

    The round trips inside are also timed under ``operation`` (see
    :func:`service_common.redis_timing.redis_step`), span or not.
    """
    tracer = _tracer.get()
    if tracer is None or not trace.get_current_span().is_recording():
        with redis_step(operation):
            yield INVALID_SPAN
        return
    with (
        redis_step(operation),
        tracer.start_as_current_span(
            f"redis {operation}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": "redis", "db.operation": operation, **attributes},
        ) as span,
    ):
        yield span


class StepTracerInterceptor(grpc.aio.ServerInterceptor):
    """Makes ``provider``'s tracer the step tracer while each RPC of this server runs."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("crowd.steps")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        tracer = self._tracer

        def unary(behavior: Any) -> Any:
            async def wrapped(request: Any, context: Any) -> Any:
                token = _tracer.set(tracer)
                try:
                    return await call_unary(behavior, request, context)
                finally:
                    _tracer.reset(token)

            return wrapped

        def stream(behavior: Any) -> Any:
            async def wrapped(request: Any, context: Any) -> AsyncIterator[Any]:
                token = _tracer.set(tracer)
                try:
                    async for response in iterate_stream(behavior, request, context):
                        yield response
                finally:
                    # A stream the client cancelled is closed by the event loop's async-gen
                    # finaliser, in another context: there is nothing of ours to restore there.
                    with contextlib.suppress(ValueError):
                        _tracer.reset(token)

            return wrapped

        return rewrap_handler(handler, unary_response=unary, stream_response=stream)
