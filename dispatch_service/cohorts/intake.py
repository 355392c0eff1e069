"""Reading one SyncCohort stream: validate every message, coalesce the changes.

The whole stream is buffered and validated before anything is written, so an invalid stream
writes nothing. Field paths count messages across the stream: ``requests[0].cohort.name``,
``requests[2].changes[0].user``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crowd.dispatch.v1.dispatch_service_pb2 import SyncCohortRequest
from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.cohorts.identifiers import ADD, REMOVE, member_of_change
from dispatch_service.cohorts.planner import requests_needed
from service_common.errors import InvalidArgument, Violations

__all__ = [
    "MAX_CHANGES_PER_STREAM",
    "MAX_COHORT_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "CohortIntake",
    "CohortSync",
    "can_sync_cohorts",
]

MAX_CHANGES_PER_STREAM = 100_000
"""Most changes one SyncCohort stream may carry (it is buffered whole to be validated before
anything is written); bigger syncs are split into several streams."""
MAX_COHORT_ID_LENGTH = 255
MAX_NAME_LENGTH = 255
#: Violations reported at most; the stream is refused as soon as this many are found.
MAX_VIOLATIONS = 100


def can_sync_cohorts(connector: BrazeConnector) -> bool:
    """True if the connector has what the partner endpoints need."""
    return bool(
        connector.partner_name
        and connector.partner_api_key is not None
        and connector.partner_api_key.get_secret_value()
        and connector.client_secret is not None
        and connector.client_secret.get_secret_value()
    )


@dataclass(frozen=True)
class CohortSync:
    """A validated stream, ready to be stored."""

    connector_id: str
    cohort_id: str
    name: str
    changes: dict[str, str]
    """Pending field -> wanted value; the last change of each identifier wins."""
    accepted: int
    """Changes received (before coalescing)."""

    @property
    def requests_planned(self) -> int:
        """Braze requests these changes take at most: ``ceil(ids / 1000)`` per kind."""
        adds = sum(1 for value in self.changes.values() if value == ADD)
        return requests_needed(adds) + requests_needed(len(self.changes) - adds)


class CohortIntake:
    """Collects the messages of one stream; :meth:`finish` validates the whole.

    Args:
        connectors: The configured connectors; a cohort must name one that
            :func:`can_sync_cohorts`.
    """

    def __init__(self, connectors: Mapping[str, BrazeConnector]) -> None:
        self._connectors = connectors
        self._violations = Violations()
        self._index = 0
        self._cohort: tuple[str, str, str] | None = None
        self._changes: dict[str, str] = {}
        self._accepted = 0

    def add(self, request: SyncCohortRequest) -> None:
        """Take one message.

        Raises:
            InvalidArgument: the stream is already known to be refused (too many changes or
                violations); the caller stops reading.
        """
        index, self._index = self._index, self._index + 1
        prefix = f"requests[{index}]"
        if index == 0:
            self._read_cohort(request)
        self._accepted += len(request.changes)
        if self._accepted > MAX_CHANGES_PER_STREAM:
            raise InvalidArgument(
                [
                    *self._violations,
                    *_one(
                        f"{prefix}.changes",
                        f"a stream carries at most {MAX_CHANGES_PER_STREAM} changes; "
                        "split the sync into several streams",
                    ),
                ]
            )
        for position, change in enumerate(request.changes):
            member = member_of_change(change, self._violations, f"{prefix}.changes[{position}]")
            if member is not None:
                self._changes[member.field] = REMOVE if change.remove else ADD
            if len(self._violations) >= MAX_VIOLATIONS:
                self._violations.raise_if_any()

    def finish(self) -> CohortSync:
        """The validated stream.

        Raises:
            InvalidArgument: with every violation found (nothing may be written).
        """
        if self._index == 0:
            self._violations.add(
                "requests", "the stream is empty: its first message names the cohort"
            )
        self._violations.raise_if_any()
        assert self._cohort is not None  # set by the first message, or a violation was added
        connector_id, cohort_id, name = self._cohort
        return CohortSync(connector_id, cohort_id, name, self._changes, self._accepted)

    def _read_cohort(self, request: SyncCohortRequest) -> None:
        v = self._violations
        where = "requests[0].cohort"
        if not request.HasField("cohort"):
            v.add(where, "is required in the first message")
            return
        cohort = request.cohort
        connector = self._connectors.get(cohort.connector_id)
        if not cohort.connector_id:
            v.add(f"{where}.connector_id", "is required")
        elif connector is None:
            v.add(f"{where}.connector_id", "names no configured connector")
        elif not can_sync_cohorts(connector):
            v.add(
                f"{where}.connector_id",
                "the connector has no cohort import credentials "
                "(partner_name, partner_api_key_env, client_secret_env)",
            )
        _text(v, f"{where}.cohort_id", cohort.cohort_id, MAX_COHORT_ID_LENGTH)
        # As Treasure Data: without a name the cohort is shown under its id (a name that is
        # given but blank is still refused).
        name = cohort.name or cohort.cohort_id
        if cohort.name:
            _text(v, f"{where}.name", cohort.name, MAX_NAME_LENGTH)
        self._cohort = (cohort.connector_id, cohort.cohort_id, name)


def _text(v: Violations, field: str, value: str, limit: int) -> None:
    if not value.strip():
        v.add(field, "is required (not blank)")
    elif len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
    elif any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        v.add(field, "must not contain control characters")


def _one(field: str, description: str) -> Violations:
    v = Violations()
    v.add(field, description)
    return v
