"""Intake: turn validated actions into one submit-script call per partition.

Every action of a visitor lands in the visitor's partition, so one script call per partition
sees all of a visitor's actions of the request at once; that is what lets cooldown groups
choose among actions that "qualify together". All calls go in one pipeline: one round trip
per request however many actions it carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2
from dispatch_service.caps import cap_args
from dispatch_service.scripts import ScriptCall, load_script
from service_common.keys import DispatchKeys, partition_of

__all__ = ["PartitionBatch", "current_trace_context", "plan_submission", "read_outcomes"]

SUBMIT = load_script("submit")


@dataclass
class PartitionBatch:
    """The new actions of one partition in a request, with their request positions."""

    partition: int
    positions: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    fields: list[list[str | int]] = field(default_factory=list)
    """Each action's fields, sent as one JSON argument (see ``scripts/submit.lua``)."""
    payloads: list[bytes] = field(default_factory=list)
    """Each action's serialized ``Action`` (binary: one argument each)."""

    def add_key(self, key: str) -> int:
        """Append a key and return its ``KEYS`` index (1-based, after the queue at 1)."""
        self.keys.append(key)
        return len(self.keys) + 1


def current_trace_context() -> value_pb2.TraceContext:
    """The W3C context of the active span (e.g. the SubmitActions server span)."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return value_pb2.TraceContext(
        traceparent=carrier.get("traceparent", ""), tracestate=carrier.get("tracestate", "")
    )


def plan_submission(
    actions: Sequence[action_pb2.Action],
    partitions: int,
    now_ms: int,
    retention_ms: int,
    default_trace: value_pb2.TraceContext,
) -> tuple[list[ScriptCall], list[PartitionBatch], list[int]]:
    """Build the submit calls of a validated request.

    Returns the script calls, their batches (same order), and for each action the position of
    the first action in the request with the same idempotency key (itself, usually): a key
    repeated within one request is submitted once and its repeats report the first outcome
    as duplicates.
    """
    first_of: dict[str, int] = {}
    origin: list[int] = []
    batches: dict[int, PartitionBatch] = {}
    for position, action in enumerate(actions):
        key = action.idempotency_key
        if key in first_of:
            origin.append(first_of[key])
            continue
        first_of[key] = position
        origin.append(position)
        partition = partition_of(action.visitor_id, partitions)
        batch = batches.setdefault(partition, PartitionBatch(partition))
        _add_action(batch, DispatchKeys(partition), action, position, now_ms, default_trace)
    ordered = list(batches.values())
    calls = [
        ScriptCall(
            SUBMIT,
            [DispatchKeys(b.partition).queue, *b.keys],
            [now_ms, retention_ms, orjson.dumps(b.fields), *b.payloads],
        )
        for b in ordered
    ]
    return calls, ordered, origin


def _add_action(
    batch: PartitionBatch,
    keys: DispatchKeys,
    action: action_pb2.Action,
    position: int,
    now_ms: int,
    default_trace: value_pb2.TraceContext,
) -> None:
    stored = action_pb2.Action()
    stored.CopyFrom(action)
    if not stored.HasField("fired_at"):
        stored.fired_at.FromMilliseconds(now_ms)
    if not stored.trace_context.traceparent:
        stored.trace_context.CopyFrom(default_trace)
    caps = cap_args(action, keys)
    record_index = batch.add_key(keys.action(action.idempotency_key))
    cooldown_index = batch.add_key(caps.cooldown_key) if caps.cooldown_key else 0
    cap_index = batch.add_key(caps.cap_key) if caps.cap_key else 0
    batch.positions.append(position)
    batch.fields.append(
        [
            action.idempotency_key,
            record_index,
            cooldown_index,
            cap_index,
            caps.group,
            caps.cooldown_ms,
            caps.priority,
            caps.max_sends,
            caps.window_ms,
            action.action_id,
            action.connector_id,
            action.visitor_id,
            stored.trace_context.traceparent,
            stored.trace_context.tracestate,
            caps.cap_reason,
        ]
    )
    batch.payloads.append(stored.SerializeToString(deterministic=True))


def read_outcomes(
    actions: Sequence[action_pb2.Action],
    batches: Sequence[PartitionBatch],
    results: Sequence[list[object]],
    origin: Sequence[int],
) -> list[dispatch_service_pb2.SubmitOutcome]:
    """Map the scripts' replies back to one outcome per action, in request order."""
    outcomes: list[dispatch_service_pb2.SubmitOutcome | None] = [None] * len(actions)
    for batch, reply in zip(batches, results, strict=True):
        for n, position in enumerate(batch.positions):
            duplicate, state, reason = reply[3 * n : 3 * n + 3]
            outcomes[position] = dispatch_service_pb2.SubmitOutcome(
                idempotency_key=actions[position].idempotency_key,
                state=_int(state),  # type: ignore[arg-type]
                reason=_text(reason),
                duplicate=_int(duplicate) == 1,
            )
    resolved: list[dispatch_service_pb2.SubmitOutcome] = []
    for position, first in enumerate(origin):
        outcome = outcomes[first]
        assert outcome is not None
        if first != position:
            outcome = dispatch_service_pb2.SubmitOutcome(
                idempotency_key=outcome.idempotency_key,
                state=outcome.state,
                reason=outcome.reason,
                duplicate=True,
            )
        resolved.append(outcome)
    return resolved


def _int(value: object) -> int:
    assert isinstance(value, (int, bytes, str))
    return int(value)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)
