"""Several gRPC channels to one target, each on its own connection, used in turn.

A server with several worker processes on one port (``--workers``), or several replicas
behind one address, shares load per *connection*: the kernel (SO_REUSEPORT) or a TCP load
balancer hands each new connection to one of them, and every call on it goes there. A caller
with one connection therefore loads one worker. `ChannelPool` opens several and rotates
over them per call, like gRPC's ``round_robin`` policy over distinct addresses; as that
policy does, it skips a connection that is failing or still connecting while another is
ready or idle, so one refused connect (say, a worker still starting) does not fail later
calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

__all__ = ["OWN_CONNECTION", "ChannelPool"]

OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)
"""Channel argument giving a channel a connection of its own: by default gRPC shares one
connection between channels with the same target and arguments."""


# A call on a connecting channel fails if that connect attempt fails (it may have begun
# before the server listened); one on a failing channel fails at once.
_USABLE = frozenset({grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.IDLE})


class ChannelPool:
    """Channels to one target, taken in turn by `take` (see the module docstring)."""

    def __init__(self, channels: Sequence[grpc.aio.Channel]) -> None:
        if not channels:
            raise ValueError("a channel pool needs at least one channel")
        self.channels = list(channels)
        self._next = 0

    @classmethod
    def open(
        cls,
        target: str,
        count: int,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    ) -> ChannelPool:
        """Open ``count`` channels to ``target``, each on its own connection (made lazily,
        on the channel's first call)."""
        if count < 1:
            raise ValueError("channels must be at least 1")
        arguments = [OWN_CONNECTION, *options]
        opened = [
            grpc.aio.secure_channel(target, credentials, arguments, interceptors=interceptors)
            if credentials is not None
            else grpc.aio.insecure_channel(target, arguments, interceptors=interceptors)
            for _ in range(count)
        ]
        return cls(opened)

    def take(self) -> grpc.aio.Channel:
        """The next channel in turn that is connected or idle (idle ones connect on this
        call); else the next one still connecting; else the next one (all are failing)."""
        count = len(self.channels)
        start = self._next
        self._next = (start + 1) % count
        fallback: grpc.aio.Channel | None = None
        for offset in range(count):
            channel = self.channels[(start + offset) % count]
            state = channel.get_state()
            if state in _USABLE:
                self._next = (start + offset + 1) % count
                return channel
            if fallback is None and state == grpc.ChannelConnectivity.CONNECTING:
                fallback = channel
        return fallback or self.channels[start]

    async def close(self) -> None:
        """Close every channel."""
        for channel in self.channels:
            await channel.close()
