"""The shared trace entry format: what one service writes, the other reads back exactly."""

from __future__ import annotations

from crowd.profile.v1 import trace_pb2
from service_common.trace_entries import (
    TraceRecord,
    decode_entries,
    decode_entry,
    encode_entries,
    encode_entry,
    entry_doc,
    otel_trace_id,
)

DELIVERED = trace_pb2.TRACE_ENTRY_KIND_ACTION_DELIVERED


def test_one_record_round_trips_with_its_details() -> None:
    record = TraceRecord(DELIVERED, "action a delivered", {"http_status": 201, "ids": ["x", "y"]})
    raw = encode_entry(record, profile_id="v1", time_ms=1_700_000_000_123, event_id="e1")

    entry = decode_entry("5-0", {"e": raw})

    assert (entry.cursor, entry.kind, entry.message) == ("5-0", DELIVERED, "action a delivered")
    assert (entry.profile_id, entry.event_id, entry.trace_id) == ("v1", "e1", "")
    assert entry.time.ToMilliseconds() == 1_700_000_000_123
    assert entry.details["http_status"].number_value == 201
    assert list(entry.details["ids"].string_list.values) == ["x", "y"]


def test_a_multi_record_entry_gives_each_record_its_own_cursor() -> None:
    docs = [
        entry_doc(TraceRecord(DELIVERED, f"record {i}"), profile_id="v1", time_ms=i)
        for i in range(3)
    ]
    field, raw = encode_entries(docs)
    assert field == "b"

    all_records = decode_entries("7-1", {field: raw})
    after_first = decode_entries("7-1", {field: raw}, skip_through=0)

    assert [e.cursor for e in all_records] == ["7-1.0", "7-1.1", "7-1"]
    assert [e.message for e in after_first] == ["record 1", "record 2"]


def test_a_single_doc_is_written_as_a_plain_entry() -> None:
    doc = entry_doc(TraceRecord(DELIVERED, "only"), profile_id="v1", time_ms=1)
    assert encode_entries([doc])[0] == "e"


def test_otel_trace_id_accepts_only_a_valid_traceparent() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert otel_trace_id(f"00-{trace_id}-00f067aa0ba902b7-01") == trace_id
    assert otel_trace_id("00-" + "0" * 32 + "-00f067aa0ba902b7-01") == ""
    assert otel_trace_id("not a traceparent") == ""
    assert otel_trace_id("") == ""
