"""The ``crowd`` command line: track events, read profiles, validate and publish definitions,
follow traces, inspect and retry actions.

Targets and the API key come from options or the environment (``CROWD_PROFILE_TARGET``,
``CROWD_DISPATCH_TARGET``, ``CROWD_API_KEY``; prefer the environment for the key: options
show in ``ps``). Exit status: 0 ok, 1 invalid input, problems found or a failed call, 2 usage
error, 3 server unavailable or the API key refused.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Annotated

import typer

from crowd.cli import actions, audiences, backfill, cohorts, defs, imports, profiles, stats, trace
from crowd.cli.output import Output, OutputMode
from crowd.cli.session import EXIT_OK, Session

app = typer.Typer(
    name="crowd",
    help=(
        "Track events, read profiles, validate and publish definitions, follow traces, "
        "inspect and retry actions. Exit status: 0 ok, 1 invalid input, problems found or failed "
        "call, 2 usage, 3 server unavailable or key refused."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(defs.app, name="defs")
app.add_typer(defs.app, name="definitions", help="Alias of defs.")
app.add_typer(audiences.app, name="audience")
app.add_typer(actions.app, name="actions")
app.add_typer(backfill.app, name="backfill")
app.add_typer(cohorts.app, name="cohort")
app.command()(profiles.track)
app.command()(profiles.profile)
app.command()(profiles.delete)
app.command()(trace.trace)
app.command(name="import")(imports.import_)
app.command()(stats.stats)


def version() -> str:
    """The installed version: the client distribution's, or the development checkout's."""
    for distribution in ("crowd-client", "crowd"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _show_version(value: bool) -> None:
    if value:
        print(f"crowd {version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def configure(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            envvar="CROWD_PROFILE_TARGET",
            help="profile service host:port",
            metavar="HOST:PORT",
        ),
    ] = "127.0.0.1:50051",
    dispatch: Annotated[
        str,
        typer.Option(
            "--dispatch",
            envvar="CROWD_DISPATCH_TARGET",
            help="dispatch service host:port",
            metavar="HOST:PORT",
        ),
    ] = "127.0.0.1:50052",
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            envvar="CROWD_API_KEY",
            help="API key (prefer the environment: options show in ps)",
            show_default=False,
            show_envvar=True,
        ),
    ] = "",
    output: Annotated[
        OutputMode,
        typer.Option(
            "--output",
            "-o",
            help="pretty on a terminal, JSON lines otherwise (auto), or force one",
            case_sensitive=False,
        ),
    ] = OutputMode.AUTO,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines on stdout (same as --output json)")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="show the version and exit",
        ),
    ] = False,
) -> None:
    """Track events, read profiles, manage definitions, follow traces, inspect actions."""
    ctx.obj = Session(profile, dispatch, api_key, Output(OutputMode.JSON if as_json else output))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 failed, 2 usage, 3 server unavailable)."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="crowd")
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
