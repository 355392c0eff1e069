"""``crowd backfill status``: progress of the audience backfill."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from crowd.cli.session import session_of
from crowd.client import CrowdClient
from crowd.profile.v1 import definition_service_pb2

app = typer.Typer(help="Audience backfill: status.", no_args_is_help=True)


def status_document(response: definition_service_pb2.GetBackfillStatusResponse) -> dict[str, Any]:
    """The status as a plain mapping (every field, zeros included)."""
    return {
        "version": response.version,
        "audience_ids": list(response.audience_ids),
        "state": response.state,
        "profiles_scanned": response.profiles_scanned,
        "joins_found": response.joins_found,
        "partitions_done": response.partitions_done,
        "partitions_total": response.partitions_total,
        "partitions": [
            {
                "partition": p.partition,
                "profiles_scanned": p.profiles_scanned,
                "joins_found": p.joins_found,
                "done": p.done,
            }
            for p in response.partitions
        ],
    }


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document on stdout, per-partition included")
    ] = False,
) -> None:
    """Version, state (idle, running, done), profiles scanned and joins found."""
    session = session_of(ctx)

    async def read(client: CrowdClient) -> definition_service_pb2.GetBackfillStatusResponse:
        return await client.backfill_status()

    response = session.call(read)
    document = status_document(response)
    if as_json or not session.output.pretty:
        session.output.result(document, compact=True)
        return
    if not response.version:
        session.output.text(Text("no backfill has run"))
        return
    session.output.text(
        Text(
            f"backfill of {response.version} ({', '.join(response.audience_ids)}): "
            f"{response.state}, {response.profiles_scanned} profiles scanned, "
            f"{response.joins_found} joins, partitions {response.partitions_done}/"
            f"{response.partitions_total}"
        )
    )
