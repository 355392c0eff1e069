"""Braze REST endpoints: instance base URLs, paths and the rate-limit group of each path."""

from __future__ import annotations

from enum import StrEnum

#: REST endpoint of every Braze instance (reference/braze-rest-api.md §5). US-01..08 live in
#: ``iad-NN``, US-10 in ``us-10``, EU in ``fra-NN`` under the ``.braze.eu`` TLD.
INSTANCE_ENDPOINTS: dict[str, str] = {
    "US-01": "https://rest.iad-01.braze.com",
    "US-02": "https://rest.iad-02.braze.com",
    "US-03": "https://rest.iad-03.braze.com",
    "US-04": "https://rest.iad-04.braze.com",
    "US-05": "https://rest.iad-05.braze.com",
    "US-06": "https://rest.iad-06.braze.com",
    "US-07": "https://rest.iad-07.braze.com",
    "US-08": "https://rest.iad-08.braze.com",
    "US-10": "https://rest.us-10.braze.com",
    "EU-01": "https://rest.fra-01.braze.eu",
    "EU-02": "https://rest.fra-02.braze.eu",
    "AU-01": "https://rest.au-01.braze.com",
    "ID-01": "https://rest.id-01.braze.com",
    "JP-01": "https://rest.jp-01.braze.com",
    "KR-01": "https://rest.kr-01.braze.com",
}


def instance_endpoint(instance: str) -> str:
    """REST base URL of a Braze instance (``"us-01"``, ``"US 01"`` and ``"US-01"`` all work).

    Raises:
        ValueError: the instance is not one Braze runs.
    """
    normalized = instance.strip().upper().replace(" ", "-").replace("_", "-")
    if len(normalized) == 4 and normalized[2].isdigit():  # "US01" -> "US-01"
        normalized = f"{normalized[:2]}-{normalized[2:]}"
    try:
        return INSTANCE_ENDPOINTS[normalized]
    except KeyError:
        known = ", ".join(INSTANCE_ENDPOINTS)
        raise ValueError(f"unknown Braze instance {instance!r}; expected one of {known}") from None


class RateGroup(StrEnum):
    """Endpoints that share one Braze rate limit."""

    TRACK = "track"
    """/users/track: 3,000 requests per 3 seconds by default."""
    ADMIN = "admin"
    """/users/delete, /users/identify, /users/alias/new, /users/merge: 20,000 per minute."""
    COHORTS = "cohorts"
    """/partners/{partner}/cohorts and /cohorts/users: 250,000 requests per hour."""


class Endpoint(StrEnum):
    """The Braze paths the dispatcher posts to (never with a trailing slash: Braze answers
    403 to ``/users/track/``)."""

    TRACK = "/users/track"
    ALIAS_NEW = "/users/alias/new"
    DELETE = "/users/delete"
    IDENTIFY = "/users/identify"
    MERGE = "/users/merge"

    @property
    def rate_group(self) -> RateGroup:
        """The rate-limit group this endpoint counts against."""
        return RateGroup.TRACK if self is Endpoint.TRACK else RateGroup.ADMIN

    @property
    def max_objects(self) -> int | None:
        """Identifier cap of the endpoint (``None`` for /users/track, capped by batch mode)."""
        return None if self is Endpoint.TRACK else 50


#: "The payload limit for all API endpoints is 4 MB"; larger bodies get 413. Braze does not say
#: whether a MB is 10^6 or 2^20 bytes, so the planner stays under the smaller reading.
MAX_BODY_BYTES = 4_000_000
#: Per-object cap peers enforce (and the sandbox checks); an object above it is never sent.
#: Decimal for the same reason as MAX_BODY_BYTES.
MAX_OBJECT_BYTES = 100_000
