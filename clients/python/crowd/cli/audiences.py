"""``crowd audience size|members``."""

from __future__ import annotations

from typing import Annotated

import typer

from crowd.cli.session import session_of
from crowd.client import CrowdClient

app = typer.Typer(help="Audiences: size, members.", no_args_is_help=True)

AudienceId = Annotated[str, typer.Argument(help="audience id", show_default=False)]


@app.command()
def size(ctx: typer.Context, audience_id: AudienceId) -> None:
    """How many profiles are in an audience."""
    session = session_of(ctx)

    async def count(client: CrowdClient) -> int:
        return await client.audience_size(audience_id)

    session.output.result({"audience_id": audience_id, "size": session.call(count)})


@app.command()
def members(ctx: typer.Context, audience_id: AudienceId) -> None:
    """The profile ids in an audience."""
    session = session_of(ctx)

    async def list_members(client: CrowdClient) -> list[str]:
        return await client.audience_members(audience_id)

    session.output.result({"profile_ids": session.call(list_members)})
