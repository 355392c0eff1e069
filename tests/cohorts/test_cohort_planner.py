"""Packing cohort changes into requests, and the identifiers they carry (pure functions)."""

from __future__ import annotations

import pytest

from dispatch_service.cohorts.identifiers import ADD, REMOVE, Member
from dispatch_service.cohorts.intake import CohortSync
from dispatch_service.cohorts.planner import plan_member_requests, requests_needed


def _pending(adds: int, removes: int) -> dict[str, str]:
    pending = {Member("e", f"a{i}").field: ADD for i in range(adds)}
    pending.update({Member("e", f"r{i}").field: REMOVE for i in range(removes)})
    return pending


def test_requests_are_filled_to_1000_ids_whatever_the_mix():
    requests = plan_member_requests(_pending(1500, 700), complete=True)
    assert [r.size for r in requests] == [1000, 1000, 200]
    mixed = requests[1].cohort_changes()
    assert [(len(item["user_ids"]), item["should_remove"]) for item in mixed] == [
        (500, False),
        (500, True),
    ]
    every_field = [f for r in requests for f in r.sent]
    assert len(every_field) == len(set(every_field)) == 2200


def test_an_incomplete_snapshot_keeps_its_partial_tail_for_later():
    requests = plan_member_requests(_pending(2300, 0), complete=False)
    assert [r.size for r in requests] == [1000, 1000]


@pytest.mark.parametrize(("ids", "requests"), [(0, 0), (1, 1), (1000, 1), (1001, 2), (2500, 3)])
def test_requests_needed(ids: int, requests: int):
    assert requests_needed(ids) == requests


def test_requests_planned_counts_each_kind():
    sync = CohortSync("c", "id", "name", _pending(1001, 1), accepted=1002)
    assert sync.requests_planned == 3


@pytest.mark.parametrize(
    "member",
    [
        Member("e", "user:with:colons"),
        Member("d", "device-1"),
        Member("a", 'name "quoted" \x00 nul', "label:with:colons"),
    ],
)
def test_member_fields_round_trip(member: Member):
    assert Member.from_field(member.field) == member


def test_alias_items_name_both_parts():
    field = Member("a", "anon-1", "crowd_visitor").field
    [request] = plan_member_requests({field: REMOVE}, complete=True)
    assert request.cohort_changes() == [
        {
            "aliases": [{"alias_name": "anon-1", "alias_label": "crowd_visitor"}],
            "should_remove": True,
        }
    ]
