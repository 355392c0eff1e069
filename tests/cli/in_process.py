"""Run the ``crowd`` CLI in this process with typer's ``CliRunner`` (no subprocess).

The CLI runs each call with ``asyncio.run``, so it cannot share the test's event loop (where
the real servers run): :func:`invoke` runs it in a worker thread with its own loop, over
real gRPC to the servers. ``env`` applies for the duration of the call; the developer's own
``CROWD_*`` settings are unset meanwhile.
"""

from __future__ import annotations

import asyncio
import os

from typer.testing import CliRunner

from crowd.cli.main import app
from tests.cli.cli_runner import Ran

PLAIN = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def invoke_sync(*args: str, env: dict[str, str] | None = None) -> Ran:
    """``crowd ARGS`` in process (for commands that need no server of this test's loop)."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CROWD_")}
    result = CliRunner().invoke(
        app,
        list(args),
        env={**unset, **PLAIN, **(env or {})},
        prog_name="crowd",
        catch_exceptions=False,
    )
    return Ran(result.exit_code, result.stdout, result.stderr)


async def invoke(*args: str, env: dict[str, str] | None = None) -> Ran:
    """``crowd ARGS`` in process, in a worker thread, while this loop serves the servers."""
    return await asyncio.wait_for(asyncio.to_thread(invoke_sync, *args, env=env), timeout=60)
