"""``crowd import FILE --mapping MAPPING``: CSV or JSON lines rows into profiles, resumable."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from crowd.cli.session import EXIT_FAILED, EXIT_OK, session_of
from crowd.client import CrowdClient
from crowd.importing.checkpoint import default_path
from crowd.importing.importer import MAX_CHUNK, ImportSummary, import_file
from crowd.importing.mapping import MappingError, load_mapping
from crowd.importing.rows import BadRow


def import_(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            help="CSV (header row, UTF-8) or JSON lines (.jsonl) file",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ],
    mapping_file: Annotated[
        Path,
        typer.Option(
            "--mapping",
            "-m",
            help="column mapping (YAML or JSON), see examples/import/mapping.yaml",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="checkpoint file (default: FILE.checkpoint beside the input)"),
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option(help="write the bad rows here (.csv, else JSON lines)"),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option(min=1, max=MAX_CHUNK, help="records per ImportRecords call")
    ] = 500,
    stop_after_chunks: Annotated[
        int, typer.Option(hidden=True, help="test hook: stop after N acknowledged chunks")
    ] = 0,
) -> None:
    """Import a file's rows as events (resumable; exit 1 when rows were refused)."""
    session = session_of(ctx)
    try:
        mapping = load_mapping(mapping_file)
    except MappingError as error:
        for problem in error.problems:
            session.output.problem(f"{mapping_file}: {problem}")
        raise typer.Exit(EXIT_FAILED) from None
    checkpoint_path = checkpoint or default_path(source)
    progress = (
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TextColumn("[red]{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        if session.output.pretty and sys.stderr.isatty()
        else None
    )

    def stop(number: int, _summary: ImportSummary) -> bool:
        return 0 < stop_after_chunks <= number

    async def run(client: CrowdClient) -> ImportSummary:
        if progress is None:
            return await import_file(
                client, source, mapping, checkpoint_path, chunk_size=chunk_size, after_chunk=stop
            )
        with progress:
            task = progress.add_task(source.name, total=None, rate=0.0, errors=0)

            def show(summary: ImportSummary) -> None:
                elapsed = progress.tasks[0].elapsed or 0.0
                rate = summary.rows / elapsed if elapsed else 0.0
                progress.update(task, completed=summary.rows, rate=rate, errors=len(summary.errors))

            return await import_file(
                client,
                source,
                mapping,
                checkpoint_path,
                chunk_size=chunk_size,
                after_chunk=stop,
                on_rows=show,
            )

    try:
        summary = session.call(run)
    except KeyboardInterrupt:
        # The checkpoint holds the last acknowledged line: running again resumes there.
        session.output.problem(
            f"interrupted; run the same command again to resume ({checkpoint_path})"
        )
        raise typer.Exit(EXIT_FAILED) from None
    for bad in summary.errors:
        session.output.problem(f"{source}:{bad.line}: {bad.reason}")
    if errors is not None:
        _write_errors(errors, summary.errors)
    session.output.result(
        {
            "file": str(source),
            "rows": summary.rows,
            "imported": summary.imported,
            "duplicates": summary.duplicates,
            "skipped_lines": summary.skipped_lines,
            "errors": len(summary.errors),
            "checkpoint": str(checkpoint_path),
            "complete": not summary.stopped,
        }
    )
    raise typer.Exit(EXIT_FAILED if summary.errors else EXIT_OK)


def _write_errors(path: Path, errors: list[BadRow]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            writer = csv.writer(handle)
            writer.writerow(["line", "reason"])
            writer.writerows([bad.line, bad.reason] for bad in errors)
            return
        for bad in errors:
            handle.write(json.dumps({"line": bad.line, "reason": bad.reason}) + "\n")
