"""Fixtures for the Braze sandbox tests: real servers on free ports, real HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from braze_sandbox import ALL_PERMISSIONS, PERM_TRACK, BrazeSandbox
from tests.braze_sandbox.helpers import KEY, TRACK_ONLY_KEY, SandboxFactory
from tests.harness import SandboxStarter


@pytest_asyncio.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    """Start sandboxes with SandboxConfig overrides; all are stopped after the test."""
    starter = SandboxStarter(
        api_keys={KEY: ALL_PERMISSIONS, TRACK_ONLY_KEY: frozenset({PERM_TRACK})}
    )
    yield starter
    await starter.stop_all()


@pytest_asyncio.fixture
async def sandbox(make_sandbox: SandboxFactory) -> BrazeSandbox:
    """A running sandbox with the default test configuration."""
    return await make_sandbox()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A real aiohttp client session."""
    async with aiohttp.ClientSession() as session:
        yield session
