"""Fixtures of the hostile-input tests: a real profile server and a real dispatch server (their
``create_server`` on port 0, on the real Redis of tests/conftest.py), with raw channels.

Background work is off (no visit sweeper, reconciler, outbox forwarder or delivery workers),
so Redis changes only when an RPC writes: a refused request must leave it exactly as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
import pytest_asyncio
import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from service_common.server import ManagedServer
from tests.hostile.helpers import Method
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY, bearer
from tests.profile_api.servers import Servers, Tracing, write_connectors


@dataclass
class Hostile:
    """Both servers, a raw channel to each, the metadata with a key holding every scope."""

    profile: ManagedServer
    dispatch: ManagedServer
    channels: dict[str, grpc.aio.Channel]
    metadata: dict[str, tuple[tuple[str, str]]]
    redis: aioredis.Redis

    def channel(self, rpc: Method) -> grpc.aio.Channel:
        return self.channels[rpc.server]

    def auth(self, rpc: Method) -> tuple[tuple[str, str]]:
        return self.metadata[rpc.server]


@pytest_asyncio.fixture
async def hostile(
    redis_url: str, tracing: Tracing, sandbox: BrazeSandbox, tmp_path: Path
) -> AsyncIterator[Hostile]:
    servers = Servers(redis_url, tracing)
    redis = aioredis.Redis.from_url(redis_url)
    channels: dict[str, grpc.aio.Channel] = {}
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, sandbox.url), background_workers=False
        )
        profile = await servers.profile(background_workers=False)
        channels["profile"] = grpc.aio.insecure_channel(profile.address)
        channels["dispatch"] = grpc.aio.insecure_channel(dispatch.address)
        yield Hostile(
            profile,
            dispatch,
            channels,
            {"profile": bearer(ADMIN_KEY), "dispatch": bearer(DISPATCH_KEY)},
            redis,
        )
    finally:
        for channel in channels.values():
            await channel.close()
        await redis.aclose()
        await servers.close()
