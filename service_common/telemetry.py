"""OpenTelemetry tracing for servers and channels, one ``TracerProvider`` per server.

Servers and channels get their provider passed explicitly instead of using the global one, so
several servers in one process (tests, or both services in one dev process) each trace into
their own provider and exporters.

What the gRPC instrumentation (opentelemetry-instrumentation-grpc 0.66b1) puts on spans, read
from its source: ``rpc.system``, ``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``,
``rpc.user_agent`` and the peer address; incoming metadata is only handed to the W3C propagator
(``traceparent``/``baggage``). So the ``authorization`` header is never recorded; a test keeps
it that way. Status descriptions come from our error messages, which never contain keys.
"""

from __future__ import annotations

import os
from typing import Any

import grpc.aio
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

__all__ = [
    "client_interceptors",
    "exports_spans",
    "server_interceptor",
    "setup_tracing",
    "shutdown_tracing",
]

_OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def setup_tracing(
    service_name: str, *, span_exporter: SpanExporter | None = None
) -> TracerProvider:
    """Create a tracer provider for one service.

    Spans go to an OTLP/gRPC collector (batched) when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set; the exporter reads its other ``OTEL_*``
    variables itself. Without either, spans are created (trace ids still reach logs and
    downstream calls) but not exported.

    Args:
        service_name: ``service.name`` resource attribute (``OTEL_SERVICE_NAME`` overrides it,
            as the SDK's ``Resource.create`` does).
        span_exporter: An extra exporter fed synchronously (``SimpleSpanProcessor``), e.g. an
            ``InMemorySpanExporter`` in tests, so spans are visible as soon as they end.
    """
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if any(os.environ.get(name) for name in _OTLP_ENDPOINT_ENVS):
        # Imported lazily: the exporter pulls in its own grpc channel machinery.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


def exports_spans(provider: TracerProvider) -> bool:
    """Whether ``provider`` sends its spans anywhere (has a span processor).

    Without one, spans only carry trace ids to logs and downstream calls, so finer spans
    (engine steps, Redis round trips) would be pure cost. The SDK has no public accessor;
    if its internals change, assume it exports.
    """
    processors = getattr(
        getattr(provider, "_active_span_processor", None), "_span_processors", None
    )
    return True if processors is None else bool(processors)


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush pending spans and stop the provider's processors. Blocks; call it via
    ``asyncio.to_thread`` from async code."""
    provider.force_flush()
    provider.shutdown()


def server_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    """A ``grpc.aio`` server interceptor creating a SERVER span per RPC in ``provider``.

    It continues the caller's trace from ``traceparent`` metadata. Put it first in the
    interceptor list so its span covers auth and error mapping.
    """
    # The instrumentation package is untyped (no py.typed).
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call, unused-ignore]
        tracer_provider=provider
    )
    return interceptor


def client_interceptors(provider: TracerProvider) -> list[Any]:
    """``grpc.aio`` client interceptors (one per RPC kind) creating CLIENT spans in ``provider``
    and injecting ``traceparent`` into outgoing metadata. Pass them to
    ``grpc.aio.insecure_channel(..., interceptors=...)``."""
    interceptors: list[Any] = aio_client_interceptors(  # type: ignore[no-untyped-call, unused-ignore]
        tracer_provider=provider
    )
    return interceptors
