"""Fixtures shared by the API-level suites (profile_api, e2e, robustness): span collection
and a Braze sandbox over real HTTP (registered in tests/conftest.py as a plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox, SandboxConfig
from tests.profile_api.helpers import BRAZE_KEY
from tests.profile_api.servers import Tracing


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    tracing = Tracing()
    try:
        yield tracing
    finally:
        tracing.shutdown()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[BrazeSandbox]:
    sandbox = BrazeSandbox(
        SandboxConfig(api_keys={BRAZE_KEY: ALL_PERMISSIONS}, window_alignment="first_request")
    )
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()
