"""A profile as rich tables for a terminal: who it is, then its attributes, badges and
audiences (JSON lines stay the machine form)."""

from __future__ import annotations

import json

from google.protobuf import json_format
from rich.console import Group
from rich.table import Table

from crowd.profile.v1 import event_pb2, profile_pb2


def _shown(value: event_pb2.AttributeValue) -> str:
    fields = json_format.MessageToDict(value, preserving_proto_field_name=True)
    plain = next(iter(fields.values()), None)
    return plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)


def profile_tables(profile: profile_pb2.Profile) -> Group:
    """The summary table and the attributes table of one profile."""
    summary = Table(show_header=False, title=f"profile {profile.profile_id}")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("visitor ids", ", ".join(profile.visitor_ids))
    for attribute_id, value in sorted(profile.identities.items()):
        summary.add_row(attribute_id, value)
    summary.add_row("badges", ", ".join(sorted(profile.badges)) or "-", style="green")
    summary.add_row(
        "audiences", ", ".join(a.audience_id for a in profile.audiences) or "-", style="green"
    )
    if profile.HasField("updated_at"):
        summary.add_row("updated", profile.updated_at.ToDatetime().isoformat(timespec="seconds"))
    attributes = Table(title="attributes")
    attributes.add_column("attribute", style="bold")
    attributes.add_column("value")
    for attribute_id, attribute_value in sorted(profile.attributes.items()):
        attributes.add_row(attribute_id, _shown(attribute_value))
    return Group(summary, attributes)
