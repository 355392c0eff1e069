"""Who may send Collect events: API keys with the ``ingest`` scope, or datasources bound
to browser origins (browser tags cannot hide a key), and which origins CORS admits."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from profile_service.collect.errors import CollectError
from service_common.auth import ApiKeyStore

INGEST_SCOPE = "ingest"
_BEARER_RE = re.compile(r"^Bearer +(\S+)$", re.IGNORECASE)


class CollectAccess:
    """Checks a request's credentials (never logs or echoes a key)."""

    def __init__(
        self,
        keys: ApiKeyStore,
        *,
        allowed_origins: Sequence[str],
        datasources: Mapping[str, Sequence[str]],
        auth_enabled: bool = True,
    ) -> None:
        self._keys = keys
        self._auth_enabled = auth_enabled
        self._origins = frozenset(allowed_origins)
        self._datasources = {ds: frozenset(origins) for ds, origins in datasources.items()}

    def cors_allows(self, origin: str) -> bool:
        """Whether a browser at ``origin`` may call (allowed origins or a datasource's)."""
        if "*" in self._origins or origin in self._origins:
            return True
        return any("*" in o or origin in o for o in self._datasources.values())

    def check(self, authorization: str | None, datasource: str, origin: str | None) -> bool:
        """Raise `CollectError` 401/403 unless the request may ingest; ``True`` when a key
        (or disabled auth) admitted it, ``False`` for a keyless datasource."""
        if not self._auth_enabled:
            return True
        if authorization is not None:
            match = _BEARER_RE.match(authorization.strip())
            principal = self._keys.authenticate(match.group(1)) if match else None
            if principal is None:
                raise CollectError(401, "the API key is not valid")
            if INGEST_SCOPE not in principal.scopes:
                raise CollectError(403, "the API key lacks scope 'ingest'")
            return True
        origins = self._datasources.get(datasource) if datasource else None
        if origins is None:
            raise CollectError(
                401, "send 'Authorization: Bearer <api key>' or a keyless tealium_datasource"
            )
        if "*" in origins or (origin is not None and origin in origins):
            return False
        raise CollectError(403, "this origin may not send events for the tealium_datasource")
