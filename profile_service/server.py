"""`create_server(settings)`: the profile service assembled from its parts.

Startup: the server listens at once and reports NOT_SERVING; once Redis answers (retried
forever, see :mod:`service_common.readiness`) it checks the partition count, loads the
storage scripts, takes the current definitions (publishing ``definitions_file`` first when
it differs), starts the definitions watcher and, unless turned off, the visit sweeper, the
audience reconciler and the outbox forwarder, then reports SERVING.

Shutdown (SIGTERM): health NOT_SERVING, in-flight RPCs finish, background tasks stop,
channels and Redis close, spans are flushed.
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
from profile_service.cohort_resync import CohortResync
from profile_service.collect.server import CollectServer, collect_enabled
from profile_service.definitions.checked import validate_remembered
from profile_service.definitions.compiler import compile_definitions, digest
from profile_service.dispatch_link import DispatchSubmitter
from profile_service.forwarding_removal import ForwardingClearer
from profile_service.metrics import backfill_gauges, observe_redis, outbox_gauges
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
from profile_service.storage.backfill import (
    BackfillWorker,
    backfill_figures,
    read_backfill_progress,
)
from profile_service.storage.reevaluation_worker import ReevaluationWorker
from profile_service.storage.trace_history import TraceHistory
from service_common.client import create_channels
from service_common.readiness import RedisReadiness
from service_common.redis import connect_settings_redis
from service_common.redis_toolkit.replication import WaitPolicy
from service_common.server import ManagedServer, ServerSpec, build_server
from service_common.telemetry import setup_tracing

logger = logging.getLogger(__name__)


async def create_server(
    settings: ProfileSettings, *, tracer_provider: TracerProvider | None = None
) -> ManagedServer:
    """Build the profile service (not started). Tests pass port 0 and their own tracer."""
    provider = tracer_provider or setup_tracing(settings.otel_service_name)
    # The storage code is written against redis.asyncio.Redis; RedisCluster exposes the same
    # command API and every multi-key script stays within one hash tag.
    redis = cast(Redis, connect_settings_redis(settings, observe=observe_redis))
    wait = WaitPolicy.from_settings(settings)
    layout = Layout(settings.partitions)
    definitions_store = DefinitionsStore(redis, validate=validate_remembered, digest=digest)
    # Read (and fail on a bad file) now; it is published once Redis answers.
    seed = (
        load_definitions(settings.definitions_file)
        if settings.definitions_file is not None
        else None
    )
    watcher = DefinitionsWatcher(
        redis,
        definitions_store,
        compile_definitions,
        poll_interval_s=settings.definitions_poll_interval_seconds,
    )

    channels: list[grpc.aio.Channel] = []
    forwarder = None
    if settings.dispatch_target:
        api_key = (
            settings.dispatch_api_key.get_secret_value() if settings.dispatch_api_key else None
        )
        channels = create_channels(
            settings.dispatch_target,
            settings.dispatch_channels,
            api_key=api_key,
            tracer_provider=provider,
        )
        # Local commits wake the forwarder at once; the idle poll only picks up actions other
        # replicas committed (one XREADGROUP per partition per poll, so not too often).
        claim_idle_s = settings.outbox_claim_idle_seconds
        forwarder = OutboxForwarder(
            redis,
            layout,
            DispatchSubmitter(channels),
            read_count=settings.outbox_read_count,
            idle_interval_s=settings.outbox_poll_interval_seconds,
            claim_idle_ms=int(claim_idle_s * 1000),
            claim_interval_s=min(settings.outbox_claim_interval_seconds, claim_idle_s / 3),
            initial_backoff_s=settings.outbox_retry_initial_seconds,
            max_backoff_s=settings.outbox_retry_max_seconds,
        )

    store = ProfileStore(
        redis,
        layout,
        EngineFunctions.real(),
        on_outbox_write=forwarder.wake if forwarder is not None else None,
        max_attempts=settings.commit_max_attempts,
        wait=wait,
        trace_history=TraceHistory(settings.trace_sample_rate, settings.trace_history_max_bytes),
    )
    background: list[Any] = []  # each has start() and async stop()
    if settings.background_workers:
        background.append(
            VisitSweeper(
                redis,
                store,
                lambda: watcher.current,
                interval_s=settings.sweep_interval_seconds,
                batch_limit=settings.sweep_batch_limit,
                stitch_grace_ms=settings.stitch_recovery_grace_ms,
            )
        )
        background.append(
            AudienceReconciler(
                redis,
                layout,
                lambda: watcher.current,
                interval_s=settings.reconcile_interval_seconds,
                scan_count=settings.reconcile_scan_count,
            )
        )
        # Audience backfill and time-based re-evaluation (profile_service/storage/backfill.py,
        # reevaluation_worker.py).
        background.append(
            BackfillWorker(
                redis,
                store,
                definitions_store,
                lambda: watcher.current,
                profiles_per_second=settings.backfill_profiles_per_second,
                interval_s=settings.backfill_interval_seconds,
            )
        )
        background.append(
            ReevaluationWorker(
                redis,
                store,
                lambda: watcher.current,
                interval_s=settings.reevaluate_interval_seconds,
                batch_limit=settings.sweep_batch_limit,
            )
        )
        if forwarder is not None:
            background.append(forwarder)

    app = ProfileApp(
        store=store,
        reader=ProfileReader(redis, layout, wait=wait),
        trace_log=TraceLog(redis, layout),
        definitions_store=definitions_store,
        watcher=watcher,
        backfill_progress=lambda: read_backfill_progress(redis, layout.partitions),
    )
    resync = CohortResync(
        ProfileReader(redis, layout, wait=wait), lambda: watcher.current, channels
    )
    profiles = ProfileServicer(app, resync)
    clearer = None
    if channels:
        # Deleting a forwarded audience clears its membership in Braze (forwarding_removal).
        # Durable: a job in Redis any replica resumes; polled like the backfill.
        clearer = ForwardingClearer(
            redis,
            ProfileReader(redis, layout, wait=wait),
            definitions_store,
            lambda: watcher.current,
            compile_definitions,
            DispatchSubmitter(channels),
            interval_s=settings.backfill_interval_seconds,
        )
        app.on_published = clearer.published
    definitions = DefinitionServicer(app)

    def register(server: grpc.aio.Server) -> None:
        profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(profiles, server)
        definition_service_pb2_grpc.add_DefinitionServiceServicer_to_server(definitions, server)

    started = False

    async def prepare() -> None:
        """Start-up work that needs Redis (rerun from the top if Redis drops meanwhile)."""
        nonlocal started
        await layout.check_partitions(redis)
        if seed is not None:
            published = await definitions_store.publish(seed)
            logger.info(
                "definitions from %s: %s", settings.definitions_file, published.version.version
            )
        await watcher.refresh()
        await store.prepare()
        if not started:
            started = True
            await watcher.start()
            for task in background:
                task.start()
            if clearer is not None:
                clearer.start()

    async def stop_background() -> None:
        for task in reversed(background):
            await task.stop()
        if clearer is not None:
            await clearer.stop()
        await watcher.stop()
        for channel in channels:
            await channel.close()

    readiness = RedisReadiness.for_settings(redis, settings, [prepare])
    # The Collect HTTP ingest (off by default) calls the same backend as TrackEvents.
    collect = (
        CollectServer(settings, app, provider, ready=lambda: readiness.prepared)
        if collect_enabled(settings)
        else None
    )
    return build_server(
        settings,
        ServerSpec(
            service_names=[PROFILE_SERVICE, DEFINITION_SERVICE],
            register=register,
            method_scopes=METHOD_SCOPES,
            on_start=[collect.start] if collect is not None else [],
            on_shutdown=[
                *([collect.stop] if collect is not None else []),
                stop_background,
                redis.aclose,
            ],
            readiness=readiness,
            metrics_collectors=[
                outbox_gauges(redis, [p.outbox for p in layout.all_partitions()]),
                backfill_gauges(lambda: backfill_figures(redis, layout.partitions)),
            ],
        ),
        tracer_provider=provider,
    )
