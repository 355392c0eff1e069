"""Fixtures shared by the API-level suites (profile_api, e2e, robustness): span collection
and a Braze sandbox over real HTTP (registered in tests/conftest.py as a plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox
from tests.harness import running_sandbox
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
    async with running_sandbox(api_keys={BRAZE_KEY: ALL_PERMISSIONS}) as sandbox:
        yield sandbox
