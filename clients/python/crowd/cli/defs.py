"""``crowd defs`` (alias ``crowd definitions``): validate, publish and read definitions.

``validate`` works offline by default, with the same validator the service runs; ``--remote``
asks the profile service instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowd.cli.session import EXIT_FAILED, positions_in, session_of
from crowd.client import CrowdClient
from crowd.definitions.errors import DefinitionError
from crowd.definitions.validator import validate as validate_offline
from crowd.profile.v1 import definition_service_pb2, definitions_pb2

app = typer.Typer(
    help="Definitions: validate (offline or --remote), publish, get.", no_args_is_help=True
)

DocumentFile = Annotated[
    Path, typer.Argument(help="YAML or JSON definitions document", show_default=False)
]


@app.command()
def validate(
    ctx: typer.Context,
    file: DocumentFile,
    remote: Annotated[
        bool, typer.Option("--remote", help="validate with the profile service, not locally")
    ] = False,
) -> None:
    """Validate a document: every problem once, as FILE:LINE:COLUMN: path: message; exit 1 if
    there is any."""
    session = session_of(ctx)
    definitions = session.load(file)
    if remote:

        async def ask(client: CrowdClient) -> definition_service_pb2.ValidateDefinitionsResponse:
            return await client.validate_definitions(definitions)

        response = session.call(ask)
        errors = [DefinitionError(e.path, e.message) for e in response.errors]
    else:
        errors = validate_offline(definitions)
    if errors:
        session.output.definition_errors(errors, positions_in(file))
        session.output.problem(f"{file}: {len(errors)} error(s)")
        raise typer.Exit(EXIT_FAILED)
    session.output.line(f"{file}: valid")


@app.command()
def publish(ctx: typer.Context, file: DocumentFile) -> None:
    """Publish a document as the new current version (the service validates it)."""
    session = session_of(ctx)
    definitions = session.load(file)

    async def send(client: CrowdClient) -> definitions_pb2.DefinitionsVersion:
        return await client.publish_definitions(definitions)

    session.output.result(session.call(send))


@app.command()
def get(
    ctx: typer.Context,
    version: Annotated[str, typer.Option(help='a version id such as "v3"; default: current')] = "",
) -> None:
    """Show the current or a named definitions version."""
    session = session_of(ctx)

    async def read(client: CrowdClient) -> definitions_pb2.DefinitionsVersion:
        return await client.get_definitions(version)

    session.output.result(session.call(read))
