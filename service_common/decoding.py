"""Refuse requests that do not decode, nest too deeply or hold undefined enum values.

grpc.aio decodes each request message before the servicer sees it, and a ``DecodeError``
raised there surfaces as ``UNKNOWN`` (unary requests) or escapes from the servicer's request
iterator as an unexpected exception (``INTERNAL`` with an incident log, for streams).
:class:`RequestDecodingInterceptor` gives every method a request deserializer that never
raises: a message that is not valid protobuf, nests deeper than protobuf's recursion limit,
or holds an enum number its schema does not define becomes a ``_Refused`` marker. The
wrapped behaviour turns the marker into :class:`~service_common.errors.InvalidArgument`
before the servicer runs (single requests) or when the servicer's request iterator reaches it
(streamed requests; messages before it were already handled). The error-mapping interceptor,
outside this one, sends the status; one WARNING line per cause (reason) is logged at most
once a minute, naming the method of that request, without a stack trace.

Servicers must read streamed requests by iterating ``request_iterator`` (not
``context.read()``), which every servicer of this project does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from service_common._handlers import Behavior, call_unary, iterate_stream, rewrap_handler
from service_common.enum_check import undefined_enum_values
from service_common.errors import FieldViolation, InvalidArgument
from service_common.log_throttle import LogThrottle

__all__ = ["RequestDecodingInterceptor"]

logger = logging.getLogger(__name__)

#: Seconds between two WARNING lines about refused requests of the same reason: a
#: client replaying a bad request cannot flood the log, and an operator still sees that (and
#: how often) it happens.
WARNING_INTERVAL_S = 60.0

UNDECODABLE = "REQUEST_UNDECODABLE"
TOO_DEEP = "REQUEST_TOO_DEEP"
UNDEFINED_ENUM = "ENUM_VALUE_UNDEFINED"

_CAUSES = {
    UNDECODABLE: "not valid protobuf",
    TOO_DEEP: "nested too deeply",
    UNDEFINED_ENUM: "undefined enum value",
}


@dataclass(frozen=True, slots=True)
class _Refused:
    """Stands in for a request message that must not reach the servicer."""

    reason: str
    violations: tuple[FieldViolation, ...]

    def error(self, stream_index: int | None) -> InvalidArgument:
        """The error to answer with (``stream_index``: position of the message in a stream)."""
        where = "request" if stream_index is None else f"stream message {stream_index}"
        if self.reason == UNDECODABLE:
            message = f"{where} is not a valid protobuf encoding of the method's request type"
        elif self.reason == TOO_DEEP:
            message = f"{where} nests messages too deeply"
        else:
            first = self.violations[0]
            more = len(self.violations) - 1
            message = f"invalid {where}: {first.field}: {first.description}" + (
                f" (and {more} more)" if more else ""
            )
        return InvalidArgument(self.violations, message, reason=self.reason)


def _refuse_undecodable(exc: Exception) -> _Refused:
    # upb reports its recursion limit as a DecodeError naming MaxDepth; the pure-Python
    # parser raises RecursionError or a DecodeError mentioning recursion.
    text = str(exc)
    if isinstance(exc, RecursionError) or "MaxDepth" in text or "recursion" in text.lower():
        return _Refused(
            TOO_DEEP, (FieldViolation("", "nests messages deeper than protobuf's limit (100)"),)
        )
    return _Refused(
        UNDECODABLE, (FieldViolation("", "is not a valid protobuf encoding of the request"),)
    )


def _checking_deserializer(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``deserialize``, returning a ``_Refused`` marker instead of raising or accepting junk."""

    def decode(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception as exc:  # DecodeError above all; any failure to decode is the input's
            return _refuse_undecodable(exc)
        if isinstance(message, Message):
            violations = undefined_enum_values(message)
            if violations:
                return _Refused(UNDEFINED_ENUM, tuple(violations))
        return message

    return decode


async def _checked_stream(
    requests: AsyncIterator[Any], refuse: Callable[[_Refused, int | None], InvalidArgument]
) -> AsyncIterator[Any]:
    index = 0
    async for request in requests:
        if isinstance(request, _Refused):
            raise refuse(request, index)
        yield request
        index += 1


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Answers undecodable or enum-invalid requests with ``INVALID_ARGUMENT``, for all RPC kinds.

    Must sit inside :class:`~service_common.error_mapping.ErrorMappingInterceptor`, which turns the
    raised :class:`~service_common.errors.InvalidArgument` into the status. Each instance
    (one per server) throttles its own WARNING lines.
    """

    def __init__(self) -> None:
        self._throttle = LogThrottle(logger, interval_s=WARNING_INTERVAL_S)

    def _refusal(self, refused: _Refused, method: str, stream_index: int | None) -> InvalidArgument:
        self._throttle.warning(
            refused.reason,
            "refused a request to %s: %s",
            method,
            _CAUSES.get(refused.reason, refused.reason),
        )
        return refused.error(stream_index)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler  # unknown method, or one taking raw bytes: nothing to decode
        method = handler_call_details.method
        streamed_requests = handler.request_streaming

        def refuse(refused: _Refused, stream_index: int | None) -> InvalidArgument:
            return self._refusal(refused, method, stream_index)

        def checked(request: Any) -> Any:
            if streamed_requests:
                return _checked_stream(request, refuse)
            if isinstance(request, _Refused):
                raise refuse(request, None)
            return request

        def unary(behavior: Behavior) -> Callable[..., Awaitable[Any]]:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await call_unary(behavior, checked(request), context)

            return run

        def stream(behavior: Behavior) -> Callable[..., AsyncIterator[Any]]:
            async def run(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                async for response in iterate_stream(behavior, checked(request), context):
                    yield response

            return run

        return rewrap_handler(
            handler,
            unary_response=unary,
            stream_response=stream,
            request_deserializer=_checking_deserializer(handler.request_deserializer),
        )
