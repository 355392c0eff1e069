"""Real servers for the API-level tests: built with each service's ``create_server`` on port 0.

Shared by tests/profile_api and tests/e2e. Every server started here is stopped by
``close()`` (the fixtures call it), so a failing test leaves nothing running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatch_service.server import create_server as create_dispatch_server
from dispatch_service.settings import DispatchSettings
from dispatch_service.worker import WorkerSettings
from profile_service.server import create_server as create_profile_server
from profile_service.settings import ProfileSettings
from service_common.server import ManagedServer
from service_common.telemetry import setup_tracing
from tests.profile_api.helpers import BRAZE_KEY, DISPATCH_KEY, PROFILE_KEYS

SWEEP_INTERVAL_S = 0.2
"""Visits end (and delayed actions fire) within this long of their expiry."""
GRACE_S = 2.0


def write_connectors(directory: Path, url: str, connector_id: str = "braze") -> Path:
    """A connectors file with one Braze connector at ``url``; its key is given by reference
    (a key file), as production configuration must."""
    key_file = directory / "braze.key"
    key_file.write_text(BRAZE_KEY, encoding="utf-8")
    path = directory / "connectors.json"
    connector = {"id": connector_id, "url": url, "api_key_file": str(key_file), "linger_ms": 50}
    path.write_text(json.dumps({"connectors": [connector]}), encoding="utf-8")
    return path


class Tracing:
    """One in-memory exporter fed by a tracer provider per service (as separate processes
    would have), so a test sees every span of every hop in one place."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self._providers: dict[str, TracerProvider] = {}

    def provider(self, service_name: str) -> TracerProvider:
        """The provider of ``service_name`` (created on first use)."""
        if service_name not in self._providers:
            self._providers[service_name] = setup_tracing(service_name, span_exporter=self.exporter)
        return self._providers[service_name]

    def shutdown(self) -> None:
        """Stop every provider (the exporter keeps what it has)."""
        for provider in self._providers.values():
            provider.shutdown()


class Servers:
    """Starts profile and dispatch servers on port 0 against one Redis; stops them all."""

    def __init__(self, redis_url: str, tracing: Tracing) -> None:
        self.redis_url = redis_url
        self.tracing = tracing
        self._started: list[ManagedServer] = []

    async def profile(self, **overrides: Any) -> ManagedServer:
        """Start a profile server (keys `PROFILE_KEYS`, fast sweeper, no dispatch link)."""
        values: dict[str, Any] = {
            "port": 0,
            "redis_url": self.redis_url,
            "api_keys": PROFILE_KEYS,
            "sweep_interval_seconds": SWEEP_INTERVAL_S,
            "shutdown_grace_seconds": GRACE_S,
            # These suites replay the stored trace of visitors they did not follow first
            # (StreamTrace after="0"): keep every visitor's history, not the default sample.
            "trace_sample_rate": 1.0,
        }
        values.update(overrides)
        settings = ProfileSettings(**values)
        server = await create_profile_server(
            settings, tracer_provider=self.tracing.provider("crowd-profile")
        )
        return await self._start(server)

    async def dispatch(
        self, connectors_file: Path, worker_settings: WorkerSettings | None = None, **overrides: Any
    ) -> ManagedServer:
        """Start a dispatch server (key `DISPATCH_KEY`) delivering to ``connectors_file``."""
        values: dict[str, Any] = {
            "port": 0,
            "redis_url": self.redis_url,
            "api_keys": {DISPATCH_KEY: ["dispatch", "read", "admin"]},
            "connectors_file": connectors_file,
            "shutdown_grace_seconds": GRACE_S,
        }
        values.update(overrides)
        settings = DispatchSettings(**values)
        server = await create_dispatch_server(
            settings,
            tracer_provider=self.tracing.provider("crowd-dispatch"),
            worker_settings=worker_settings,
        )
        return await self._start(server)

    async def _start(self, server: ManagedServer) -> ManagedServer:
        self._started.append(server)
        await server.start()
        return server

    async def close(self) -> None:
        """Stop every started server, newest first."""
        while self._started:
            await self._started.pop().stop()
