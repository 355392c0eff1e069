"""``crowd trace``: follow a visitor's (or one trace id's) live trace until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from crowd.cli.session import session_of
from crowd.cli.trace_lines import trace_line
from crowd.client import CrowdClient


def trace(
    ctx: typer.Context,
    visitor_id: Annotated[str, typer.Argument(help="visitor id", show_default=False)] = "",
    trace_id: Annotated[str, typer.Option(help="follow one trace id instead")] = "",
    after: Annotated[str, typer.Option(help='cursor; "0" replays the stored history')] = "0",
    limit: Annotated[
        int, typer.Option(min=0, help="stop after this many entries (0: until Ctrl-C)")
    ] = 0,
) -> None:
    """Follow a live trace, stored history first; one coloured line per entry (a JSON line
    each with --json)."""
    session = session_of(ctx)
    if not visitor_id and not trace_id:
        raise typer.BadParameter("give a visitor id or --trace-id", param_hint="VISITOR_ID")

    async def follow(client: CrowdClient) -> None:
        shown = 0
        async for entry in client.stream_trace(visitor_id, trace_id=trace_id, after=after):
            if session.output.pretty:
                session.output.text(trace_line(entry))
            else:
                session.output.result(entry)
            shown += 1
            if shown == limit:
                return

    try:
        session.call(follow)
    except KeyboardInterrupt:  # Ctrl-C is how a live trace ends: no traceback
        raise typer.Exit(0) from None
