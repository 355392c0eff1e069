"""Fixtures of the cohort sync tests: a real Redis, the Braze sandbox over HTTP, and the real
dispatch gRPC server (create_server on port 0) configured through a connectors file whose
secrets come from environment variables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox
from crowd.dispatch.v1 import dispatch_service_pb2_grpc
from dispatch_service.cohorts import CohortStore, CohortWorkerSettings
from dispatch_service.server import create_server, load_configured_connectors
from dispatch_service.settings import DispatchSettings
from service_common.client import create_channel
from service_common.server import ManagedServer
from tests.cohorts.helpers import (
    API_KEY,
    BAD_SECRET_CONNECTOR,
    CLIENT_SECRET,
    CONNECTOR,
    DISPATCH_KEY,
    NO_PARTNER_CONNECTOR,
    PARTNER,
    PARTNER_KEY,
    WRONG_SECRET,
)
from tests.harness import running_sandbox

PARTITIONS = 16


@dataclass
class Service:
    """A running dispatch service and what the tests inspect."""

    managed: ManagedServer
    stub: dispatch_service_pb2_grpc.DispatchServiceAsyncStub
    store: CohortStore
    """A store on the test's own Redis client, to read state."""
    sandbox: BrazeSandbox
    spans: InMemorySpanExporter


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[BrazeSandbox]:
    async with running_sandbox(
        api_keys={API_KEY: ALL_PERMISSIONS},
        partners={PARTNER: PARTNER_KEY},
        client_secrets={CLIENT_SECRET: frozenset({PARTNER})},
    ) as sandbox:
        yield sandbox


def write_connectors(path: Path, sandbox_url: str) -> Path:
    """A connectors file: secrets only by reference (environment variable names)."""
    common = {"url": sandbox_url, "api_key_env": "TEST_BRAZE_API_KEY", "linger_ms": 20}
    partner = {"partner_name": PARTNER, "partner_api_key_env": "TEST_BRAZE_PARTNER_KEY"}
    document = {
        "connectors": [
            {"id": CONNECTOR, **common, **partner, "client_secret_env": "TEST_BRAZE_SECRET"},
            {
                "id": BAD_SECRET_CONNECTOR,
                **common,
                **partner,
                "client_secret_env": "TEST_BRAZE_WRONG_SECRET",
            },
            {"id": NO_PARTNER_CONNECTOR, **common},
        ]
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest_asyncio.fixture
async def service(
    redis_url: str,
    redis_client: aioredis.Redis,
    sandbox: BrazeSandbox,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Service]:
    monkeypatch.setenv("TEST_BRAZE_API_KEY", API_KEY)
    monkeypatch.setenv("TEST_BRAZE_PARTNER_KEY", PARTNER_KEY)
    monkeypatch.setenv("TEST_BRAZE_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("TEST_BRAZE_WRONG_SECRET", WRONG_SECRET)
    monkeypatch.delenv("CROWD_CONFIG_FILE", raising=False)
    connectors_file = write_connectors(tmp_path / "connectors.json", sandbox.url)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = DispatchSettings.load(
        port=0,
        redis_url=redis_url,
        partitions=PARTITIONS,
        connectors_file=connectors_file,
        api_keys={DISPATCH_KEY: ["dispatch", "read"]},
        shutdown_grace_seconds=2,
    )
    managed = await create_server(
        settings,
        tracer_provider=provider,
        cohort_worker_settings=CohortWorkerSettings(
            block_ms=50, claim_idle_ms=1000, lease_ms=2000, lease_poll_s=0.05
        ),
    )
    await managed.start()
    channel: grpc.aio.Channel = create_channel(managed.address, api_key=DISPATCH_KEY)
    store = CohortStore(redis_client, PARTITIONS, load_configured_connectors(settings))
    try:
        yield Service(
            managed,
            dispatch_service_pb2_grpc.DispatchServiceStub(channel),
            store,
            sandbox,
            exporter,
        )
    finally:
        await channel.close()
        await managed.stop(2)
