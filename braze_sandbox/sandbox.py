"""BrazeSandbox: the in-process API tests use to run and inspect the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

from braze_sandbox.app import build_app
from braze_sandbox.config import SandboxConfig
from braze_sandbox.faults import FaultInjector
from braze_sandbox.rate_limit import GroupTraffic, RateLimiter
from braze_sandbox.recorder import DataPoints, RecordedRequest, Recorder
from braze_sandbox.state import SandboxState
from braze_sandbox.store import Cohort, User, UserStore


class BrazeSandbox:
    """A strict, Braze-compatible HTTP server running on the current event loop.

    Example::

        sandbox = BrazeSandbox(SandboxConfig(api_keys={"key-1": frozenset({"users.track"})}))
        await sandbox.start()                     # 127.0.0.1, free port
        ...  # point the client at sandbox.url
        await sandbox.wait_for_requests(1, path="/users/track")
        assert sandbox.get_user("u1").attributes["plan"] == "gold"
        await sandbox.stop()

    It is also an async context manager (``async with BrazeSandbox() as sandbox:``).
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self._state = SandboxState(config or SandboxConfig())
        self._app = build_app(self._state)
        self._runner: web.AppRunner | None = None
        self._host = ""
        self._port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port) and return :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._host, self._port = str(address[0]), int(address[1])
        return self.url

    async def stop(self) -> None:
        """Stop listening and close open connections (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43567`` (use it as the Braze REST endpoint)."""
        if self._runner is None:
            raise RuntimeError("the sandbox is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        """Bound port (0 before :meth:`start`)."""
        return self._port

    @property
    def app(self) -> web.Application:
        """The aiohttp application, to mount it elsewhere."""
        return self._app

    # --- components ------------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        """The configuration the sandbox was built with."""
        return self._state.config

    @property
    def store(self) -> UserStore:
        """The user store (read it; mutate it only to seed test data)."""
        return self._state.store

    @property
    def faults(self) -> FaultInjector:
        """Run-time fault control (``set``, ``force_rate_limit``, ``add_minor_error``...)."""
        return self._state.faults

    @property
    def recorder(self) -> Recorder:
        """Recorded requests and counters."""
        return self._state.recorder

    @property
    def rate_limiter(self) -> RateLimiter:
        """The limiter and its traffic statistics."""
        return self._state.limiter

    # --- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every answered API request so far, in completion order (a copy)."""
        return list(self._state.recorder.requests)

    @property
    def users(self) -> dict[str, User]:
        """Identified profiles by external_id (alias-only profiles are in ``store.users``)."""
        return {u.external_id: u for u in self._state.store.users if u.external_id is not None}

    def get_user(self, external_id: str) -> User | None:
        """Profile with this external_id."""
        return self._state.store.get(external_id)

    def get_user_by_alias(self, alias_name: str, alias_label: str) -> User | None:
        """Profile holding this alias."""
        return self._state.store.get_by_alias(alias_name, alias_label)

    def cohort(self, partner: str, cohort_id: str) -> Cohort | None:
        """A partner cohort, if it exists."""
        return self._state.store.cohorts.get((partner, cohort_id))

    def drop_cohort(self, partner: str, cohort_id: str) -> bool:
        """Delete a cohort and its memberships (a cohort lost in Braze); whether it existed."""
        return self._state.store.drop_cohort(partner, cohort_id)

    def cohort_members(self, partner: str, cohort_id: str) -> set[str]:
        """external_ids (or braze_ids of unidentified profiles) in a cohort."""
        return {
            u.external_id or u.braze_id
            for u in self._state.store.cohort_members(partner, cohort_id)
        }

    @property
    def data_points(self) -> DataPoints:
        """Data points applied so far."""
        return self._state.recorder.data_points

    def traffic(self, group: str) -> GroupTraffic:
        """Traffic statistics of an endpoint group (``track``, ``identity``, ...)."""
        return self._state.limiter.traffic(group)

    def max_requests_in_window(self, group: str, *, sliding: bool = False) -> int:
        """Most requests ``group`` received in one rate-limit window.

        Args:
            group: Endpoint group.
            sliding: Measure over any interval of the window's length instead of the fixed
                windows Braze enforces (stricter; catches bursts across a window boundary).
        """
        traffic = self.traffic(group)
        return traffic.max_in_sliding_window if sliding else traffic.max_in_window

    # --- waiting ---------------------------------------------------------------------------

    # A timeout argument (not asyncio.timeout) is the documented test API: every wait must be
    # bounded, and callers should not have to remember to wrap it.
    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Return once ``predicate()`` holds; it is re-checked after every answered request.

        Raises:
            TimeoutError: Still false after ``timeout`` seconds.
        """
        await self._state.recorder.wait_until(predicate, timeout)

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (see wait_until)
        *,
        path: str | None = None,
        group: str | None = None,
    ) -> list[RecordedRequest]:
        """Wait for at least ``count`` requests (optionally to one path/group); return them."""
        return await self._state.recorder.wait_for_requests(count, timeout, path=path, group=group)

    async def reset(self) -> None:
        """Clear users, requests, counters and rate windows; restore start-up faults."""
        await self._state.reset()
