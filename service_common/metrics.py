"""The Prometheus ``/metrics`` endpoint both services share, and helpers for their metrics.

Counters and histograms are module-level ``prometheus_client`` objects (see
``profile_service.metrics`` and ``dispatch_service.metrics``) registered in the default
registry. Gauges that describe Redis (queue depth, backlog age) are *not* updated per event:
a :class:`RedisGaugeCollector` reads them when Prometheus scrapes, on the service's own event
loop, with a short timeout (a slow Redis gives a scrape without those gauges, never a hang).

With ``--workers N`` every worker process serves its own endpoint on ``metrics_port + index``
(see ``ServiceSettings.worker_overrides``): counters are per process and Prometheus sums them,
so no shared multiprocess directory is needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "MetricsEndpoint",
    "RedisGaugeCollector",
    "bounded_label",
]

logger = logging.getLogger(__name__)

#: Distinct values one label may take before new ones are folded into ``"other"``.
MAX_LABEL_VALUES = 200
OTHER = "other"
SCRAPE_TIMEOUT_S = 5.0
"""How long a scrape waits for the Redis gauges (queue depths, backlog ages); Prometheus's
default scrape timeout is 10 s, and a busy Redis or event loop can take over a second."""

_seen: dict[str, set[str]] = {}
_seen_lock = threading.Lock()


def bounded_label(family: str, value: str) -> str:
    """``value`` as a label of ``family``, folded into ``"other"`` past MAX_LABEL_VALUES.

    Audience and action ids come from definitions (bounded), but a long-running process sees
    every version ever published: the cap keeps the series count bounded anyway.
    """
    with _seen_lock:
        seen = _seen.setdefault(family, set())
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OTHER
        seen.add(value)
        return value


class _DefaultRegistry(Collector):
    """The process-wide registry's metrics, served alongside one server's own gauges."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


GaugeReader = Callable[[], Coroutine[Any, Any, list[GaugeMetricFamily]]]


class RedisGaugeCollector(Collector):
    """Gauges computed at scrape time by ``read`` on the service's event loop."""

    def __init__(self, read: GaugeReader) -> None:
        self._read = read
        self.loop: asyncio.AbstractEventLoop | None = None

    def collect(self) -> Iterable[Metric]:
        loop = self.loop
        if loop is None or loop.is_closed():
            return []
        future = asyncio.run_coroutine_threadsafe(self._read(), loop)
        try:
            metrics: list[GaugeMetricFamily] = future.result(timeout=SCRAPE_TIMEOUT_S)
            return metrics
        except Exception as exc:  # timeout or Redis error: scrape the counters anyway
            future.cancel()
            logger.warning("metrics: Redis gauges unavailable: %s", type(exc).__name__)
            return []


class MetricsEndpoint:
    """An HTTP server (its own thread) answering ``GET /metrics``."""

    def __init__(self, host: str, port: int, collectors: Sequence[RedisGaugeCollector]) -> None:
        self._host = host.strip("[]") or "0.0.0.0"
        self._requested_port = port
        self._collectors = list(collectors)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        """The bound port once started."""

    def start(self) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_DefaultRegistry())
        loop = asyncio.get_running_loop()
        for collector in self._collectors:
            collector.loop = loop
            registry.register(collector)
        self._server, self._thread = start_http_server(
            self._requested_port, addr=self._host, registry=registry
        )
        self.port = int(self._server.server_port)
        logger.info("metrics on http://%s:%d/metrics", self._host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
