"""``crowd actions get|failed|retry``: the dispatch service's actions."""

from __future__ import annotations

from typing import Annotated

import typer

from crowd.cli.session import session_of
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2

app = typer.Typer(help="Dispatch actions: get, failed, retry.", no_args_is_help=True)

Connector = Annotated[str, typer.Option("--connector", help="only this connector's actions")]


@app.command()
def get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="idempotency key", show_default=False)],
) -> None:
    """Show one action's status."""
    session = session_of(ctx)

    async def read(client: CrowdClient) -> action_pb2.ActionStatus:
        return await client.get_action(key)

    session.output.result(session.call(read))


@app.command()
def failed(ctx: typer.Context, connector: Connector = "") -> None:
    """List dead-lettered actions, one per line."""
    session = session_of(ctx)

    async def read(client: CrowdClient) -> list[action_pb2.ActionStatus]:
        return await client.failed_actions(connector)

    for status in session.call(read):
        session.output.result(status)


@app.command()
def retry(
    ctx: typer.Context,
    keys: Annotated[
        list[str] | None, typer.Argument(help="idempotency keys", show_default=False)
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="every dead-lettered action")] = False,
    connector: Connector = "",
) -> None:
    """Requeue dead-lettered actions."""
    session = session_of(ctx)
    if not keys and not all_failed:
        raise typer.BadParameter("give idempotency keys or --all", param_hint="KEYS")

    async def requeue(client: CrowdClient) -> dispatch_service_pb2.RetryFailedActionsResponse:
        return await client.retry_failed_actions(
            keys or [], all_failed=all_failed, connector_id=connector
        )

    session.output.result(session.call(requeue))
