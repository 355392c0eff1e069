"""Stream a file's rows to ``ImportRecords`` in chunks, one call per chunk, and move the
checkpoint after each acknowledged chunk. Bad rows are reported with their line numbers; the
good rows around them are imported."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crowd.client import CrowdClient
from crowd.importing.checkpoint import Checkpoint
from crowd.importing.mapping import Mapping
from crowd.importing.records import RowError, to_record
from crowd.importing.rows import BadRow, Row, file_identity, read_rows
from crowd.profile.v1 import profile_service_pb2

MAX_CHUNK = 1000
_RECORD_INDEX = re.compile(r"^records\[(\d+)\]")


@dataclass
class ImportSummary:
    """What an import did."""

    rows: int = 0  # rows read in this run (skipped rows not counted)
    imported: int = 0
    duplicates: int = 0
    skipped_lines: int = 0  # acknowledged by an earlier run (checkpoint)
    errors: list[BadRow] = field(default_factory=list)
    stopped: bool = False  # the stop hook ended the run early


@dataclass
class _Chunk:
    records: list[profile_service_pb2.ImportRecord] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    last_line: int = 0


ChunkHook = Callable[[int, ImportSummary], bool]
"""Called after each acknowledged chunk with its number (from 1); True stops the import."""


async def import_file(
    client: CrowdClient,
    source: Path,
    mapping: Mapping,
    checkpoint_path: Path,
    *,
    chunk_size: int = 500,
    after_chunk: ChunkHook | None = None,
    on_rows: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Import ``source``; resume after the checkpoint's line when it is of the same content."""
    identity = file_identity(source)
    checkpoint = Checkpoint.open(checkpoint_path, identity)
    summary = ImportSummary()
    chunks = _chunks(source, mapping, identity, checkpoint.line, chunk_size, summary)
    for number, chunk in enumerate(chunks, start=1):
        if chunk.records:
            response = await client.profiles.ImportRecords(
                _one(chunk.records), metadata=client.metadata, timeout=60
            )
            summary.imported += response.imported
            summary.duplicates += response.duplicates
            for violation in response.violations:
                found = _RECORD_INDEX.match(violation.field)
                index = int(found.group(1)) if found else 0
                line = chunk.lines[min(index, len(chunk.lines) - 1)]
                summary.errors.append(BadRow(line, f"refused: {violation.description}"))
        checkpoint.advance(chunk.last_line)
        if on_rows is not None:
            on_rows(summary)
        if after_chunk is not None and after_chunk(number, summary):
            summary.stopped = True
            break
    summary.errors.sort(key=lambda bad: bad.line)
    return summary


async def _one(
    records: list[profile_service_pb2.ImportRecord],
) -> AsyncIterator[profile_service_pb2.ImportRecordsRequest]:
    yield profile_service_pb2.ImportRecordsRequest(records=records)


def _chunks(
    source: Path,
    mapping: Mapping,
    identity: str,
    resume_after: int,
    size: int,
    summary: ImportSummary,
) -> Iterator[_Chunk]:
    chunk = _Chunk()
    name = source.name
    for row in read_rows(source):
        if row.line <= resume_after:
            summary.skipped_lines += 1
            continue
        summary.rows += 1
        chunk.last_line = row.line
        if isinstance(row, BadRow):
            summary.errors.append(row)
        else:
            _add(chunk, row, mapping, name, identity, summary)
        if len(chunk.records) >= size:
            yield chunk
            chunk = _Chunk()
    if chunk.last_line:
        yield chunk


def _add(
    chunk: _Chunk, row: Row, mapping: Mapping, name: str, identity: str, summary: ImportSummary
) -> None:
    try:
        chunk.records.append(to_record(row, mapping, name, identity))
    except RowError as error:
        summary.errors.append(BadRow(row.line, str(error)))
        return
    chunk.lines.append(row.line)
