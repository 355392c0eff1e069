"""``crowd defs`` (alias ``crowd definitions``): validate, publish and read definitions.

``validate`` works offline by default, with the same validator the service runs; ``--remote``
asks the profile service instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import grpc
import grpc.aio
import typer
from rich.table import Table
from rich.text import Text

from crowd.cli.session import EXIT_FAILED, Session, positions_in, session_of
from crowd.cli.trial import EventsFileError, describe, read_events
from crowd.client import CrowdClient
from crowd.definitions.diff import diff_definitions
from crowd.definitions.errors import DefinitionError, DefinitionsError
from crowd.definitions.loader import load_definitions_file
from crowd.definitions.positions import compose, locate
from crowd.definitions.validator import validate as validate_offline
from crowd.profile.v1 import definition_service_pb2, definitions_pb2, event_pb2

app = typer.Typer(
    help="Definitions: validate (offline or --remote), diff, try, publish, get.",
    no_args_is_help=True,
)

DocumentFile = Annotated[
    Path, typer.Argument(help="YAML or JSON definitions document", show_default=False)
]


JsonFlag = Annotated[bool, typer.Option("--json", help="one JSON line per item")]


@app.command()
def validate(
    ctx: typer.Context,
    file: DocumentFile,
    remote: Annotated[
        bool, typer.Option("--remote", help="validate with the profile service, not locally")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a document: every problem once, as FILE:LINE:COLUMN: path: message (--json:
    one object per line with file, line, column, path, message); exit 1 if there is any."""
    session = session_of(ctx)
    if as_json:
        try:
            definitions = load_definitions_file(file)
        except DefinitionsError as error:
            _json_errors(session, file, list(error.errors))
            raise typer.Exit(EXIT_FAILED) from None
    else:
        definitions = session.load(file)
    if remote:

        async def ask(client: CrowdClient) -> definition_service_pb2.ValidateDefinitionsResponse:
            return await client.validate_definitions(definitions)

        response = session.call(ask)
        errors = [DefinitionError(e.path, e.message) for e in response.errors]
    else:
        errors = validate_offline(definitions)
    if errors and as_json:
        _json_errors(session, file, errors)
    elif errors:
        session.output.definition_errors(errors, positions_in(file))
    if errors:
        session.output.problem(f"{file}: {len(errors)} error(s)")
        raise typer.Exit(EXIT_FAILED)
    session.output.line(f"{file}: valid")


def _json_errors(session: Session, file: Path, errors: list[DefinitionError]) -> None:
    """One JSON line per problem: file, line, column (0 when unknown), path, message."""
    try:
        root = compose(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        root = None
    for error in errors:
        line, column = (locate(root, error.path) if error.path else None) or (0, 0)
        document: dict[str, object] = {"file": str(file), "line": line, "column": column}
        document.update(path=error.path, message=error.message)
        session.output.result(document, compact=True)


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


@app.command()
def diff(ctx: typer.Context, file: DocumentFile, as_json: JsonFlag = False) -> None:
    """What publishing FILE would change against the live version: ids added, removed and
    changed (with the fields) per collection; a table, or one JSON line per change."""
    session = session_of(ctx)
    proposed = session.load(file)

    async def live(client: CrowdClient) -> definitions_pb2.Definitions:
        try:
            return (await client.get_definitions()).definitions
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return definitions_pb2.Definitions()  # nothing published yet
            raise

    changes = diff_definitions(session.call(live), proposed)
    if as_json or not session.output.pretty:
        for change in changes:
            session.output.result(change.to_dict(), compact=True)
        return
    if not changes:
        session.output.line(f"{file}: no changes against the live version")
        return
    table = Table(title=f"{file} against the live version")
    for column in ("collection", "id", "change", "fields"):
        table.add_column(column)
    for change in changes:
        table.add_row(
            change.collection,
            change.id,
            Text(change.change, style=_CHANGE_STYLES[change.change]),
            ", ".join(change.fields),
        )
    session.output.table(table)


_CHANGE_STYLES = {"added": "green", "removed": "red", "changed": "yellow"}


@app.command(name="try")
def try_(
    ctx: typer.Context,
    file: DocumentFile,
    events_file: Annotated[
        Path,
        typer.Argument(
            help="events, one JSON object per line: visitor_id, name, data, ...",
            metavar="EVENTS.jsonl",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Run EVENTS through the engine with FILE, in memory on the profile service (nothing
    stored, nothing sent): per event the attributes changed, badges, audiences joined and
    left, and the actions that would fire."""
    session = session_of(ctx)
    definitions = session.load(file)
    try:
        events = read_events(events_file)
    except EventsFileError as error:
        session.output.problem(str(error))
        raise typer.Exit(EXIT_FAILED) from None

    async def run(client: CrowdClient) -> list[event_pb2.EventResult]:
        return await client.try_definitions(definitions, events)

    results = session.call(run)
    for event, result in zip(events, results, strict=True):
        if as_json or not session.output.pretty:
            session.output.result(result, compact=True)
        else:
            session.output.text(describe(event, result))
