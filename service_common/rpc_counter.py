"""Counts the RPCs one server process handled, so each worker can report its share.

With several worker processes on one port (``workers``), the kernel hands each new connection
to one of them; the count each worker logs when it stops ("stopped", field ``rpcs``) shows how
evenly the clients' connections spread. Health checks and reflection are not counted: load
balancers and probes would drown the application's calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

__all__ = ["RpcCounter"]

_NOT_COUNTED = ("/grpc.health.v1.", "/grpc.reflection.")


class RpcCounter(grpc.aio.ServerInterceptor):
    """Server interceptor counting the application RPCs started on this server."""

    def __init__(self) -> None:
        self.count = 0

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if not method.startswith(_NOT_COUNTED):
            self.count += 1
        return await continuation(handler_call_details)
