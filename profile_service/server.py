"""`create_server(settings)`: the profile service assembled from its parts.

Startup: connect to Redis (bounded retries), check the partition count, load the storage
scripts, take the current definitions (publishing ``definitions_file`` first when it
differs), then start the definitions watcher and, unless turned off, the visit sweeper, the
audience reconciler and the outbox forwarder. Shutdown (SIGTERM): health NOT_SERVING,
in-flight RPCs finish, background tasks stop, channels and Redis close, spans are flushed.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import grpc.aio
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis

from crowd.definitions.loader import load_definitions
from crowd.profile.v1 import definition_service_pb2_grpc, profile_service_pb2_grpc
from profile_service.api.scopes import DEFINITION_SERVICE, METHOD_SCOPES, PROFILE_SERVICE
from profile_service.api.servicers import DefinitionServicer, ProfileServicer
from profile_service.app import ProfileApp
from profile_service.definitions.checked import validate_remembered
from profile_service.definitions.compiler import compile_definitions, digest
from profile_service.dispatch_link import DispatchSubmitter
from profile_service.settings import ProfileSettings
from profile_service.storage import (
    AudienceReconciler,
    DefinitionsStore,
    DefinitionsWatcher,
    EngineFunctions,
    Layout,
    OutboxForwarder,
    ProfileReader,
    ProfileStore,
    TraceLog,
    VisitSweeper,
)
from service_common.client import create_channel
from service_common.redis import create_redis
from service_common.server import ManagedServer, ServerSpec, build_server
from service_common.telemetry import setup_tracing

logger = logging.getLogger(__name__)

FORWARDER_IDLE_POLL_S = 0.5


async def create_server(
    settings: ProfileSettings, *, tracer_provider: TracerProvider | None = None
) -> ManagedServer:
    """Build the profile service (not started). Tests pass port 0 and their own tracer."""
    provider = tracer_provider or setup_tracing(settings.otel_service_name)
    # The storage code is written against redis.asyncio.Redis; RedisCluster exposes the same
    # command API and every multi-key script stays within one hash tag.
    redis = cast(Redis, await create_redis(settings.redis_url, cluster=settings.redis_cluster))
    layout = Layout(settings.partitions)
    await layout.check_partitions(redis)

    definitions_store = DefinitionsStore(redis, validate=validate_remembered, digest=digest)
    if settings.definitions_file is not None:
        published = await definitions_store.publish(load_definitions(settings.definitions_file))
        logger.info("definitions from %s: %s", settings.definitions_file, published.version.version)
    watcher = DefinitionsWatcher(redis, definitions_store, compile_definitions)
    await watcher.refresh()

    channel = None
    forwarder = None
    if settings.dispatch_target:
        api_key = (
            settings.dispatch_api_key.get_secret_value() if settings.dispatch_api_key else None
        )
        channel = create_channel(
            settings.dispatch_target, api_key=api_key, tracer_provider=provider
        )
        # Local commits wake the forwarder at once; the idle poll only picks up actions other
        # replicas committed (one XREADGROUP per partition per poll, so not too often).
        claim_idle_s = settings.outbox_claim_idle_seconds
        forwarder = OutboxForwarder(
            redis,
            layout,
            DispatchSubmitter(channel),
            idle_interval_s=FORWARDER_IDLE_POLL_S,
            claim_idle_ms=int(claim_idle_s * 1000),
            claim_interval_s=min(5.0, claim_idle_s / 3),
        )

    store = ProfileStore(
        redis,
        layout,
        EngineFunctions.real(),
        on_outbox_write=forwarder.wake if forwarder is not None else None,
    )
    await store.prepare()
    background: list[Any] = []  # each has start() and async stop()
    if settings.background_workers:
        background.append(
            VisitSweeper(
                redis, store, lambda: watcher.current, interval_s=settings.sweep_interval_seconds
            )
        )
        background.append(AudienceReconciler(redis, layout, lambda: watcher.current))
        if forwarder is not None:
            background.append(forwarder)

    app = ProfileApp(
        store=store,
        reader=ProfileReader(redis, layout),
        trace_log=TraceLog(redis, layout),
        definitions_store=definitions_store,
        watcher=watcher,
    )
    profiles = ProfileServicer(app)
    definitions = DefinitionServicer(app)

    def register(server: grpc.aio.Server) -> None:
        profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(profiles, server)
        definition_service_pb2_grpc.add_DefinitionServiceServicer_to_server(definitions, server)

    async def start_background() -> None:
        await watcher.start()
        for task in background:
            task.start()

    async def stop_background() -> None:
        for task in reversed(background):
            await task.stop()
        await watcher.stop()
        if channel is not None:
            await channel.close()

    return build_server(
        settings,
        ServerSpec(
            service_names=[PROFILE_SERVICE, DEFINITION_SERVICE],
            register=register,
            method_scopes=METHOD_SCOPES,
            on_start=[start_background],
            on_shutdown=[stop_background, redis.aclose],
        ),
        tracer_provider=provider,
    )
