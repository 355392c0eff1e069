"""Helpers for rewrapping the behaviour of a ``grpc.RpcMethodHandler``.

A ``grpc.aio`` server interceptor cannot see requests or exceptions itself: it only returns the
handler that will serve the RPC. To act around the call (map exceptions, set a context variable,
refuse the call) it must return a *new* handler of the same kind whose behaviour wraps the
original. This module does that once for all four RPC kinds, so ``errors`` and ``auth`` do not
each carry their own copy of the four-way dispatch.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

#: A server behaviour as grpc stores it: ``(request_or_iterator, context) -> ...``. The result is
#: an awaitable (unary response), an async iterator (async-generator streaming), or ``None`` from
#: a coroutine that writes with ``context.write`` (reader/writer streaming API).
Behavior = Callable[..., Any]

#: A wrapper for behaviours with a single response: it must return a coroutine function.
UnaryResponseWrapper = Callable[[Behavior], Callable[..., Awaitable[Any]]]

#: A wrapper for behaviours with streamed responses: it must return an async generator function.
#: (The OpenTelemetry server interceptor, which sits outside ours, iterates the behaviour it wraps
#: with ``async for``, so a streamed behaviour must be an async generator, never a coroutine.)
StreamResponseWrapper = Callable[[Behavior], Callable[..., AsyncIterator[Any]]]


def rewrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    *,
    unary_response: UnaryResponseWrapper,
    stream_response: StreamResponseWrapper,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """Return a handler of the same kind as ``handler`` with its behaviour wrapped.

    The (de)serializers are kept, so the wrapped handler is wire-compatible with the original,
    unless ``request_deserializer`` replaces the request's.
    """
    deser = request_deserializer or handler.request_deserializer
    ser = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            stream_response(handler.stream_stream), deser, ser
        )
    if handler.request_streaming:
        assert handler.stream_unary is not None
        return grpc.stream_unary_rpc_method_handler(
            unary_response(handler.stream_unary), deser, ser
        )
    if handler.response_streaming:
        assert handler.unary_stream is not None
        return grpc.unary_stream_rpc_method_handler(
            stream_response(handler.unary_stream), deser, ser
        )
    assert handler.unary_unary is not None
    return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), deser, ser)


async def call_unary(behavior: Behavior, request: Any, context: Any) -> Any:
    """Run a single-response behaviour and return its response.

    Servicers of a ``grpc.aio`` server are coroutine functions; a plain function is tolerated
    (its result is returned as is) but then runs on the event loop, so it must not block.
    """
    result = behavior(request, context)
    if inspect.isawaitable(result):
        return await result
    return result


async def iterate_stream(behavior: Behavior, request: Any, context: Any) -> AsyncIterator[Any]:
    """Run a streamed-response behaviour and yield its responses, whatever style it uses.

    grpc.aio accepts three styles for streamed responses: an async generator (yields responses),
    a coroutine using ``context.write`` (yields nothing here, writes go straight out), and a sync
    generator. Normalising them here lets every wrapper be an async generator.
    """
    result = behavior(request, context)
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    elif inspect.isawaitable(result):
        await result
    elif result is not None:
        for response in result:
            yield response
