"""The API-key scope each profile-service RPC needs."""

from __future__ import annotations

from crowd.profile.v1 import definition_service_pb2, profile_service_pb2

INGEST = "ingest"
READ = "read"
ADMIN = "admin"

PROFILE_SERVICE = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name
DEFINITION_SERVICE = definition_service_pb2.DESCRIPTOR.services_by_name[
    "DefinitionService"
].full_name

_PROFILE_SCOPES = {
    "TrackEvent": INGEST,
    "TrackEvents": INGEST,
    "StreamEvents": INGEST,
    "ImportRecords": INGEST,
    "GetProfile": READ,
    "GetAudienceSize": READ,
    "ListAudienceMembers": READ,
    "StreamTrace": READ,
    "DeleteProfile": ADMIN,
    "ResyncCohort": ADMIN,
}
_DEFINITION_SCOPES = {
    "ValidateDefinitions": READ,
    "GetDefinitions": READ,
    "TryDefinitions": READ,  # writes nothing
    "GetBackfillStatus": READ,
    "PublishDefinitions": ADMIN,
}

METHOD_SCOPES: dict[str, str] = {
    **{f"/{PROFILE_SERVICE}/{name}": scope for name, scope in _PROFILE_SCOPES.items()},
    **{f"/{DEFINITION_SERVICE}/{name}": scope for name, scope in _DEFINITION_SCOPES.items()},
}
