"""``crowd cohort resync AUDIENCE``: refill the Braze cohort(s) an audience is bound to."""

from __future__ import annotations

from typing import Annotated

import typer

from crowd.cli.session import session_of
from crowd.client import CrowdClient
from crowd.profile.v1 import profile_service_pb2

app = typer.Typer(help="Braze cohorts bound to audiences.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Braze cohorts bound to audiences."""


@app.command()
def resync(
    ctx: typer.Context,
    audience_id: Annotated[str, typer.Argument(help="bound audience id", show_default=False)],
    cohort_id: Annotated[
        str, typer.Option("--cohort", help="only this cohort of the audience's bindings")
    ] = "",
) -> None:
    """Send every current member of AUDIENCE to its bound cohort(s) (recovery), page by page;
    prints progress, then the result."""
    session = session_of(ctx)

    async def run(client: CrowdClient) -> profile_service_pb2.ResyncCohortResponse:
        last = profile_service_pb2.ResyncCohortResponse()
        async for progress in client.resync_cohort(audience_id, cohort_id):
            last = progress
            if not progress.done:
                session.output.problem(
                    f"resync: {progress.members_scanned} scanned, {progress.members_sent} sent"
                )
        return last

    session.output.result(session.call(run))
