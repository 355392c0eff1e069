"""Request recorder and data-point counters, with awaitable conditions for tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Headers whose values are credentials; they are replaced before anything is stored.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key"})
#: Body fields of the cohort endpoints that carry credentials.
_SECRET_BODY_FIELDS = ("partner_api_key", "client_secret", "api_key")
REDACTED = "[REDACTED]"


def fingerprint(secret: str) -> str:
    """Short, non-reversible tag of a key, so tests can tell keys apart without storing them."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy of ``headers`` (lower-cased names) with credential values replaced."""
    return {
        name.lower(): (REDACTED if name.lower() in _SECRET_HEADERS else value)
        for name, value in headers.items()
    }


def redact_body(body: Any) -> Any:
    """Copy of a top-level JSON object with credential fields replaced."""
    if not isinstance(body, dict):
        return body
    return {k: (REDACTED if k in _SECRET_BODY_FIELDS else v) for k, v in body.items()}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox answered (credentials redacted)."""

    seq: int
    """1-based arrival order among recorded requests."""
    time: float
    """Epoch seconds when the request arrived."""
    method: str
    path: str
    group: str | None
    """Endpoint group (``track``, ``identity``, ``export``, ``cohorts``) or ``None``."""
    headers: dict[str, str]
    """Request headers, lower-cased names, credentials replaced by ``[REDACTED]``."""
    body: Any
    """Parsed JSON body (credentials redacted), or ``None`` if unread or not JSON."""
    body_bytes: int
    """Size of the body as received (0 if it was refused before reading)."""
    status: int
    """Status the sandbox answered."""
    response: Any
    """JSON body the sandbox answered."""
    duration_ms: float
    """Time spent answering, including injected latency."""
    credential: str | None = None
    """:func:`fingerprint` of the API key / client secret used, if any."""

    @property
    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` header, if the client sent one."""
        return self.headers.get("traceparent")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "group": self.group,
            "headers": self.headers,
            "traceparent": self.traceparent,
            "body": self.body,
            "body_bytes": self.body_bytes,
            "status": self.status,
            "response": self.response,
            "duration_ms": self.duration_ms,
            "credential": self.credential,
        }


@dataclass
class DataPoints:
    """Billable data points Braze would log for what the sandbox applied."""

    attributes: int = 0
    """One per attribute key set (or removed, or array-updated) on a profile."""
    events: int = 0
    """One per custom event recorded."""
    purchases: int = 0
    """One per purchase object recorded."""
    cohort_assignments: int = 0
    """One per user added to or removed from a cohort."""

    @property
    def total(self) -> int:
        """Sum of all data points."""
        return self.attributes + self.events + self.purchases + self.cohort_assignments

    def reset(self) -> None:
        """Zero every counter in place (handlers hold a reference to this object)."""
        self.attributes = self.events = self.purchases = self.cohort_assignments = 0

    def to_dict(self) -> dict[str, int]:
        """JSON-ready view."""
        return {
            "attributes": self.attributes,
            "events": self.events,
            "purchases": self.purchases,
            "cohort_assignments": self.cohort_assignments,
            "total": self.total,
        }


class Recorder:
    """Keeps answered requests and wakes waiters after each one.

    Only the newest ``max_requests`` requests are kept (benchmarks send hundreds of thousands);
    the counters, and therefore :meth:`wait_for_requests`, always cover every request.
    """

    def __init__(self, max_requests: int | None = None) -> None:
        self.requests: deque[RecordedRequest] = deque(maxlen=max_requests)
        """The newest recorded requests, oldest first."""
        self.total = 0
        """Requests recorded since the last :meth:`clear` (including ones no longer kept)."""
        self.data_points = DataPoints()
        """Counters of data points applied to the store."""
        self.status_counts: Counter[int] = Counter()
        """Responses per status code."""
        self.path_counts: Counter[str] = Counter()
        """Requests per path."""
        self.group_counts: Counter[str] = Counter()
        """Requests per endpoint group."""
        self._condition: asyncio.Condition | None = None

    def _cond(self) -> asyncio.Condition:
        # Created lazily so the condition binds to the loop that runs the sandbox.
        if self._condition is None:
            self._condition = asyncio.Condition()
        return self._condition

    async def record(self, request: RecordedRequest) -> None:
        """Store ``request`` and wake everybody waiting for a condition."""
        self.requests.append(request)
        self.total += 1
        self.status_counts[request.status] += 1
        self.path_counts[request.path] += 1
        if request.group is not None:
            self.group_counts[request.group] += 1
        await self.notify()

    async def notify(self) -> None:
        """Wake waiters so they re-check their predicates (e.g. after a reset)."""
        cond = self._cond()
        async with cond:
            cond.notify_all()

    def next_seq(self) -> int:
        """Sequence number for the next recorded request."""
        return self.total + 1

    def clear(self) -> None:
        """Forget recorded requests and counters."""
        self.requests.clear()
        self.total = 0
        self.status_counts.clear()
        self.path_counts.clear()
        self.group_counts.clear()
        self.data_points.reset()

    # A timeout argument (not asyncio.timeout) is the documented test API: every wait must be
    # bounded, and callers should not have to remember to wrap it.
    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Return once ``predicate()`` is true; it is re-checked after every request.

        Raises:
            TimeoutError: ``predicate`` stayed false for ``timeout`` seconds.
        """
        cond = self._cond()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(predicate), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"sandbox condition not met within {timeout}s ({self.total} requests recorded)"
                ) from None

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (see wait_until)
        *,
        path: str | None = None,
        group: str | None = None,
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` matching requests are recorded and return them all."""

        def seen() -> int:
            # Counters keep each wake-up O(1); benchmarks wait on tens of thousands of requests.
            if path is not None and group is not None:
                return len(matching())
            if path is not None:
                return self.path_counts[path]
            if group is not None:
                return self.group_counts[group]
            return self.total

        def matching() -> list[RecordedRequest]:
            return [
                r
                for r in self.requests
                if (path is None or r.path == path) and (group is None or r.group == group)
            ]

        await self.wait_until(lambda: seen() >= count, timeout)
        return matching()
