"""`CollectServer`: the Collect HTTP ingest's lifecycle beside the gRPC server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from profile_service.api.backend import ProfileBackend
from profile_service.collect.access import CollectAccess
from profile_service.collect.http import CollectApp, CollectSettings
from profile_service.collect.limits import RateLimiter
from profile_service.settings import ProfileSettings
from service_common.auth import ApiKeyStore

logger = logging.getLogger(__name__)


def collect_enabled(settings: ProfileSettings) -> bool:
    """Whether the settings turn the Collect ingest on."""
    return settings.collect_enabled or settings.collect_port > 0


class CollectServer:
    """Serves the Collect endpoints on ``collect_host:collect_port`` (port 0: a free one,
    read back from `port` after `start`). The port is shared by ``--workers`` processes."""

    def __init__(
        self,
        settings: ProfileSettings,
        backend: ProfileBackend,
        tracer_provider: TracerProvider,
        *,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._host = settings.collect_host or settings.host
        self._requested_port = settings.collect_port
        limiter = (
            RateLimiter(settings.collect_rate_per_second, clock)
            if clock is not None
            else RateLimiter(settings.collect_rate_per_second)
        )
        access = CollectAccess(
            ApiKeyStore(settings.api_keys),
            allowed_origins=settings.collect_allowed_origins,
            datasources=settings.collect_datasources,
            auth_enabled=settings.auth_enabled,
        )
        self._app = CollectApp(
            backend,
            access,
            limiter,
            CollectSettings(
                account=settings.collect_account,
                profile=settings.collect_profile,
                user_agent_header=settings.collect_user_agent_header,
            ),
            tracer_provider.get_tracer(__name__),
            ready,
        ).build()
        self._runner: web.AppRunner | None = None
        self.port = 0
        """The bound port (after `start`)."""

    async def start(self) -> None:
        """Bind and serve."""
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(
            runner, self._host, self._requested_port, reuse_port=self._requested_port > 0
        )
        await site.start()
        server = site._server  # the asyncio server: the only place the bound port is known
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.port = int(sock.getsockname()[1])
                break
        logger.info("collect ingest on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop accepting and close connections (in-flight requests finish first)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
