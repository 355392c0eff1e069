"""The Braze sandbox as the suites start it: on a free loopback port, stopped after the test.

Every suite's ``sandbox`` / ``make_sandbox`` fixture is built from these, so that the settings
all tests rely on live in one place: rate windows open at the first request (no test straddles
a clock boundary).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from braze_sandbox import BrazeSandbox, SandboxConfig

__all__ = ["SandboxStarter", "running_sandbox"]

TEST_DEFAULTS: dict[str, Any] = {"window_alignment": "first_request"}
"""`SandboxConfig` settings every test sandbox gets unless a test overrides them."""


class SandboxStarter:
    """Starts sandboxes with ``defaults`` plus per-call overrides; `stop_all` stops them all."""

    def __init__(self, **defaults: Any) -> None:
        self._defaults = {**TEST_DEFAULTS, **defaults}
        self._started: list[BrazeSandbox] = []

    async def __call__(self, **overrides: Any) -> BrazeSandbox:
        sandbox = BrazeSandbox(SandboxConfig(**{**self._defaults, **overrides}))
        await sandbox.start()
        self._started.append(sandbox)
        return sandbox

    async def stop_all(self) -> None:
        for sandbox in self._started:
            await sandbox.stop()
        self._started.clear()


@asynccontextmanager
async def running_sandbox(**settings: Any) -> AsyncIterator[BrazeSandbox]:
    """One started sandbox with ``settings`` (over the test defaults), stopped on exit."""
    starter = SandboxStarter(**settings)
    try:
        yield await starter()
    finally:
        await starter.stop_all()
