"""Raw-bytes calls to every RPC of both services, and a snapshot of everything in Redis.

The hostile-input tests talk to the servers with identity (de)serializers, so they can send
bytes no generated stub would produce, on any RPC kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import redis.asyncio as aioredis
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from crowd.dispatch.v1 import dispatch_service_pb2
from crowd.profile.v1 import definition_service_pb2, profile_service_pb2

SERVICES: dict[str, ServiceDescriptor] = {
    "profile": profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"],
    "definitions": definition_service_pb2.DESCRIPTOR.services_by_name["DefinitionService"],
    "dispatch": dispatch_service_pb2.DESCRIPTOR.services_by_name["DispatchService"],
}

# Anything the fuzzing may get back. RESOURCE_EXHAUSTED must come with a message saying why.
CANONICAL_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)

# What an error message must never show: Python internals.
PYTHON_LEAKS = ("<class", "Traceback", "Error parsing", "DecodeError", "Exception", "__")


@dataclass(frozen=True)
class Method:
    """One RPC: its full path, which server serves it, its kind and its request class."""

    server: str  # "profile" (profile and definition services) or "dispatch"
    path: str
    client_streaming: bool
    server_streaming: bool
    request_class: type[Message]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def all_methods() -> list[Method]:
    """Every RPC of both services."""
    methods = []
    for key, service in SERVICES.items():
        for method in service.methods:
            methods.append(
                Method(
                    server="dispatch" if key == "dispatch" else "profile",
                    path=f"/{service.full_name}/{method.name}",
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                    request_class=GetMessageClass(method.input_type),
                )
            )
    return methods


def method(name: str) -> Method:
    """The RPC called ``name`` (method names are unique across the three services)."""
    [found] = [m for m in all_methods() if m.name == name]
    return found


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """A length-delimited field, encoded by hand (protobuf refuses to build what is too deep)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def deeply_nested_definitions(depth: int) -> bytes:
    """A ValidateDefinitionsRequest whose audience expression is ``negate`` ``depth`` deep."""
    expression = b""
    for _ in range(depth):
        expression = length_delimited(3, expression)  # AudienceExpression.negate
    # AudienceDefinition{id, expression} in request.definitions.audiences[0]
    audience = length_delimited(1, b"deep") + length_delimited(3, expression)
    return length_delimited(1, length_delimited(3, audience))


def nested_groups(depth: int) -> bytes:
    """``depth`` nested unknown groups (field 15): parsed recursively by any message type."""
    return b"\x7b" * depth + b"\x7c" * depth


@dataclass(frozen=True)
class Outcome:
    """How a raw call ended."""

    code: grpc.StatusCode
    details: str
    responses: int
    error: grpc.aio.AioRpcError | None


async def call_raw(
    channel: grpc.aio.Channel,
    rpc: Method,
    messages: Sequence[bytes],
    metadata: Sequence[tuple[str, str]],
    *,
    deadline_s: float | None = None,
) -> Outcome:
    """Call ``rpc`` with ``messages`` as the raw request bytes (exactly one unless streamed).

    ``deadline_s`` bounds live server streams (StreamTrace never ends by itself).
    """
    if not rpc.client_streaming and len(messages) != 1:
        raise ValueError("a single-request RPC takes exactly one message")
    responses = 0
    # Identity (de)serializers: raw bytes in, raw bytes out (the stubs are typed for messages).
    chan: Any = channel
    try:
        if rpc.client_streaming and rpc.server_streaming:
            stream = chan.stream_stream(rpc.path)(
                iter(messages), metadata=metadata, timeout=deadline_s
            )
            async for _ in stream:
                responses += 1
        elif rpc.client_streaming:
            await chan.stream_unary(rpc.path)(iter(messages), metadata=metadata, timeout=deadline_s)
            responses = 1
        elif rpc.server_streaming:
            call: Any = chan.unary_stream(rpc.path)(
                messages[0], metadata=metadata, timeout=deadline_s
            )
            async for _ in call:
                responses += 1
        else:
            await chan.unary_unary(rpc.path)(messages[0], metadata=metadata, timeout=deadline_s)
            responses = 1
    except grpc.aio.AioRpcError as error:
        return Outcome(error.code(), error.details() or "", responses, error)
    return Outcome(grpc.StatusCode.OK, "", responses, None)


async def redis_snapshot(client: aioredis.Redis) -> dict[bytes, Any]:
    """Every key with its type and full content (stream entries, not consumer bookkeeping)."""
    keys = sorted([key async for key in client.scan_iter(count=1000)])
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        types = await pipe.execute()
    async with client.pipeline(transaction=False) as pipe:
        for key, kind in zip(keys, types, strict=True):
            readers = {
                b"string": pipe.get,
                b"hash": pipe.hgetall,
                b"list": lambda k: pipe.lrange(k, 0, -1),
                b"set": pipe.smembers,
                b"zset": lambda k: pipe.zrange(k, 0, -1, withscores=True),
                b"stream": lambda k: pipe.xrange(k),
            }
            readers.get(kind, pipe.exists)(key)
        contents = await pipe.execute()
    return {
        key: (kind, _frozen(content))
        for key, kind, content in zip(keys, types, contents, strict=True)
    }


def _frozen(content: Any) -> Any:
    if isinstance(content, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in content.items()))
    if isinstance(content, (list, tuple)):
        return tuple(_frozen(item) for item in content)
    if isinstance(content, set):
        return tuple(sorted(content))
    return content
