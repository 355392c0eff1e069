"""Fixtures of the end-to-end tests: the Braze sandbox (real HTTP), a dispatch server delivering
to it and a profile server forwarding fired actions to the dispatch server, all built with
their ``create_server`` on port 0 against the real Redis of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from dispatch_service.worker import WorkerSettings
from service_common.server import ManagedServer
from tests.profile_api.helpers import ADMIN_KEY, DISPATCH_KEY
from tests.profile_api.servers import Servers, Tracing, write_connectors


@dataclass
class Stack:
    """Sandbox ← dispatch ← profile, and a client of both services."""

    sandbox: BrazeSandbox
    dispatch: ManagedServer
    profile: ManagedServer
    client: CrowdClient
    """Admin key at the profile service; dispatch key at the dispatch service."""
    tracing: Tracing


@pytest_asyncio.fixture
async def stack(
    redis_url: str, tracing: Tracing, sandbox: BrazeSandbox, tmp_path: Path
) -> AsyncIterator[Stack]:
    servers = Servers(redis_url, tracing)
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
        )
        profile = await servers.profile(
            dispatch_target=dispatch.address, dispatch_api_key=DISPATCH_KEY
        )
        async with CrowdClient(profile.address, api_key=ADMIN_KEY) as client:
            yield Stack(sandbox, dispatch, profile, client, tracing)
    finally:
        await servers.close()
