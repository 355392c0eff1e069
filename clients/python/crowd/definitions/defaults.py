"""Documented defaults of the engine settings, shared by the validator and the service's engine.

They live with the definitions (not in the service) because the offline validator checks
settings against them, e.g. a visit timeout longer than the maximum visit length.
"""

from __future__ import annotations

DEFAULT_VISIT_TIMEOUT_MS = 30 * 60 * 1000
MAX_VISIT_LENGTH_MS = 24 * 60 * 60 * 1000
DEFAULT_VISITOR_RETENTION_MS = 395 * 24 * 60 * 60 * 1000
DEFAULT_MAX_STRING_LENGTH = 1000
DEFAULT_MAX_COLLECTION_SIZE = 30_000
DEFAULT_EVENT_DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000
TIMELINE_MAX_ENTRIES = 100
MOBILE_VISIT_TIMEOUT_MS = 2 * 60 * 1000
IMPORT_VISIT_TIMEOUT_MS = 60 * 1000
DEFAULT_PLATFORM_VISIT_TIMEOUTS_MS: dict[str, int] = {
    # Tealium's session lengths: mobile platforms 2 minutes, file imports 1 minute; any
    # other platform (web, custom) uses the visit timeout. Definitions may override each.
    **dict.fromkeys(("android", "ios", "win", "bb10", "native_mobile"), MOBILE_VISIT_TIMEOUT_MS),
    "import": IMPORT_VISIT_TIMEOUT_MS,
}
