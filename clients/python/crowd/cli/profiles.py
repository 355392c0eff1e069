"""``crowd track``, ``crowd profile``, ``crowd delete``: events in, profiles out."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from crowd.cli.profile_view import profile_tables
from crowd.cli.session import session_of
from crowd.client import CrowdClient
from crowd.profile.v1 import event_pb2, profile_pb2, profile_service_pb2

VisitorId = Annotated[
    str,
    typer.Argument(help="anonymous visitor id (or use --attribute/--value)", show_default=False),
]
AttributeId = Annotated[str, typer.Option("--attribute", help="visitor-ID attribute id")]
AttributeValue = Annotated[str, typer.Option("--value", help="visitor-ID value")]


def parse_data(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    """Event data from ``--json`` and ``key=value`` pairs (values read as JSON when they parse,
    else as strings); bad input is a usage error (exit 2)."""
    data: dict[str, Any] = {}
    if raw_json:
        try:
            parsed = json.loads(raw_json)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"not JSON: {error.msg}", param_hint="--json") from None
        if not isinstance(parsed, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--json")
        data.update(parsed)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--data")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data


def track(
    ctx: typer.Context,
    visitor_id: Annotated[str, typer.Argument(help="visitor id", show_default=False)],
    name: Annotated[str, typer.Argument(help="event name", show_default=False)],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", metavar="KEY=VALUE", help="event data field (repeatable)"),
    ] = None,
    raw_json: Annotated[
        str | None, typer.Option("--json", metavar="OBJECT", help="event data as a JSON object")
    ] = None,
    event_id: Annotated[str, typer.Option(help="idempotency id of the event")] = "",
) -> None:
    """Send one event and show what it changed."""
    session = session_of(ctx)
    fields = parse_data(data or [], raw_json)

    async def send(client: CrowdClient) -> event_pb2.EventResult:
        return await client.track_event(visitor_id, name, fields, event_id=event_id)

    session.output.result(session.call(send))


def profile(
    ctx: typer.Context,
    visitor_id: VisitorId = "",
    attribute: AttributeId = "",
    value: AttributeValue = "",
) -> None:
    """Show a profile: tables on a terminal, one JSON line otherwise."""
    session = session_of(ctx)

    async def read(client: CrowdClient) -> profile_pb2.Profile:
        return await client.get_profile(visitor_id, attribute_id=attribute, value=value)

    found = session.call(read)
    if session.output.pretty:
        session.output.renderable(profile_tables(found))
    else:
        session.output.result(found)


def delete(
    ctx: typer.Context,
    visitor_id: VisitorId = "",
    attribute: AttributeId = "",
    value: AttributeValue = "",
) -> None:
    """Delete a profile."""
    session = session_of(ctx)

    async def remove(client: CrowdClient) -> profile_service_pb2.DeleteProfileResponse:
        return await client.delete_profile(visitor_id, attribute_id=attribute, value=value)

    session.output.result(session.call(remove))
