"""Fixtures for the Braze sandbox tests: real servers on free ports, real HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from braze_sandbox import (
    ALL_PERMISSIONS,
    PERM_TRACK,
    BrazeSandbox,
    SandboxConfig,
)
from tests.braze_sandbox.helpers import KEY, TRACK_ONLY_KEY, SandboxFactory


@pytest_asyncio.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    """Start sandboxes with SandboxConfig overrides; all are stopped after the test."""
    started: list[BrazeSandbox] = []

    async def factory(**overrides: Any) -> BrazeSandbox:
        settings: dict[str, Any] = {
            "api_keys": {KEY: ALL_PERMISSIONS, TRACK_ONLY_KEY: frozenset({PERM_TRACK})},
            # Windows open at the first request, so no test straddles a clock boundary.
            "window_alignment": "first_request",
        }
        settings.update(overrides)
        sandbox = BrazeSandbox(SandboxConfig(**settings))
        await sandbox.start()
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        await sandbox.stop()


@pytest_asyncio.fixture
async def sandbox(make_sandbox: SandboxFactory) -> BrazeSandbox:
    """A running sandbox with the default test configuration."""
    return await make_sandbox()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A real aiohttp client session."""
    async with aiohttp.ClientSession() as session:
        yield session
