"""Fixtures of the Braze delivery tests: the sandbox on a free port, a real Redis, real HTTP,
and an in-memory span exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from braze_sandbox import ALL_PERMISSIONS, BrazeSandbox
from dispatch_service.braze import (
    BrazeClient,
    BrazeConnector,
    BrazeDelivery,
    DeltaStore,
    SharedRateLimiter,
    create_session,
)
from tests.braze.helpers import API_KEY, CONNECTOR_ID
from tests.harness import SandboxStarter

PARTITIONS = 16


@dataclass
class Stack:
    """Everything one dispatcher replica builds for a connector."""

    connector: BrazeConnector
    session: aiohttp.ClientSession
    limiter: SharedRateLimiter
    deltas: DeltaStore
    client: BrazeClient
    delivery: BrazeDelivery


SandboxFactory = Callable[..., Awaitable[BrazeSandbox]]
StackFactory = Callable[..., Awaitable[Stack]]


@pytest_asyncio.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    starter = SandboxStarter(api_keys={API_KEY: ALL_PERMISSIONS})
    yield starter
    await starter.stop_all()


@pytest_asyncio.fixture
async def sandbox(make_sandbox: SandboxFactory) -> BrazeSandbox:
    return await make_sandbox()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def connector_for(url: str, **overrides: Any) -> BrazeConnector:
    settings: dict[str, Any] = {"id": CONNECTOR_ID, "url": url, "api_key": SecretStr(API_KEY)}
    settings.update(overrides)
    return BrazeConnector(**settings)


@pytest_asyncio.fixture
async def make_stack(
    redis_url: str, tracer_provider: TracerProvider
) -> AsyncIterator[StackFactory]:
    """Build replicas: each gets its own Redis client and HTTP session, as a process would."""
    opened: list[tuple[aiohttp.ClientSession, aioredis.Redis]] = []

    async def factory(url: str, **overrides: Any) -> Stack:
        connector = connector_for(url, **overrides)
        redis = aioredis.Redis.from_url(redis_url)
        session = create_session(tracer_provider)
        opened.append((session, redis))
        limiter = SharedRateLimiter(redis, connector)
        deltas = DeltaStore(redis, connector, PARTITIONS)
        client = BrazeClient(connector, session, limiter, deltas, tracer_provider)
        return Stack(
            connector, session, limiter, deltas, client, BrazeDelivery(connector, client, deltas)
        )

    yield factory
    for session, redis in opened:
        await session.close()
        await redis.aclose()
