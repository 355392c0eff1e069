"""A row as an ``ImportRecord``: the visitor, the mapped attributes, ``_source_file`` and
``_file_line_num``, and a record id that is stable across replays of the same file."""

from __future__ import annotations

import hashlib
from typing import Any

from google.protobuf import timestamp_pb2

from crowd.importing.cells import CellError, convert
from crowd.importing.mapping import Mapping
from crowd.importing.rows import Row
from crowd.profile.v1 import event_pb2, profile_service_pb2
from crowd.values import to_value_map


class RowError(ValueError):
    """A row that does not fit the mapping."""


def record_id(identity: str, line: int) -> str:
    """The record id of a line of a file: a hash of (file identity, line number)."""
    return "imp-" + hashlib.sha256(f"{identity}:{line}".encode()).hexdigest()[:32]


def to_record(
    row: Row, mapping: Mapping, source_file: str, identity: str
) -> profile_service_pb2.ImportRecord:
    """The record of one row; a row that does not fit raises `RowError` naming the column."""
    visitor_raw = row.values.get(mapping.visitor_column)
    visitor = convert(visitor_raw, "string", mapping.date_format)
    if visitor is None:
        raise RowError(f"{mapping.visitor_column}: the visitor id is empty")
    data: dict[str, Any] = {}
    for column, spec in mapping.columns.items():
        try:
            value = convert(row.values.get(column), spec.type, mapping.date_format)
        except CellError as error:
            raise RowError(f"{column}: {error}") from None
        if value is not None:
            data[spec.name] = value
    data["_source_file"] = source_file
    data["_file_line_num"] = row.line
    record = profile_service_pb2.ImportRecord(
        name=mapping.event,
        data=to_value_map(data),
        record_id=record_id(identity, row.line),
    )
    if mapping.visitor_attribute:
        record.visitor.visitor_id_value.CopyFrom(
            event_pb2.VisitorIdValue(attribute_id=mapping.visitor_attribute, value=visitor)
        )
    else:
        record.visitor.visitor_id = visitor
    if mapping.time_column:
        try:
            when = convert(row.values.get(mapping.time_column), "date", mapping.date_format)
        except CellError as error:
            raise RowError(f"{mapping.time_column}: {error}") from None
        if when is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(when)
            record.time.CopyFrom(stamp)
    return record
