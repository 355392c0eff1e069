"""Reads and writes besides ingestion, through the real API: GetProfile by any id,
DeleteProfile, ImportRecords, audience size and members (paginated), StreamTrace."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient, lookup, make_event
from crowd.profile.v1 import profile_service_pb2, trace_pb2
from crowd.values import to_value_map
from service_common.errors import decode_error
from tests.profile_api.shop import VIPS, shop_definitions

ENTRY_TIMEOUT_S = 10.0


async def become_vip(client: CrowdClient, visitor: str, customer: str = "") -> None:
    data: dict[str, object] = {"order_total": 600.0}
    if customer:
        data["customer_id"] = customer
    result = await client.track_event(visitor, "purchase", data)
    assert list(result.audiences_joined) == [VIPS]


async def status_of(call: Awaitable[object]) -> grpc.StatusCode:
    """The status code a call fails with (it must fail)."""
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    return failed.value.code()


# --- profiles --------------------------------------------------------------------------------


async def test_get_profile_by_anonymous_id_and_by_customer_id(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())
    await become_vip(client, "anon-1", customer="cust-42")
    by_anonymous = await client.get_profile("anon-1")
    by_customer = await client.get_profile(attribute_id="customer_id", value="cust-42")
    assert by_anonymous == by_customer
    assert by_customer.profile_id == "anon-1"
    assert list(by_customer.visitor_ids) == ["anon-1"]
    assert dict(by_customer.identities) == {"customer_id": "cust-42"}
    assert by_customer.attributes["lifetime_order_value"].number_value == 600.0
    assert list(by_customer.badges) == ["vip"]
    assert by_customer.HasField("current_visit")
    assert by_customer.expires_at.seconds > by_customer.updated_at.seconds

    assert await status_of(client.get_profile(attribute_id="customer_id", value="nobody")) == (
        grpc.StatusCode.NOT_FOUND
    )
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.profiles.GetProfile(
            profile_service_pb2.GetProfileRequest(), metadata=client.metadata, timeout=5
        )
    code, _, violations = decode_error(bad.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["visitor"]


async def test_delete_profile_removes_it_everywhere(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())
    await become_vip(client, "doomed", customer="cust-doomed")
    await become_vip(client, "survivor", customer="cust-survivor")
    assert await client.audience_size(VIPS) == 2

    deleted = await client.delete_profile(attribute_id="customer_id", value="cust-doomed")
    assert deleted.profile_id == "doomed"
    assert list(deleted.visitor_ids) == ["doomed"]

    assert await status_of(client.get_profile("doomed")) == grpc.StatusCode.NOT_FOUND
    assert await status_of(client.get_profile(attribute_id="customer_id", value="cust-doomed")) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await client.audience_size(VIPS) == 1
    assert await client.audience_members(VIPS) == ["survivor"]
    assert await status_of(client.delete_profile("doomed")) == grpc.StatusCode.NOT_FOUND
    # The visitor may come back, as a new profile.
    again = await client.track_event("doomed", "page_view")
    assert again.new_visitor


# --- import ----------------------------------------------------------------------------------


def record(
    visitor: str = "",
    record_id: str = "",
    order_total: float | None = None,
    *,
    customer: str = "",
) -> profile_service_pb2.ImportRecord:
    data = {"order_total": order_total} if order_total is not None else {}
    found = lookup(visitor) if visitor else None
    if customer:
        found = lookup(attribute_id="customer_id", value=customer)
    imported = profile_service_pb2.ImportRecord(
        name="purchase", record_id=record_id, data=to_value_map(data)
    )
    if found is not None:
        imported.visitor.CopyFrom(found)
    return imported


async def test_import_records_counts_imported_duplicates_and_violations(
    client: CrowdClient,
) -> None:
    await client.publish_definitions(shop_definitions())
    await client.track_event("imp-known", "page_view", {"customer_id": "cust-imp"})
    nan_record = record("imp-2", "rec-3", 1.0)
    nan_record.data["order_total"].number_value = math.nan
    requests = [
        profile_service_pb2.ImportRecordsRequest(
            records=[
                record("imp-1", "rec-1", 100.0),
                record("imp-1", "rec-1", 100.0),  # the same record again
                record(record_id="rec-2"),  # no visitor
            ]
        ),
        profile_service_pb2.ImportRecordsRequest(
            records=[nan_record, record(customer="cust-imp", record_id="rec-4", order_total=50.0)]
        ),
    ]

    async def send() -> AsyncIterator[profile_service_pb2.ImportRecordsRequest]:
        for request in requests:
            yield request

    response = await client.profiles.ImportRecords(send(), metadata=client.metadata, timeout=10)
    assert response.imported == 2
    assert response.duplicates == 1
    assert [v.field for v in response.violations] == [
        "records[2].visitor",
        "records[3].data['order_total']",
    ]
    imported = await client.get_profile("imp-1")
    assert imported.attributes["lifetime_order_value"].number_value == 100.0
    known = await client.get_profile(attribute_id="customer_id", value="cust-imp")
    assert known.profile_id == "imp-known"
    assert known.attributes["lifetime_order_value"].number_value == 50.0
    assert await status_of(client.get_profile("imp-2")) == grpc.StatusCode.NOT_FOUND

    # Importing the same file again changes nothing.
    again = await client.profiles.ImportRecords(send(), metadata=client.metadata, timeout=10)
    assert (again.imported, again.duplicates) == (0, 3)
    imported = await client.get_profile("imp-1")
    assert imported.attributes["lifetime_order_value"].number_value == 100.0


# --- audiences -------------------------------------------------------------------------------


async def test_audience_size_and_paginated_members(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())
    members = {f"member-{i}" for i in range(7)}
    for visitor in sorted(members):
        await become_vip(client, visitor)
    await client.track_event("not-a-member", "purchase", {"order_total": 5.0})
    assert await client.audience_size(VIPS) == 7

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await client.profiles.ListAudienceMembers(
            profile_service_pb2.ListAudienceMembersRequest(
                audience_id=VIPS, page_size=3, page_token=token
            ),
            metadata=client.metadata,
            timeout=5,
        )
        pages.append(list(page.profile_ids))
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 10, "pagination does not end"
    listed = [member for page in pages for member in page]
    assert all(len(page) <= 3 for page in pages)
    assert len(listed) == len(set(listed)) == 7
    assert set(listed) == members
    assert await client.audience_size("vip_cart_abandoners") == 0


async def test_audience_reads_refuse_unknown_audiences_and_bad_pages(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())
    assert await status_of(client.audience_size("no-such-audience")) == grpc.StatusCode.NOT_FOUND
    for page_size in (-1, 1001):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await client.profiles.ListAudienceMembers(
                profile_service_pb2.ListAudienceMembersRequest(
                    audience_id=VIPS, page_size=page_size
                ),
                metadata=client.metadata,
                timeout=5,
            )
        code, _, violations = decode_error(bad.value)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in violations] == ["page_size"]


# --- trace -----------------------------------------------------------------------------------


class TraceReader:
    """Reads a StreamTrace call entry by entry, each read bounded by a deadline."""

    def __init__(self, client: CrowdClient, request: profile_service_pb2.StreamTraceRequest):
        self.call = client.profiles.StreamTrace(request, metadata=client.metadata)
        self.seen: list[trace_pb2.TraceEntry] = []

    async def until(self, kind: int, event_id: str = "") -> trace_pb2.TraceEntry:
        """Read until an entry of ``kind`` (for ``event_id`` if given) arrives."""
        while True:
            response = await asyncio.wait_for(self.call.read(), ENTRY_TIMEOUT_S)
            assert response is not grpc.aio.EOF, "the trace stream ended"
            assert isinstance(response, profile_service_pb2.StreamTraceResponse)
            entry = response.entry
            self.seen.append(entry)
            if entry.kind == kind and (not event_id or entry.event_id == event_id):
                return entry


async def test_stream_trace_replays_history_then_follows_live(counting: CrowdClient) -> None:
    await counting.track_event("traced", "page_view", event_id="past-1")
    await counting.track_event("traced", "purchase", event_id="past-2")
    reader = TraceReader(
        counting, profile_service_pb2.StreamTraceRequest(visitor_id="traced", after="0")
    )
    try:
        received = trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED
        first = await reader.until(received, "past-1")
        await reader.until(received, "past-2")
        kinds = [e.kind for e in reader.seen]
        assert kinds[0] == received and first.profile_id == "traced"
        assert trace_pb2.TRACE_ENTRY_KIND_NEW_VISITOR in kinds
        assert trace_pb2.TRACE_ENTRY_KIND_VISIT_STARTED in kinds
        cursors = [e.cursor for e in reader.seen]
        assert all(cursors) and len(set(cursors)) == len(cursors)

        # A new event shows up on the open stream, followed by what it changed.
        await counting.track_event("traced", "page_view", event_id="live-1")
        live = await reader.until(received, "live-1")
        changed = await reader.until(trace_pb2.TRACE_ENTRY_KIND_ATTRIBUTES_CHANGED)
        assert live.profile_id == "traced" and changed.event_id == "live-1"
    finally:
        reader.call.cancel()

    # Resuming after a cursor replays only what followed it.
    resumed = TraceReader(
        counting, profile_service_pb2.StreamTraceRequest(visitor_id="traced", after=first.cursor)
    )
    try:
        entry = await resumed.until(trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED)
        assert entry.event_id == "past-2"
    finally:
        resumed.call.cancel()


async def test_stream_trace_by_trace_id(counting: CrowdClient) -> None:
    await counting.track_events(
        [
            make_event("debug-a", "page_view", event_id="d1", trace_id="debug-session-1"),
            make_event("debug-b", "page_view", event_id="d2"),
            make_event("debug-b", "page_view", event_id="d3", trace_id="debug-session-1"),
        ]
    )
    reader = TraceReader(
        counting, profile_service_pb2.StreamTraceRequest(trace_id="debug-session-1", after="0")
    )
    try:
        received = trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED
        first = await reader.until(received)
        second = await reader.until(received)
        assert (first.event_id, first.profile_id) == ("d1", "debug-a")
        assert (second.event_id, second.profile_id) == ("d3", "debug-b")
        assert {e.trace_id for e in reader.seen} == {"debug-session-1"}
    finally:
        reader.call.cancel()


async def test_stream_trace_of_unknown_visitor_is_not_found(counting: CrowdClient) -> None:
    call = counting.profiles.StreamTrace(
        profile_service_pb2.StreamTraceRequest(visitor_id="never-seen", after="0"),
        metadata=counting.metadata,
        timeout=5,
    )
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await call.read()
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_import_by_unknown_visitor_id_value_is_found_by_it(client: CrowdClient) -> None:
    await client.publish_definitions(shop_definitions())

    async def send() -> AsyncIterator[profile_service_pb2.ImportRecordsRequest]:
        yield profile_service_pb2.ImportRecordsRequest(
            records=[record(customer="cust-offline", record_id="offline-1", order_total=10.0)]
        )

    response = await client.profiles.ImportRecords(send(), metadata=client.metadata, timeout=10)
    assert response.imported == 1
    found = await client.get_profile(attribute_id="customer_id", value="cust-offline")
    assert found.attributes["lifetime_order_value"].number_value == 10.0


@pytest.mark.parametrize("token", ["garbage", "-5", "99999999999999999999999", "a:b"])
async def test_foreign_page_tokens_are_invalid(client: CrowdClient, token: str) -> None:
    await client.publish_definitions(shop_definitions())
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.profiles.ListAudienceMembers(
            profile_service_pb2.ListAudienceMembersRequest(
                audience_id=VIPS, page_size=2, page_token=token
            ),
            metadata=client.metadata,
            timeout=5,
        )
    code, _, violations = decode_error(bad.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["page_token"]


async def test_malformed_trace_cursor_is_invalid(counting: CrowdClient) -> None:
    await counting.track_event("cursor-visitor", "page_view")
    call = counting.profiles.StreamTrace(
        profile_service_pb2.StreamTraceRequest(visitor_id="cursor-visitor", after="garbage"),
        metadata=counting.metadata,
        timeout=5,
    )
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await call.read()
    code, _, violations = decode_error(bad.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["after"]
