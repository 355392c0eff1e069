"""Run the ``crowd`` CLI in this process with typer's ``CliRunner`` (no subprocess).

The real servers run on the test's event loop, and grpc.aio keeps per-loop state, so the
CLI must not open a second loop (``asyncio.run``). :func:`invoke` runs ``CliRunner`` in a
worker thread (the test's loop keeps serving) and sets the CLI's documented hook
``crowd.cli.session.coroutine_runner`` so each command's async work (its gRPC client and
calls) runs on the test's loop. ``env`` applies for the duration of the call; the
developer's own ``CROWD_*`` settings are unset meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any

from typer.testing import CliRunner

from crowd.cli import session
from crowd.cli.main import app
from tests.cli.cli_runner import Ran

PLAIN = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
CALL_TIMEOUT_S = 60.0


def invoke_sync(*args: str, env: dict[str, str] | None = None) -> Ran:
    """``crowd ARGS`` in process, for commands that talk to no server (offline ones)."""
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
    """``crowd ARGS`` in process against servers on this event loop."""
    loop = asyncio.get_running_loop()

    def on_this_loop(work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=CALL_TIMEOUT_S)

    previous = session.coroutine_runner
    session.coroutine_runner = on_this_loop
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(invoke_sync, *args, env=env), timeout=CALL_TIMEOUT_S * 2
        )
    finally:
        session.coroutine_runner = previous
