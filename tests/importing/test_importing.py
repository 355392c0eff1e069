"""The import parsing, without a server: CSV cell rules, the mapping file, rows by line, record
ids stable across replays, the checkpoint."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crowd.importing.cells import MAX_CELL_CHARS, CellError, convert
from crowd.importing.checkpoint import Checkpoint
from crowd.importing.mapping import MappingError, load_mapping, parse_mapping
from crowd.importing.records import record_id, to_record
from crowd.importing.rows import BadRow, Row, file_identity, read_rows
from crowd.values import from_value


@given(st.text())
def test_string_cells_are_trimmed_to_1000_chars_and_blank_is_absent(text: str) -> None:
    value = convert(text, "string", "%Y-%m-%d")
    if not text.strip():
        assert value is None
    else:
        assert value == text.strip()[:MAX_CELL_CHARS]


@given(st.lists(st.text(min_size=1).filter(str.strip), max_size=5))
def test_arrays_are_json_in_a_cell(items: list[str]) -> None:
    import json

    assert convert(json.dumps(items), "string_list", "%Y") == [
        item.strip()[:MAX_CELL_CHARS] for item in items
    ]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip_through_text(number: float) -> None:
    assert convert(repr(number), "number", "%Y") == number


def test_dates_follow_the_configured_format() -> None:
    assert convert("15/01/2026", "date", "%d/%m/%Y") == datetime(2026, 1, 15, tzinfo=UTC)
    with pytest.raises(CellError, match="not a date"):
        convert("2026-01-15", "date", "%d/%m/%Y")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("abc", "number"), ("maybe", "boolean"), ("{}", "string_list"), ("nan", "number")],
)
def test_cells_of_the_wrong_type_are_refused(raw: str, kind: str) -> None:
    with pytest.raises(CellError):
        convert(raw, kind, "%Y")


def test_mapping_file_example_loads() -> None:
    mapping = load_mapping(Path(__file__).parents[2] / "examples" / "import" / "mapping.yaml")
    assert (mapping.visitor_column, mapping.visitor_attribute) == ("customer", "customer_id")
    assert mapping.columns["total"].type == "number"
    assert mapping.columns["city"].name == "city"


def test_a_bad_mapping_names_every_problem() -> None:
    with pytest.raises(MappingError) as raised:
        parse_mapping({"columns": {"a": {"type": "money"}}})
    assert raised.value.problems == [
        "visitor.column: required, the column holding the visitor id",
        "columns.a.type: one of string, number, boolean, date, string_list, number_list, "
        "boolean_list",
    ]


def test_csv_rows_carry_their_line_numbers(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([["id", "note"], ["a", "two\nlines"], ["b"], [], ["c", "x"]])
    source.write_text(buffer.getvalue(), encoding="utf-8")
    rows = list(read_rows(source))
    assert rows == [
        Row(3, {"id": "a", "note": "two\nlines"}),
        BadRow(4, "1 cells, the header has 2"),
        Row(6, {"id": "c", "note": "x"}),
    ]


def test_jsonl_rows_and_bad_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a"}\nnot json\n[1]\n\n{"id": "b"}\n', encoding="utf-8")
    assert list(read_rows(source)) == [
        Row(1, {"id": "a"}),
        BadRow(2, "not JSON: Expecting value"),
        BadRow(3, "not a JSON object"),
        Row(5, {"id": "b"}),
    ]


def test_records_carry_source_and_line_and_a_stable_id(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("v,total\nx,3\n", encoding="utf-8")
    mapping = parse_mapping({"visitor": {"column": "v"}, "columns": {"total": {"type": "number"}}})
    identity = file_identity(source)
    record = to_record(Row(2, {"v": "x", "total": "3"}), mapping, "in.csv", identity)
    assert record.visitor.visitor_id == "x"
    assert {key: from_value(value) for key, value in record.data.items()} == {
        "total": 3.0,
        "_source_file": "in.csv",
        "_file_line_num": 2.0,
    }
    assert record.record_id == record_id(identity, 2) != record_id(identity, 3)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(source.read_bytes())
    assert file_identity(copy) == identity  # the content, not the path


def test_checkpoint_resumes_only_the_same_content(tmp_path: Path) -> None:
    path = tmp_path / "in.csv.checkpoint"
    Checkpoint.open(path, "abc").advance(42)
    assert Checkpoint.open(path, "abc").line == 42
    assert Checkpoint.open(path, "other").line == 0
    path.write_text("garbage", encoding="utf-8")
    assert Checkpoint.open(path, "abc").line == 0
