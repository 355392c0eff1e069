"""A profile and a dispatch server with their /metrics endpoints on, delivering to the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from dispatch_service.worker import WorkerSettings
from service_common.server import ManagedServer
from tests.harness.net import free_port
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY
from tests.profile_api.servers import Servers, Tracing, write_connectors


class Stack:
    def __init__(self, profile: ManagedServer, dispatch: ManagedServer, client: CrowdClient):
        self.profile = profile
        self.dispatch = dispatch
        self.client = client

    @property
    def profile_port(self) -> int:
        assert self.profile.metrics is not None
        return self.profile.metrics.port

    @property
    def dispatch_port(self) -> int:
        assert self.dispatch.metrics is not None
        return self.dispatch.metrics.port


@pytest_asyncio.fixture
async def stack(
    redis_url: str, tracing: Tracing, sandbox: BrazeSandbox, tmp_path: Path
) -> AsyncIterator[Stack]:
    servers = Servers(redis_url, tracing)
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
            metrics_port=free_port(),
        )
        profile = await servers.profile(
            dispatch_target=dispatch.address,
            dispatch_api_key=DISPATCH_KEY,
            metrics_port=free_port(),
        )
        async with CrowdClient(profile.address, api_key=ADMIN_KEY) as client:
            yield Stack(profile, dispatch, client)
    finally:
        await servers.close()
