"""``crowd defs try FILE EVENTS.jsonl``: what the events would do under a document, computed
by the profile service in memory (the client cannot run the engine itself)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from rich.text import Text

from crowd.client import make_event
from crowd.profile.v1 import event_pb2

_KEYS = {"visitor_id", "name", "data", "event_id", "time", "trace_id", "platform"}


class EventsFileError(ValueError):
    """A line of the events file that is not an event; the message names the line."""


def read_events(path: Path) -> list[event_pb2.Event]:
    """Events from a JSON lines file: ``{"visitor_id", "name", "data"?, "event_id"?,
    "time"? (ISO 8601), "trace_id"?, "platform"?}`` per line; blank lines are skipped."""
    return list(_events(path))


def _events(path: Path) -> Iterator[event_pb2.Event]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EventsFileError(f"{path}: cannot read: {error}") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield _event(json.loads(text))
        except (ValueError, TypeError) as error:
            message = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
            raise EventsFileError(f"{path}:{number}: {message}") from None


def _event(document: Any) -> event_pb2.Event:
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    data = document.get("data", {})
    if not isinstance(data, dict):
        raise ValueError("data must be an object")
    when = document.get("time")
    return make_event(
        str(document.get("visitor_id", "")),
        str(document.get("name", "")),
        data,
        event_id=str(document.get("event_id", "")),
        time=datetime.fromisoformat(when) if isinstance(when, str) else None,
        trace_id=str(document.get("trace_id", "")),
        platform=str(document.get("platform", "")),
    )


def describe(event: event_pb2.Event, result: event_pb2.EventResult) -> Text:
    """The readable report of one event: a heading, then one indented line per effect."""
    text = Text()
    text.append(f"#{result.index + 1} ", style="dim")
    text.append(event.visitor_id, style="bold")
    text.append(f" {event.name}")
    if result.new_visitor:
        text.append("  new visitor", style="cyan")
    if result.visit_started:
        text.append("  visit started", style="blue")
    for change in result.changed_attributes:
        fields = json_format.MessageToDict(change.value, preserving_proto_field_name=True)
        shown = json.dumps(next(iter(fields.values()), None), ensure_ascii=False)
        text.append(f"\n  attribute {change.attribute_id} = {shown}", style="yellow")
    for badge in result.badges_assigned:
        text.append(f"\n  + badge {badge}", style="green")
    for badge in result.badges_removed:
        text.append(f"\n  - badge {badge}", style="red")
    for audience in result.audiences_joined:
        text.append(f"\n  + audience {audience}", style="green")
    for audience in result.audiences_left:
        text.append(f"\n  - audience {audience}", style="red")
    for action in result.actions_fired:
        text.append(f"\n  ! action {action.action_id} would fire", style="bold magenta")
    if not any(
        (
            result.changed_attributes,
            result.badges_assigned,
            result.badges_removed,
            result.audiences_joined,
            result.audiences_left,
            result.actions_fired,
        )
    ):
        text.append("\n  (no change)", style="dim")
    return text
