"""Fixtures of the cohort binding tests: the Braze sandbox with a cohort-import partner, a
dispatch server whose connector has partner credentials (by environment variable names), and
a profile server forwarding to it, all real servers on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox
from crowd.client import CrowdClient
from dispatch_service.worker import WorkerSettings
from service_common.server import ManagedServer
from tests.harness import running_sandbox
from tests.profile_api.helpers import ADMIN_KEY, BRAZE_KEY, DISPATCH_KEY
from tests.profile_api.servers import Servers, Tracing

PARTNER = "crowd-binding"
PARTNER_KEY = "pk-binding-partner-3e5c7a9b1d"
CLIENT_SECRET = "cs-binding-secret-8f6d4b2a0c"
CONNECTOR = "braze"


@dataclass
class BindingStack:
    """Sandbox ← dispatch ← profile, and an admin client of the profile service."""

    sandbox: BrazeSandbox
    dispatch: ManagedServer
    profile: ManagedServer
    client: CrowdClient


def _connectors(directory: Path, url: str) -> Path:
    path = directory / "connectors.json"
    connector = {
        "id": CONNECTOR,
        "url": url,
        "api_key_env": "BINDING_BRAZE_KEY",
        "linger_ms": 20,
        "partner_name": PARTNER,
        "partner_api_key_env": "BINDING_PARTNER_KEY",
        "client_secret_env": "BINDING_CLIENT_SECRET",
    }
    path.write_text(json.dumps({"connectors": [connector]}), encoding="utf-8")
    return path


@pytest_asyncio.fixture
async def binding_stack(
    redis_url: str, tracing: Tracing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BindingStack]:
    monkeypatch.setenv("BINDING_BRAZE_KEY", BRAZE_KEY)
    monkeypatch.setenv("BINDING_PARTNER_KEY", PARTNER_KEY)
    monkeypatch.setenv("BINDING_CLIENT_SECRET", CLIENT_SECRET)
    async with running_sandbox(
        api_keys={BRAZE_KEY: ALL_PERMISSIONS},
        partners={PARTNER: PARTNER_KEY},
        client_secrets={CLIENT_SECRET: frozenset({PARTNER})},
    ) as sandbox:
        servers = Servers(redis_url, tracing)
        try:
            dispatch = await servers.dispatch(
                _connectors(tmp_path, sandbox.url),
                WorkerSettings(block_ms=50, promote_interval_s=0.05),
            )
            profile = await servers.profile(
                dispatch_target=dispatch.address, dispatch_api_key=DISPATCH_KEY
            )
            async with CrowdClient(profile.address, api_key=ADMIN_KEY) as client:
                yield BindingStack(sandbox, dispatch, profile, client)
        finally:
            await servers.close()
