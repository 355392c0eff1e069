"""Transient and permanent Braze failures of cohort sync, and credential hygiene."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from tests.cohorts.conftest import Service
from tests.cohorts.helpers import (
    BAD_SECRET_CONNECTOR,
    CLIENT_SECRET,
    COHORTS_PATH,
    MEMBERS_PATH,
    PARTNER,
    PARTNER_KEY,
    WRONG_SECRET,
    add,
    cohort_message,
    create_users,
    partner_requests,
    remove,
    sent_ids,
    stream,
)
from tests.harness import eventually

SECRETS = (PARTNER_KEY, CLIENT_SECRET, WRONG_SECRET)


def _span_text(span: ReadableSpan) -> str:
    """Everything a span exports that could carry a value."""
    parts = [span.name, json.dumps(dict(span.attributes or {}), default=str)]
    parts += [json.dumps(dict(e.attributes or {}), default=str) + e.name for e in span.events]
    parts += [json.dumps(dict(link.attributes or {}), default=str) for link in span.links]
    parts.append(str(span.status.description))
    return "\n".join(parts)


async def test_503_is_retried_until_braze_recovers(service: Service):
    sandbox = service.sandbox
    await create_users(sandbox, ["a", "b", "c"])
    sandbox.faults.set(fail_rate=1.0, fail_groups={"cohorts"})
    await service.stub.SyncCohort(
        iter(stream(cohort_message("c503"), [add("a"), add("b"), add("c")]))
    )
    failed = await sandbox.wait_for_requests(2, 10, group="cohorts")
    assert all(r.status == 503 for r in failed)

    sandbox.faults.set(fail_rate=0.0)
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "c503") == {"a", "b", "c"}, 20)
    await eventually(
        lambda: service.store.pending("braze-main", "c503"), lambda p: p == {}, what="sent"
    )
    assert await service.store.list_failed() == []
    cohort = sandbox.cohort(PARTNER, "c503")
    assert cohort is not None and cohort.name == "VIPs"


async def test_429_waits_as_long_as_retry_after_says(service: Service):
    sandbox = service.sandbox
    await create_users(sandbox, ["a"])
    sandbox.faults.force_rate_limit(retry_after=1, requests=1, groups={"cohorts"})
    await service.stub.SyncCohort(iter(stream(cohort_message("c429"), [add("a")])))
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "c429") == {"a"}, 20)
    limited, retried, *_ = partner_requests(sandbox, COHORTS_PATH) + partner_requests(
        sandbox, MEMBERS_PATH
    )
    assert limited.status == 429 and retried.status == 201
    # A lower bound, not a speed claim: the retry must not come before Braze's wait is over.
    assert retried.time - limited.time >= 0.9


async def test_changes_made_during_an_outage_are_sent_as_their_last_state(service: Service):
    sandbox = service.sandbox
    await create_users(sandbox, ["stay", "flip"])
    sandbox.faults.set(fail_rate=1.0, fail_groups={"cohorts"})
    await service.stub.SyncCohort(iter(stream(cohort_message("out"), [add("stay"), add("flip")])))
    await sandbox.wait_for_requests(1, 10, group="cohorts")
    await service.stub.SyncCohort(iter(stream(cohort_message("out"), [remove("flip")])))
    assert await service.store.pending("braze-main", "out") == {"e:stay": "1", "e:flip": "0"}

    sandbox.faults.set(fail_rate=0.0)
    await eventually(
        lambda: service.store.pending("braze-main", "out"), lambda p: p == {}, what="sent"
    )
    assert sandbox.cohort_members(PARTNER, "out") == {"stay"}
    delivered = [r for r in partner_requests(sandbox, MEMBERS_PATH) if r.status == 201]
    assert [sent_ids(r, removed=False) for r in delivered] == [["stay"]]
    assert [sent_ids(r, removed=True) for r in delivered] == [["flip"]]


async def test_401_is_dead_lettered_with_the_reason_and_leaks_nothing(
    service: Service, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    sandbox = service.sandbox
    await create_users(sandbox, ["x1", "x2", "ok"])
    await service.stub.SyncCohort(
        iter(stream(cohort_message("bad", connector=BAD_SECRET_CONNECTOR), [add("x1"), add("x2")]))
    )
    letters = await eventually(
        lambda: service.store.list_failed(BAD_SECRET_CONNECTOR),
        lambda found: len(found) == 2,
        what="two dead letters",
    )
    await eventually(
        lambda: service.store.pending(BAD_SECRET_CONNECTOR, "bad"),
        lambda p: p == {},
        what="settled",
    )
    by_kind = {letter.kind: letter for letter in letters}
    assert set(by_kind) == {"name", "members"}
    for letter in letters:
        assert letter.http_status == 401
        assert letter.reason == "Braze answered 401: Invalid client secret"
        assert letter.cohort_id == "bad"
    assert by_kind["members"].ids == 2
    [refused] = by_kind["members"].body["cohort_changes"]
    assert sorted(refused["user_ids"]) == ["x1", "x2"] and refused["should_remove"] is False
    assert by_kind["name"].body["name"] == "VIPs"
    assert sandbox.cohort_members(PARTNER, "bad") == set()

    # A good sync in the same run, so the credentials that work are on the wire too.
    await service.stub.SyncCohort(iter(stream(cohort_message("good"), [add("ok")])))
    await sandbox.wait_until(lambda: sandbox.cohort_members(PARTNER, "good") == {"ok"}, 10)

    stored = [json.dumps(letter.body) + letter.reason for letter in letters]
    spans = [_span_text(span) for span in service.spans.get_finished_spans()]
    recorded = [json.dumps(r.to_dict(), default=str) for r in sandbox.requests]
    assert any("braze POST /partners/{partner}/cohorts/users" in s for s in spans)
    for secret in SECRETS:
        for where, texts in (
            ("dead letters", stored),
            ("spans", spans),
            ("logs", [caplog.text]),
            ("sandbox recordings", recorded),
        ):
            assert not any(secret in text for text in texts), f"a credential leaked into {where}"
