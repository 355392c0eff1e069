"""`create_server(settings)`: the dispatch service assembled from its parts.

Startup: load the connectors, listen at once and report NOT_SERVING; once Redis answers
(retried forever, see :mod:`service_common.readiness`) prepare the queues, start the
delivery workers and report SERVING.

Shutdown (SIGTERM): health NOT_SERVING, in-flight RPCs finish, the worker sends what it
buffered and records the results, the HTTP session and Redis close, spans are flushed.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import cast

from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis

from crowd.dispatch.v1 import dispatch_service_pb2_grpc
from dispatch_service.braze import BrazeConnector, create_session, load_connectors
from dispatch_service.braze.connector import load_connectors_from_env
from dispatch_service.cohorts import CohortStore, CohortWorker, CohortWorkerSettings, cohort_senders
from dispatch_service.delivery import braze_deliveries
from dispatch_service.metrics import observe_redis, queue_gauges
from dispatch_service.queue import ActionStore
from dispatch_service.scopes import DISPATCH_SERVICE, METHOD_SCOPES
from dispatch_service.servicer import DispatchServicer
from dispatch_service.settings import DispatchSettings
from dispatch_service.visitor_trace import VisitorTrace
from dispatch_service.worker import DispatchWorker, WorkerSettings
from service_common.keys import CohortKeys, DispatchKeys
from service_common.readiness import RedisReadiness
from service_common.redis import connect_settings_redis
from service_common.redis_toolkit.replication import WaitPolicy
from service_common.server import ManagedServer, ServerSpec, build_server
from service_common.telemetry import setup_tracing


def load_configured_connectors(settings: DispatchSettings) -> dict[str, BrazeConnector]:
    """Connectors from ``connectors_file``, else from ``$CROWD_BRAZE_CONNECTORS``."""
    if settings.connectors_file is not None:
        return load_connectors(settings.connectors_file)
    return load_connectors_from_env()


def _queues(partitions: int) -> dict[str, list[str]]:
    """The queues whose depth and age the metrics report: their partition streams."""
    return {
        "actions": [DispatchKeys(p).queue for p in range(partitions)],
        "cohorts": [CohortKeys(p).queue for p in range(partitions)],
    }


async def create_server(
    settings: DispatchSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    worker_settings: WorkerSettings | None = None,
    cohort_worker_settings: CohortWorkerSettings | None = None,
) -> ManagedServer:
    """Build the dispatch service (not started). Tests pass port 0 and their own tracer."""
    connectors = load_configured_connectors(settings)
    provider = tracer_provider or setup_tracing(settings.otel_service_name)
    # The storage code is written against redis.asyncio.Redis; RedisCluster exposes the same
    # command API and every multi-key script stays within one hash tag.
    redis = cast(Redis, connect_settings_redis(settings, observe=observe_redis))
    visitor_trace = VisitorTrace(redis)
    store = ActionStore(
        redis,
        settings.partitions,
        connectors,
        trace=visitor_trace,
        wait=WaitPolicy.from_settings(settings),
    )
    session = create_session(provider)
    worker: DispatchWorker | None = None
    if settings.background_workers:
        deliveries = braze_deliveries(connectors, redis, settings.partitions, session, provider)
        worker = DispatchWorker(
            store,
            deliveries,
            consumer_name=settings.consumer_name or f"{socket.gethostname()}:{os.getpid()}",
            settings=worker_settings or settings.worker_settings(),
            trace=visitor_trace,
        )
    cohort_store = CohortStore(redis, settings.partitions, connectors)
    cohort_worker: CohortWorker | None = None
    if settings.background_workers:
        cohort_worker = CohortWorker(
            cohort_store,
            cohort_senders(connectors, redis, settings.partitions, session, provider),
            consumer_name=settings.consumer_name or f"{socket.gethostname()}:{os.getpid()}",
            settings=cohort_worker_settings or settings.cohort_worker_settings(),
        )
    servicer = DispatchServicer(store, cohort_store)

    started = False

    async def prepare() -> None:
        """Start-up work that needs Redis (rerun from the top if Redis drops meanwhile)."""
        nonlocal started
        await store.ensure_queues()
        await cohort_store.ensure_queues()
        if not started:
            started = True
            if worker is not None:
                await worker.start()
            if cohort_worker is not None:
                await cohort_worker.start()

    async def stop_worker() -> None:
        # Both workers drain within the same grace period, side by side.
        grace = settings.shutdown_grace_seconds
        stopping = [w.stop(grace) for w in (worker, cohort_worker) if w is not None]
        await asyncio.gather(*stopping)

    managed = build_server(
        settings,
        ServerSpec(
            service_names=[DISPATCH_SERVICE],
            register=lambda server: dispatch_service_pb2_grpc.add_DispatchServiceServicer_to_server(
                servicer, server
            ),
            method_scopes=METHOD_SCOPES,
            on_shutdown=[stop_worker, session.close, redis.aclose],
            readiness=RedisReadiness.for_settings(redis, settings, [prepare]),
            metrics_collectors=[queue_gauges(redis, _queues(settings.partitions))],
        ),
        tracer_provider=provider,
    )
    return managed
