"""Rows of an input file, numbered by line: CSV (a header row, UTF-8) or JSON lines (one object
per line). A row that cannot be read is a `BadRow`; the rows after it are still read."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One data row and the line it ends on (the header is line 1)."""

    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be imported, and why."""

    line: int
    reason: str


def is_jsonl(path: Path) -> bool:
    """JSON lines by the name (``.jsonl``, ``.ndjson``, ``.json``); anything else is CSV."""
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def file_identity(path: Path) -> str:
    """A stable identity of the file's content (sha256): the same bytes give the same record
    ids wherever the file lies, so a replay is recognised by the server's dedup."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(path: Path) -> Iterator[Row | BadRow]:
    """Every row of the file in order."""
    return _jsonl_rows(path) if is_jsonl(path) else _csv_rows(path)


def _jsonl_rows(path: Path) -> Iterator[Row | BadRow]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                yield BadRow(number, "not UTF-8")
                continue
            if not text:
                continue
            try:
                document = json.loads(text)
            except json.JSONDecodeError as error:
                yield BadRow(number, f"not JSON: {error.msg}")
                continue
            if not isinstance(document, dict):
                yield BadRow(number, "not a JSON object")
                continue
            yield Row(number, document)


def _csv_rows(path: Path) -> Iterator[Row | BadRow]:
    with path.open(encoding="utf-8-sig", newline="", errors="strict") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            return
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                yield BadRow(reader.line_num + 1, "not UTF-8")
                return  # the decoder cannot resync inside a text stream
            except csv.Error as error:
                yield BadRow(reader.line_num, f"bad CSV: {error}")
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                yield BadRow(reader.line_num, f"{len(cells)} cells, the header has {len(header)}")
                continue
            yield Row(reader.line_num, dict(zip(header, cells, strict=True)))
