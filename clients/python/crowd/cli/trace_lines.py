"""One readable line per trace entry: time, kind (coloured by what it means), message."""

from __future__ import annotations

from rich.text import Text

from crowd.profile.v1 import trace_pb2

_PREFIX = "TRACE_ENTRY_KIND_"
_STYLES = {
    "EVENT_RECEIVED": "cyan",
    "NEW_VISITOR": "bright_cyan",
    "VISIT_STARTED": "blue",
    "ATTRIBUTES_CHANGED": "yellow",
    "VISITOR_STITCHED": "magenta",
    "AUDIENCE_JOINED": "green",
    "AUDIENCE_LEFT": "red",
    "ACTION_TRIGGERED": "bold green",
    "ACTION_SUPPRESSED": "dim",
    "ACTION_DELAYED": "bright_yellow",
    "ACTION_DELIVERED": "bold blue",
}


def kind_name(entry: trace_pb2.TraceEntry) -> str:
    """The entry's kind without the enum prefix, lowercase: ``audience_joined``."""
    return trace_pb2.TraceEntryKind.Name(entry.kind).removeprefix(_PREFIX).lower()


def trace_line(entry: trace_pb2.TraceEntry) -> Text:
    """``HH:MM:SS.mmm  kind  message  [event id]``; the kind is coloured."""
    kind = kind_name(entry)
    line = Text()
    line.append(entry.time.ToDatetime().strftime("%H:%M:%S.%f")[:-3], style="dim")
    line.append("  ")
    line.append(f"{kind:<18}", style=_STYLES.get(kind.upper(), ""))
    line.append("  ")
    line.append(entry.message)
    if entry.event_id:
        line.append(f"  [{entry.event_id}]", style="dim")
    return line
