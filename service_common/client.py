"""Outgoing ``grpc.aio`` channels with the API key and trace context attached.

Used for service-to-service calls (profile → dispatch) and by tests; the client library can use
it too. ``grpc.aio`` insecure channels cannot carry call credentials, so the key is added as
``authorization`` metadata by an interceptor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio
from opentelemetry.sdk.trace import TracerProvider

from crowd.channels import OWN_CONNECTION
from service_common.logging import register_secret
from service_common.telemetry import client_interceptors

__all__ = ["auth_metadata", "create_channel", "create_channels"]


def auth_metadata(api_key: str) -> tuple[tuple[str, str]]:
    """Per-call metadata carrying ``api_key``: pass as ``stub.Method(req, metadata=...)``."""
    return (("authorization", f"Bearer {api_key}"),)


class _AuthMetadata:
    """Adds ``authorization`` to each call unless the call already sets its own."""

    def __init__(self, api_key: str) -> None:
        self._value = f"Bearer {api_key}"

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
        if metadata.get("authorization") is None:
            metadata.add("authorization", self._value)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor object under the first RPC kind it is an instance of, so one
# class per kind is needed.
class _UnaryUnaryAuth(_AuthMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStreamAuth(_AuthMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnaryAuth(_AuthMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStreamAuth(_AuthMetadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def create_channel(
    target: str,
    *,
    api_key: str | None = None,
    tracer_provider: TracerProvider | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """Open an insecure ``grpc.aio`` channel to ``target`` (``host:port``).

    Args:
        target: Server address.
        api_key: Sent as ``authorization: Bearer <key>`` on every call (registered with the
            log redactor).
        tracer_provider: When given, every call gets a CLIENT span and ``traceparent`` so the
            server's span joins the caller's trace.
        options: Channel arguments, e.g. ``[("grpc.max_receive_message_length", 16 << 20)]``.
    """
    interceptors: list[grpc.aio.ClientInterceptor] = []
    if tracer_provider is not None:
        # Tracing first (outermost): its span then covers the whole call as sent.
        interceptors.extend(client_interceptors(tracer_provider))
    if api_key is not None:
        register_secret(api_key)
        interceptors += [
            _UnaryUnaryAuth(api_key),
            _UnaryStreamAuth(api_key),
            _StreamUnaryAuth(api_key),
            _StreamStreamAuth(api_key),
        ]
    return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)


def create_channels(
    target: str,
    count: int,
    *,
    api_key: str | None = None,
    tracer_provider: TracerProvider | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> list[grpc.aio.Channel]:
    """``count`` channels to ``target``, each on its own connection (see `create_channel`).

    A server with several worker processes on one port, or replicas behind one address,
    shares load per connection: a caller that rotates over these channels reaches several of
    them instead of one (rotate with `crowd.channels.ChannelPool`).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    return [
        create_channel(
            target,
            api_key=api_key,
            tracer_provider=tracer_provider,
            options=[OWN_CONNECTION, *options],
        )
        for _ in range(count)
    ]
