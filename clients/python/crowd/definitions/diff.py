"""What publishing a document would change against a live version: per collection (attributes,
audiences, event feeds, cooldown groups, actions) the ids added, removed and changed (with the
fields that differ), and the settings that differ."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from crowd.profile.v1 import definitions_pb2 as pb

COLLECTIONS = ("attributes", "audiences", "event_feeds", "cooldown_groups", "actions")


@dataclass(frozen=True)
class Change:
    """One difference: ``collection`` (or ``settings``), the id, how, and the fields."""

    collection: str
    id: str
    change: str  # added | removed | changed
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``crowd defs diff --json``)."""
        return {
            "collection": self.collection,
            "id": self.id,
            "change": self.change,
            "fields": list(self.fields),
        }


def _fields_differing(old: Message, new: Message) -> tuple[str, ...]:
    names = {field.name for field, _ in old.ListFields()} | {
        field.name for field, _ in new.ListFields()
    }
    descriptor = old.DESCRIPTOR
    return tuple(
        sorted(
            name
            for name in names
            if getattr(old, name) != getattr(new, name) and name in descriptor.fields_by_name
        )
    )


def diff_definitions(live: pb.Definitions, proposed: pb.Definitions) -> list[Change]:
    """The changes from ``live`` to ``proposed``, in collection order, ids sorted."""
    changes: list[Change] = []
    if live.settings != proposed.settings:
        changes.append(
            Change("settings", "", "changed", _fields_differing(live.settings, proposed.settings))
        )
    for collection in COLLECTIONS:
        before = {item.id: item for item in getattr(live, collection)}
        after = {item.id: item for item in getattr(proposed, collection)}
        for item_id in sorted(before.keys() | after.keys()):
            if item_id not in before:
                changes.append(Change(collection, item_id, "added"))
            elif item_id not in after:
                changes.append(Change(collection, item_id, "removed"))
            elif before[item_id] != after[item_id]:
                fields = _fields_differing(before[item_id], after[item_id])
                changes.append(Change(collection, item_id, "changed", fields))
    return changes
