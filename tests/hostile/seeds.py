"""A plausible request for every RPC, and generic mutations of requests by their descriptors.

The fuzz test truncates, bit-flips and mutates these seeds. Seeds that write aim at
``FUZZ_VISITOR`` (never at the test's known profile), and the few that would change shared
state are refused on purpose (an unknown connector, a stale expected definitions version), so
bit-flipped variants of them are refused as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2
from crowd.profile.v1 import definition_service_pb2, event_pb2, profile_service_pb2
from tests.profile_api.helpers import counter_definitions

FUZZ_VISITOR = "fuzz-visitor"
CONNECTOR = "braze"  # the connector of tests.profile_api.servers.write_connectors


def _event(name: str = "page_view") -> event_pb2.Event:
    return event_pb2.Event(
        visitor_id=FUZZ_VISITOR,
        name=name,
        data={
            "plan": value_pb2.Value(string_value="pro"),
            "items": value_pb2.Value(number_value=3),
            "tags": value_pb2.Value(string_list=value_pb2.StringList(values=["a", "b"])),
        },
    )


def _lookup() -> event_pb2.VisitorLookup:
    return event_pb2.VisitorLookup(visitor_id=FUZZ_VISITOR)


def _track_user(connector: str) -> action_pb2.Action:
    return action_pb2.Action(
        idempotency_key="fuzz-action-1",
        connector_id=connector,
        visitor_id=FUZZ_VISITOR,
        track_user=action_pb2.TrackUser(
            user=action_pb2.UserIds(external_id=FUZZ_VISITOR),
            events=[action_pb2.TrackEvent(name="fired")],
        ),
    )


SEEDS: dict[str, Callable[[], Message]] = {
    "TrackEvent": lambda: profile_service_pb2.TrackEventRequest(event=_event()),
    "TrackEvents": lambda: profile_service_pb2.TrackEventsRequest(
        events=[_event(), _event("purchase")]
    ),
    "StreamEvents": lambda: profile_service_pb2.StreamEventsRequest(sequence=1, events=[_event()]),
    "GetProfile": lambda: profile_service_pb2.GetProfileRequest(visitor=_lookup()),
    "DeleteProfile": lambda: profile_service_pb2.DeleteProfileRequest(visitor=_lookup()),
    "ImportRecords": lambda: profile_service_pb2.ImportRecordsRequest(
        records=[
            profile_service_pb2.ImportRecord(
                visitor=_lookup(), name="import", data=dict(_event().data), record_id="r1"
            )
        ]
    ),
    "GetAudienceSize": lambda: profile_service_pb2.GetAudienceSizeRequest(audience_id="vip"),
    "ListAudienceMembers": lambda: profile_service_pb2.ListAudienceMembersRequest(
        audience_id="vip", page_size=10
    ),
    "ResyncCohort": lambda: profile_service_pb2.ResyncCohortRequest(audience_id="vip"),
    "StreamTrace": lambda: profile_service_pb2.StreamTraceRequest(
        visitor_id=FUZZ_VISITOR, after="0"
    ),
    "ValidateDefinitions": lambda: definition_service_pb2.ValidateDefinitionsRequest(
        definitions=counter_definitions()
    ),
    "PublishDefinitions": lambda: definition_service_pb2.PublishDefinitionsRequest(
        definitions=counter_definitions(), expected_current_version="not-the-current-version"
    ),
    "TryDefinitions": lambda: definition_service_pb2.TryDefinitionsRequest(
        definitions=counter_definitions(), events=[_event()]
    ),
    "GetBackfillStatus": lambda: definition_service_pb2.GetBackfillStatusRequest(),
    "GetDefinitions": lambda: definition_service_pb2.GetDefinitionsRequest(version="v1"),
    "SubmitActions": lambda: dispatch_service_pb2.SubmitActionsRequest(
        actions=[_track_user("no-such-connector")]
    ),
    "GetAction": lambda: dispatch_service_pb2.GetActionRequest(idempotency_key="fuzz-action-1"),
    "ListFailedActions": lambda: dispatch_service_pb2.ListFailedActionsRequest(
        connector_id=CONNECTOR, page_size=5
    ),
    "RetryFailedActions": lambda: dispatch_service_pb2.RetryFailedActionsRequest(
        idempotency_keys=["fuzz-action-1"]
    ),
    "SyncCohort": lambda: dispatch_service_pb2.SyncCohortRequest(
        cohort=dispatch_service_pb2.Cohort(connector_id=CONNECTOR, cohort_id="c1", name="Fuzz"),
        changes=[action_pb2.CohortChange(user=action_pb2.UserIds(external_id=FUZZ_VISITOR))],
    ),
}

# A path to a field: each step is a field; a map step is followed by its value's fields.
Path = tuple[FieldDescriptor, ...]
_MAX_DEPTH = 6


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _map_value(field: FieldDescriptor) -> FieldDescriptor:
    """The ``value`` field of a map field's entry type."""
    assert field.message_type is not None
    return field.message_type.fields_by_name["value"]


def field_paths(
    descriptor: Descriptor, wanted: Callable[[FieldDescriptor], bool], _seen: tuple[str, ...] = ()
) -> list[Path]:
    """Paths from ``descriptor`` to every field ``wanted`` accepts (recursive types cut short).

    A map field whose values are messages continues into the value type's fields.
    """
    if len(_seen) >= _MAX_DEPTH or descriptor.full_name in _seen:
        return []
    seen = (*_seen, descriptor.full_name)
    paths: list[Path] = []
    for field in descriptor.fields:
        target = _map_value(field) if _is_map(field) else field
        if wanted(field) or (_is_map(field) and wanted(target)):
            paths.append((field,))
        if target.message_type is not None:
            paths += [(field, *rest) for rest in field_paths(target.message_type, wanted, seen)]
    return paths


def set_at(message: Message, path: Path, value: Any, map_key: str = "k") -> None:
    """Set the field at ``path`` to ``value`` (creating parents; maps get ``map_key``).

    For a map field as the last step, ``value`` goes into the map under ``map_key`` (or, when
    ``value`` is None, an empty entry is added under ``map_key``).
    """
    current: Any = message
    for field in path[:-1]:
        container = getattr(current, field.name)
        if _is_map(field):
            current = container[map_key]
        elif field.is_repeated:
            current = container.add()
        else:
            current = container
    last = path[-1]
    container = getattr(current, last.name)
    if _is_map(last):
        value_field = _map_value(last)
        if value_field.message_type is not None:
            container[map_key]
        else:
            container[map_key] = value_field.default_value if value is None else value
    elif last.is_repeated:
        container.append(value)
    else:
        setattr(current, last.name, value)


def is_enum(field: FieldDescriptor) -> bool:
    return field.enum_type is not None


def enum_of(path: Path) -> EnumDescriptor:
    """The enum type the last field of ``path`` holds (directly or as a map's values)."""
    last = path[-1]
    enum = _map_value(last).enum_type if _is_map(last) else last.enum_type
    assert enum is not None
    return enum


def is_string(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_STRING
