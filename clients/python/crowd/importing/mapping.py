"""The column mapping file (YAML or JSON): which column is the visitor, which columns become
which event attributes, and how dates are written. See examples/import/mapping.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crowd.importing.cells import TYPES


class MappingError(ValueError):
    """A mapping file that cannot be used; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Column:
    """One mapped column: the event attribute it fills and its type."""

    name: str
    type: str = "string"


@dataclass(frozen=True)
class Mapping:
    """How rows become import records."""

    visitor_column: str
    visitor_attribute: str = ""  # set: the column holds a visitor-ID value of this attribute
    event: str = "import"
    time_column: str = ""
    date_format: str = "%Y-%m-%d"
    columns: dict[str, Column] = field(default_factory=dict)


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; a bad one raises `MappingError`."""
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise MappingError([f"{path}: cannot read: {str(error).splitlines()[0]}"]) from None
    return parse_mapping(document)


def parse_mapping(document: Any) -> Mapping:
    """A `Mapping` from a parsed document; every problem is reported at once."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise MappingError(["the mapping must be a mapping (object)"])
    visitor = document.get("visitor")
    if not isinstance(visitor, dict) or not isinstance(visitor.get("column"), str):
        problems.append("visitor.column: required, the column holding the visitor id")
        visitor = {}
    attribute = visitor.get("attribute", "")
    if not isinstance(attribute, str):
        problems.append("visitor.attribute: must be a visitor-ID attribute id")
        attribute = ""
    columns: dict[str, Column] = {}
    raw_columns = document.get("columns", {})
    if not isinstance(raw_columns, dict):
        problems.append("columns: must map column names to {name, type}")
        raw_columns = {}
    for column, spec in raw_columns.items():
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("name", column), str):
            problems.append(f"columns.{column}: expected {{name, type}}")
            continue
        kind = spec.get("type", "string")
        if kind not in TYPES:
            problems.append(f"columns.{column}.type: one of {', '.join(TYPES)}")
            continue
        columns[str(column)] = Column(name=spec.get("name", str(column)), type=kind)
    for key in ("event", "date_format"):
        if key in document and not isinstance(document[key], str):
            problems.append(f"{key}: must be a string")
    time = document.get("time", {})
    time_column = time.get("column", "") if isinstance(time, dict) else time
    if not isinstance(time_column, str):
        problems.append("time.column: must be a column name")
    if problems:
        raise MappingError(problems)
    return Mapping(
        visitor_column=visitor["column"],
        visitor_attribute=attribute,
        event=document.get("event", "import"),
        time_column=time_column,
        date_format=document.get("date_format", "%Y-%m-%d"),
        columns=columns,
    )
