"""The server interceptor that turns whatever a servicer raises into a rich gRPC status.

A :class:`~service_common.errors.DomainError` is sent as its status (AIP-193 details); a Redis
connection or timeout error becomes ``UNAVAILABLE`` (transient: clients retry); anything else
becomes ``INTERNAL`` with a generic message and an incident id, the traceback logged
server-side and recorded on the span, redacted, and never sent to the caller.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace

from service_common._handlers import Behavior, call_unary, iterate_stream, rewrap_handler
from service_common.errors import (
    STORAGE_OUTAGES,
    DomainError,
    Internal,
    Unavailable,
    abort_with_error,
)
from service_common.logging import redact

__all__ = ["ErrorMappingInterceptor"]

logger = logging.getLogger(__name__)


def _translate(exc: Exception, method: str) -> DomainError:
    """Map an exception a servicer let escape to the error sent to the caller."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, STORAGE_OUTAGES):
        # Redis being down or failing over is transient: UNAVAILABLE tells clients to retry.
        logger.warning("storage unavailable in %s: %s", method, exc)
        return Unavailable("storage is temporarily unavailable", reason="STORAGE_UNAVAILABLE")
    incident = uuid.uuid4().hex
    logger.error(
        "unhandled %s in %s (incident %s)",
        type(exc).__name__,
        method,
        incident,
        exc_info=exc,
        extra={"rpc_method": method, "incident": incident},
    )
    _record_on_span(exc)
    return Internal("internal error", metadata={"incident": incident})


def _record_on_span(exc: Exception) -> None:
    """Add the exception to the active span as a semconv ``exception`` event, redacted.

    The tracing interceptor outside us only ever sees the resulting abort, so without this the
    trace would not say what failed. ``span.record_exception`` is avoided on purpose: it copies
    ``str(exc)`` and the stack trace unredacted.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.add_event(
        "exception",
        {
            "exception.type": type(exc).__qualname__,
            "exception.message": redact(str(exc)),
            "exception.stacktrace": redact("".join(traceback.format_exception(exc))),
        },
    )


def _error_for(
    exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> DomainError | None:
    """The error to abort with for ``exc``, or ``None`` when ``exc`` must propagate as is."""
    if isinstance(exc, grpc.aio.BaseError) or context.done():
        # AbortError from the servicer's own context.abort (grpc asserts it gets the very same
        # object back), or grpc's own usage/server-stopped errors: not ours to translate.
        return None
    error = _translate(exc, method)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("error.type", error.reason)
    return error


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Server interceptor turning exceptions raised by servicers into rich gRPC statuses.

    Works for all four RPC kinds; for streamed responses, messages yielded before the error
    still reach the client, then the stream ends with the error status.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def unary(behavior: Behavior) -> Callable[..., Awaitable[Any]]:
            async def mapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    return await call_unary(behavior, request, context)
                except Exception as exc:
                    error = _error_for(exc, context, method)
                    if error is None:
                        raise
                # Abort outside the ``except`` block: an AbortError raised inside it would
                # chain the original exception, and the tracing interceptor records the
                # AbortError's full traceback (original message included) on the span.
                await abort_with_error(context, error)

            return mapped

        def stream(behavior: Behavior) -> Callable[..., AsyncIterator[Any]]:
            async def mapped(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    async for response in iterate_stream(behavior, request, context):
                        yield response
                    return
                except Exception as exc:
                    error = _error_for(exc, context, method)
                    if error is None:
                        raise
                await abort_with_error(context, error)  # outside ``except``: see above

            return mapped

        return rewrap_handler(handler, unary_response=unary, stream_response=stream)
