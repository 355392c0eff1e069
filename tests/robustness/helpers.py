"""Helpers of the robustness tests: a connectors file, a tiny definitions document whose
event-feed action is a Track User, and a count of what reached Braze."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import redis.asyncio as aioredis

from braze_sandbox import BrazeSandbox
from profile_service.storage.outbox import FORWARDER_GROUP
from service_common.keys import DEFAULT_PARTITIONS, PartitionKeys
from tests.profile_api.helpers import BRAZE_KEY

CONNECTOR = "braze"
CLOSED_EVENT = "account_closed"
"""Event name that fires the action, and the Braze event name the action sends."""

# customer_id (Braze's external_id) is taken from the event; the event feed fires a Track User
# with one Braze event per account_closed event. No audience, no visit: one event, one action.
DEFINITIONS_YAML = f"""
attributes:
  - id: customer_id
    name: Customer ID
    scope: visitor
    type: visitor_id
    enrichments:
      - id: from_event
        kind: set
        when: any_event
        operands: [{{event: customer_id}}]
        rule:
          groups:
            - conditions:
                - {{input: {{event: customer_id}}, operator: is_assigned}}
event_feeds:
  - id: closed
    name: Account closed
    rule:
      groups:
        - conditions:
            - input: {{event: event.name}}
              operator: equals
              value: {{constant: {CLOSED_EVENT}}}
actions:
  - id: braze_account_closed
    name: Braze - account closed
    event_feed: closed
    connector_id: {CONNECTOR}
    track_user:
      identifier:
        external_id: {{attribute: customer_id}}
      events:
        - name: {{constant: {CLOSED_EVENT}}}
"""


def write_definitions(directory: Path) -> Path:
    path = directory / "definitions.yaml"
    path.write_text(DEFINITIONS_YAML, encoding="utf-8")
    return path


def write_patient_connectors(directory: Path, url: str) -> Path:
    """A connectors file like tests/profile_api/servers.write_connectors, but with attempts
    enough to ride out any outage a test stages (the default of 8 attempts is used up by a
    Braze outage of about half a minute; see the report of these tests)."""
    key_file = directory / "braze.key"
    key_file.write_text(BRAZE_KEY, encoding="utf-8")
    path = directory / "connectors.json"
    connector = {
        "id": CONNECTOR,
        "url": url,
        "api_key_file": str(key_file),
        "linger_ms": 50,
        "max_attempts": 1000,
    }
    path.write_text(json.dumps({"connectors": [connector]}), encoding="utf-8")
    return path


def delivered_events(sandbox: BrazeSandbox, event_name: str) -> Counter[str]:
    """How many times Braze accepted ``event_name`` per external_id (successful
    /users/track requests only: a refused request delivered nothing)."""
    counts: Counter[str] = Counter()
    for request in sandbox.requests:
        if request.path != "/users/track" or not 200 <= request.status < 300:
            continue
        body = request.body if isinstance(request.body, dict) else {}
        for event in body.get("events", []):
            if event.get("name") == event_name:
                counts[str(event.get("external_id"))] += 1
    return counts


async def outbox_state(redis_url: str) -> tuple[int, int]:
    """(entries in every partition's outbox, of which read by a forwarder but not yet
    acknowledged), summed over the default partitions."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for partition in range(DEFAULT_PARTITIONS):
                outbox = PartitionKeys(partition).outbox
                pipe.xlen(outbox)
                pipe.xpending(outbox, FORWARDER_GROUP)
            replies = await pipe.execute(raise_on_error=False)
    finally:
        await client.aclose()
    length = pending = 0
    for xlen, summary in zip(replies[::2], replies[1::2], strict=True):
        length += xlen if isinstance(xlen, int) else 0
        if isinstance(summary, dict):  # an error reply: no group on that outbox yet
            pending += int(summary.get("pending", 0))
    return length, pending
