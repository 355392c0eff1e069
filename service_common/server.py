"""The server lifecycle both services share: build, start, serve until SIGTERM, stop gracefully.

(Over 400 lines on purpose: the server's whole lifecycle (build, start, readiness, signal
handling, graceful stop) is one state machine; its interceptors live in their own modules.)

A service describes itself with a :class:`ServerSpec`; :func:`build_server` wires it into a
``grpc.aio`` server with tracing, auth and error mapping, health and reflection, and returns a
:class:`ManagedServer`. A service's ``__main__`` is then one call to :func:`run_service`::

    async def create_server(settings: ProfileSettings) -> ManagedServer:
        redis = await create_redis(settings.redis_url, cluster=settings.redis_cluster)
        servicer = ProfileServicer(redis)
        return build_server(settings, ServerSpec(
            service_names=[profile_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name],
            register=lambda server: add_ProfileServiceServicer_to_server(servicer, server),
            method_scopes={"/crowd.profile.v1.ProfileService/TrackEvent": "track", ...},
            on_shutdown=[redis.aclose],
        ))

    def main() -> None:
        run_service(ProfileSettings, create_server)

Shutdown order (SIGTERM/SIGINT or ``stop()``): health turns NOT_SERVING, the server refuses new
RPCs and gives in-flight ones ``shutdown_grace_seconds`` to finish, then the ``on_shutdown``
hooks run in order (flush queues, close Redis), then spans are flushed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from service_common.auth import ApiKeyStore, AuthInterceptor
from service_common.decoding import RequestDecodingInterceptor
from service_common.error_mapping import ErrorMappingInterceptor
from service_common.gc_tuning import tune_gc
from service_common.logging import configure_logging
from service_common.metrics import MetricsEndpoint, RedisGaugeCollector
from service_common.readiness import ReadinessInterceptor, RedisReadiness
from service_common.rpc_counter import RpcCounter
from service_common.settings import ServiceSettings, settings_cli
from service_common.step_spans import StepTracerInterceptor
from service_common.supervisor import run_supervised
from service_common.telemetry import (
    exports_spans,
    server_interceptor,
    setup_tracing,
    shutdown_tracing,
)

__all__ = [
    "ManagedServer",
    "ServerSpec",
    "build_server",
    "run_service",
    "serve_until_signal",
    "server_options",
]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)

STOP_STEP_MARGIN_S = 10.0
"""How long past its grace a step of a stop may take before the stop goes on without it."""

Hook = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class ServerSpec:
    """What a service adds to the shared server.

    Attributes:
        service_names: Full names of its gRPC services (``crowd.profile.v1.ProfileService``):
            reported SERVING by health and listed by reflection.
        register: Adds the servicers to the server (the generated ``add_*_to_server``).
        method_scopes: Full method name → scope an API key needs to call it. Every method of
            the services must be listed; unlisted methods are refused (see ``auth``).
        on_start: Awaited in order before the server accepts RPCs (start background tasks).
        on_shutdown: Awaited in order after in-flight RPCs finished (flush work, close Redis).
            They also run if ``start`` failed part-way, so they must tolerate that.
        readiness: The service's Redis readiness: the server then listens at once, reports
            NOT_SERVING (and answers RPCs UNAVAILABLE) until Redis answers and its
            ``prepare`` hooks ran, and follows Redis with a watchdog afterwards (see
            :mod:`service_common.readiness`). ``None``: SERVING right after ``on_start``.
    """

    service_names: Sequence[str]
    register: Callable[[grpc.aio.Server], None]
    method_scopes: Mapping[str, str] = field(default_factory=dict)
    on_start: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    readiness: RedisReadiness | None = None
    metrics_collectors: Sequence[RedisGaugeCollector] = ()
    """Scrape-time gauges of this service (served when ``metrics_port`` is set)."""


class ManagedServer:
    """A built server and its lifecycle. Create it with :func:`build_server`.

    Usable as ``async with managed: ...`` (start, then stop with the configured grace).

    Attributes:
        server: The ``grpc.aio`` server.
        port: The port actually bound (useful with ``port=0``).
        health: The health servicer; ``start``/``stop`` drive it.
        tracer_provider: Where this server's spans go.
        settings: The settings it was built from.
    """

    def __init__(
        self,
        *,
        server: grpc.aio.Server,
        port: int,
        health_servicer: health.aio.HealthServicer,
        tracer_provider: TracerProvider,
        owns_tracer_provider: bool,
        settings: ServiceSettings,
        spec: ServerSpec,
        rpc_counter: RpcCounter | None = None,
    ) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer
        self.tracer_provider = tracer_provider
        self.settings = settings
        self.rpc_counter = rpc_counter or RpcCounter()
        """Application RPCs (not health, not reflection) this server has handled."""
        self._owns_tracer_provider = owns_tracer_provider
        self._spec = spec
        self._started = False
        self._stop_task: asyncio.Task[None] | None = None
        self._terminated = asyncio.Event()
        self._readiness_task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        """A fatal error of the background start-up (it stopped the server)."""
        self.metrics = (
            MetricsEndpoint(settings.host, settings.metrics_port, spec.metrics_collectors)
            if settings.metrics_port
            else None
        )
        """The Prometheus endpoint (``metrics.port`` once started), None when off."""

    @property
    def address(self) -> str:
        """``host:port`` to dial this server at (a wildcard host is dialled on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(
            self.settings.host, self.settings.host
        )
        return _host_port(host, self.port)

    async def start(self) -> None:
        """Run ``on_start`` hooks, start serving, then report SERVING for every service."""
        if self._started:
            return
        self._started = True
        names = ["", *self._spec.service_names]
        try:
            for name in names:
                await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            for hook in self._spec.on_start:
                await hook()
            if self.metrics is not None:
                self.metrics.start()
            await self.server.start()
            if self._spec.readiness is None:
                await self._report(True)
            else:
                await self._start_readiness(self._spec.readiness)
        except BaseException:
            await self.stop(0)
            raise
        logger.info(
            "serving %s on %s",
            ", ".join(self._spec.service_names),
            self.address,
            extra={"port": self.port, "pid": os.getpid()},
        )

    async def _report(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if self._stop_task is not None:
            return  # stopping: health stays NOT_SERVING
        for name in ["", *self._spec.service_names]:
            await self.health.set(name, status)

    async def _start_readiness(self, readiness: RedisReadiness) -> None:
        """Follow Redis in the background; return once it answered and the service is
        prepared, or once the first attempt failed (health then stays NOT_SERVING)."""
        self._readiness_task = asyncio.ensure_future(self._follow_redis(readiness))
        first = asyncio.ensure_future(readiness.wait_first_outcome())
        try:
            await asyncio.wait({first, self._readiness_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            first.cancel()
        if self.failure is not None:
            raise self.failure

    async def _follow_redis(self, readiness: RedisReadiness) -> None:
        try:
            await readiness.run(self._report)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not an outage (those are retried) but a bad start (e.g. a partition mismatch):
            # the process must end with the error, as it would have when starting in the
            # foreground.
            logger.error("start-up failed: %s", exc)
            self.failure = exc
            if self._stop_task is None:
                self._stop_task = asyncio.ensure_future(self._stop(0))

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully; safe to call many times and concurrently (all wait for one stop).

        Args:
            grace: Seconds in-flight RPCs may still run; ``None`` uses
                ``settings.shutdown_grace_seconds``. New RPCs are refused at once.
        """
        if self._stop_task is None:
            if grace is None:
                grace = self.settings.shutdown_grace_seconds
            self._stop_task = asyncio.ensure_future(self._stop(grace))
        # shield: a caller being cancelled must not abandon the shutdown half-way.
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float) -> None:
        logger.info("stopping (grace %.1fs)", grace)
        try:
            if (
                self._readiness_task is not None
                and self._readiness_task is not asyncio.current_task()
            ):
                self._readiness_task.cancel()
                await _bounded(
                    asyncio.gather(self._readiness_task, return_exceptions=True),
                    STOP_STEP_MARGIN_S,
                    "the Redis watchdog",
                )
            # NOT_SERVING first so load balancers drain this replica while RPCs finish.
            await self.health.enter_graceful_shutdown()
            await _bounded(self.server.stop(grace), grace + STOP_STEP_MARGIN_S, "gRPC")
            if self.metrics is not None:
                self.metrics.stop()
            for hook in self._spec.on_shutdown:
                await self._run_shutdown_hook(hook)
            if self._owns_tracer_provider:
                await asyncio.to_thread(shutdown_tracing, self.tracer_provider)
            else:
                await asyncio.to_thread(self.tracer_provider.force_flush)
            # The RPC count shows each worker's share when several serve one port.
            logger.info("stopped", extra={"pid": os.getpid(), "rpcs": self.rpc_counter.count})
        finally:
            self._terminated.set()

    async def _run_shutdown_hook(self, hook: Hook) -> None:
        # Bounded: a hook stuck on a long wait (a Retry-After, an unreachable Redis) must not
        # keep the process from exiting. What it abandons is still in Redis (unacknowledged
        # stream entries, the outbox) and is redelivered by the next process.
        name = getattr(hook, "__qualname__", repr(hook))
        timeout = self.settings.shutdown_hook_timeout_seconds
        try:
            await asyncio.wait_for(hook(), timeout)
        except TimeoutError:
            logger.error("shutdown hook %s did not finish within %.1fs: cancelled", name, timeout)
        except Exception:
            logger.exception("shutdown hook %s failed", name)

    async def wait_for_termination(self) -> None:
        """Return when ``stop`` has finished (hooks and telemetry flush included).

        Safe to cancel. (Unlike ``grpc.aio.Server.wait_for_termination``: cancelling a task
        awaiting that cancels the server's internal shutdown future, and a later
        ``server.stop()`` then raises CancelledError.)
        """
        await self._terminated.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host bracketed."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _unscoped_methods(service_names: Sequence[str], method_scopes: Mapping[str, str]) -> list[str]:
    """Methods of ``service_names`` (known to the protobuf pool) with no scope in the map."""
    pool = descriptor_pool.Default()
    missing = []
    for name in service_names:
        try:
            service = pool.FindServiceByName(name)
        except KeyError:
            continue  # not a generated service (e.g. a generic handler): nothing to check
        missing += [
            f"/{name}/{method.name}"
            for method in service.methods
            if f"/{name}/{method.name}" not in method_scopes
        ]
    return missing


def build_server(
    settings: ServiceSettings,
    spec: ServerSpec,
    *,
    tracer_provider: TracerProvider | None = None,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    options: Sequence[tuple[str, Any]] = (),
) -> ManagedServer:
    """Build (and bind, not start) the server for ``spec``. Must run inside an event loop.

    Interceptors, outermost first: tracing, auth (unless ``settings.auth_enabled`` is false),
    error mapping, request decoding (undecodable or enum-invalid requests become
    ``INVALID_ARGUMENT``), then ``extra_interceptors`` — innermost, so domain errors they raise
    are mapped and they only see authenticated calls.

    Args:
        settings: Host, port, keys, grace period, service name for traces.
        spec: The service's servicers and method scopes.
        tracer_provider: Trace into this provider (tests pass one with an in-memory exporter);
            by default one is created from ``settings.otel_service_name`` and shut down on stop.
        extra_interceptors: Further server interceptors.
        options: ``grpc.aio.server`` channel arguments.

    Raises:
        ValueError: A method of a registered service has no scope (with auth enabled).
        RuntimeError: The address cannot be bound.
    """
    owns_provider = tracer_provider is None
    provider = tracer_provider or setup_tracing(settings.otel_service_name)

    rpc_counter = RpcCounter()
    interceptors: list[grpc.aio.ServerInterceptor] = [rpc_counter, server_interceptor(provider)]
    if exports_spans(provider):
        # Engine and Redis step spans only when spans go somewhere (their cost, see README).
        interceptors.append(StepTracerInterceptor(provider))
    if settings.auth_enabled:
        missing = _unscoped_methods(spec.service_names, spec.method_scopes)
        if missing:
            raise ValueError(f"methods without a scope in method_scopes: {', '.join(missing)}")
        keys = ApiKeyStore(settings.api_keys)
        if not len(keys):
            logger.warning(
                "auth is enabled but no API keys are configured: all RPCs but "
                "health and reflection will be refused"
            )
        interceptors.append(AuthInterceptor(keys, spec.method_scopes))
    else:
        logger.warning("auth is DISABLED: every caller may call every method")
    interceptors.append(ErrorMappingInterceptor())
    if spec.readiness is not None:
        interceptors.append(ReadinessInterceptor(spec.readiness))
    # Inside error mapping, which sends the INVALID_ARGUMENT it raises for bad requests.
    interceptors.append(RequestDecodingInterceptor())
    interceptors.extend(extra_interceptors)

    server = grpc.aio.server(
        interceptors=interceptors, options=[*server_options(settings), *options]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    spec.register(server)
    reflection.enable_server_reflection(
        [*spec.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )

    address = _host_port(settings.host, settings.port)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {address}: {exc}") from None
    if port == 0:  # older grpcio reports a failed bind this way
        raise RuntimeError(f"cannot listen on {address}")
    return ManagedServer(
        server=server,
        port=port,
        health_servicer=health_servicer,
        tracer_provider=provider,
        owns_tracer_provider=owns_provider,
        settings=settings,
        spec=spec,
        rpc_counter=rpc_counter,
    )


def server_options(settings: ServiceSettings) -> list[tuple[str, Any]]:
    """The channel arguments every crowd server gets from its settings.

    ``grpc.so_reuseport``: several worker processes (``workers``) listen on one port and the
    kernel spreads new connections over them. ``grpc.max_connection_age_ms``: a long-lived
    client connection is recycled now and then (GOAWAY; the client reconnects for its next
    RPC), so it may land on another worker or replica and the load spreads again.
    """
    options: list[tuple[str, Any]] = [("grpc.so_reuseport", 1)]
    if settings.max_connection_age_seconds > 0:
        options.append(
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000))
        )
        if settings.max_connection_age_grace_seconds > 0:
            grace_ms = int(settings.max_connection_age_grace_seconds * 1000)
            options.append(("grpc.max_connection_age_grace_ms", grace_ms))
    return options


async def serve_until_signal(
    managed: ManagedServer, *, after_start: Callable[[], None] | None = None
) -> None:
    """Start ``managed`` (if needed), call ``after_start``, serve until SIGTERM or SIGINT,
    then stop gracefully.

    Also returns if something else stopped the server (a ``stop()`` call).
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        await managed.start()
        if after_start is not None:
            after_start()
        waiters = {
            asyncio.ensure_future(stop_requested.wait()),
            asyncio.ensure_future(managed.wait_for_termination()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if stop_requested.is_set():
            logger.info("termination signal received")
        await managed.stop()
        if managed.failure is not None:
            raise managed.failure
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def run_service(
    settings_cls: type[S],
    create_server: Callable[[S], Awaitable[ManagedServer]],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
) -> None:
    """Entry point for a service's ``main``: settings from CLI/env/file, logging, serve.

    Args:
        settings_cls: The service's settings class.
        create_server: Builds the service's server from its settings (async: it may connect
            to Redis first).
        argv: Command-line arguments (default ``sys.argv[1:]``).
        prog: Program name shown by ``--help``.

    With ``workers`` > 1 this process becomes the supervisor of that many single-process
    workers on one port, each started by running this program's command line again (see
    :mod:`service_common.supervisor`); it exits with the supervisor's status.
    """
    settings = settings_cli(settings_cls, argv, prog=prog)
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        # A supervisor of N single-process workers on the same port (service_common.supervisor).
        sys.exit(run_supervised(settings, sys.argv[1:] if argv is None else argv))

    async def main() -> None:
        managed = await create_server(settings)
        # GC tuned only here, in a service's own process (never in a test's or an embedding
        # program's), once start-up has loaded what stays alive for the process's life.
        await serve_until_signal(managed, after_start=lambda: tune_gc(settings.gc_young_threshold))

    asyncio.run(main())


async def _bounded(step: Awaitable[Any], timeout_s: float, what: str) -> None:
    """Await one step of a shutdown for at most ``timeout_s``: a stop must end (a SIGTERM
    that never finishes gets the process killed with everything in flight). On a timeout
    the tasks still pending are logged, to show what held it."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if done:
        task.result()
        return
    # Not awaited after the cancel: a step that ignores cancellation must not hold us.
    task.cancel()
    pending = sorted(
        other.get_coro().__qualname__  # type: ignore[union-attr]
        for other in asyncio.all_tasks()
        if not other.done() and other is not asyncio.current_task()
    )
    logger.warning(
        "stopping %s took over %.0fs; went on (pending tasks: %s)",
        what,
        timeout_s,
        ", ".join(pending[:20]) or "none",
    )
