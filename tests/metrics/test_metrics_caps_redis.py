"""Both /metrics endpoints after an end-to-end run with a frequency-capped action: the
suppressed action is counted on both sides, and every Redis round trip is timed (by engine
step, else by command). Counters are process-wide, so scrapes before and after are compared."""

from __future__ import annotations

from braze_sandbox import BrazeSandbox
from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2
from tests.metrics.conftest import Stack
from tests.metrics.scrape import Samples, scrape, value
from tests.profile_api.helpers import wait_for
from tests.profile_api.shop import seed_document

PING_ACTION = "braze_ping_once_a_day"
PROFILE_FIRED = "crowd_profile_actions_fired_total"
PROFILE_SUPPRESSED = "crowd_profile_actions_suppressed_total"
DISPATCH_SUPPRESSED = "crowd_dispatch_actions_suppressed_total"


def capped_definitions() -> definitions_pb2.Definitions:
    """The seed plus an event-feed action that may be sent once a day per visitor."""
    document = seed_document()
    document["event_feeds"].append(
        {
            "id": "pings",
            "name": "Pings",
            "rule": {
                "groups": [
                    {
                        "conditions": [
                            {
                                "input": {"event": "event.name"},
                                "operator": "equals",
                                "value": {"constant": "ping"},
                            }
                        ]
                    }
                ]
            },
        }
    )
    document["actions"].append(
        {
            "id": PING_ACTION,
            "name": "Braze - ping",
            "event_feed": "pings",
            "connector_id": "braze",
            "frequency_cap": {"max_sends": 1, "window": "24h"},
            "track_user": {
                "identifier": {"external_id": {"attribute": "customer_id"}},
                "events": [{"name": {"constant": "ping"}}],
            },
        }
    )
    return definitions_from_dict(document)


def moved(after: Samples, before: Samples, name: str, labels: dict[str, str]) -> float:
    return value(after, name, labels) - value(before, name, labels)


def operations(samples: Samples, name: str) -> dict[str, float]:
    """``operation`` label -> observation count of a ``*_redis_command_seconds`` histogram."""
    return {
        dict(labels)["operation"]: count
        for (sample, labels), count in samples.items()
        if sample == f"{name}_count"
    }


async def test_caps_suppressions_and_redis_latency_are_counted(
    stack: Stack, sandbox: BrazeSandbox
) -> None:
    await stack.client.publish_definitions(capped_definitions())
    profile_before = await scrape(stack.profile_port)
    dispatch_before = await scrape(stack.dispatch_port)

    await stack.client.track_event("capped-visitor", "page_view", {"customer_id": "cust-capped"})
    for _ in range(3):
        result = await stack.client.track_event("capped-visitor", "ping")
        assert [a.action_id for a in result.actions_fired] == [PING_ACTION]

    suppressed = {"action": PING_ACTION}

    async def handed_over() -> Samples | None:
        samples = await scrape(stack.dispatch_port)
        done = moved(samples, dispatch_before, DISPATCH_SUPPRESSED, suppressed)
        return samples if done >= 2 else None

    await wait_for(handed_over, "the capped actions to reach the dispatch service")
    await sandbox.wait_until(lambda: any(r.path == "/users/track" for r in sandbox.requests))
    profile_after = await scrape(stack.profile_port)
    dispatch_after = await scrape(stack.dispatch_port)

    # Three fired, the cap let the first through and suppressed the other two, on both sides.
    assert moved(profile_after, profile_before, PROFILE_FIRED, suppressed) == 3
    assert moved(profile_after, profile_before, PROFILE_SUPPRESSED, suppressed) == 2
    assert moved(dispatch_after, dispatch_before, DISPATCH_SUPPRESSED, suppressed) == 2

    # Redis latency: the four TrackEvent commits, each one round trip under "commit", and the
    # rest of the traffic (reads, the outbox forwarder, the queue) by step or command name.
    profile_name = "crowd_profile_redis_command_seconds"
    before_ops = operations(profile_before, profile_name)
    after_ops = operations(profile_after, profile_name)
    assert after_ops["commit"] - before_ops.get("commit", 0) == 4
    assert after_ops["read"] - before_ops.get("read", 0) >= 4
    background = set(after_ops) - {"commit", "read"}
    assert background, "commands outside the engine's steps are timed too"
    assert all(op == op.lower() and " " not in op for op in background)

    dispatch_name = "crowd_dispatch_redis_command_seconds"
    dispatch_moves = {
        op: count - operations(dispatch_before, dispatch_name).get(op, 0)
        for op, count in operations(dispatch_after, dispatch_name).items()
    }
    assert sum(dispatch_moves.values()) > 0
    # Bounded labels: no visitor id, customer id or key ever becomes an operation.
    for op in [*after_ops, *dispatch_moves]:
        assert "capped" not in op and ":" not in op
