"""Limits a definitions document must respect, beyond the engine settings' own defaults.

Tealium's documented limits (reference §1.3, §6) where it has them; generous caps elsewhere
so that a runaway generated document is refused with a clear message instead of slowing
every event down.
"""

from __future__ import annotations

import re

from crowd.definitions.defaults import MAX_VISIT_LENGTH_MS

ID_PATTERN = re.compile(r"[a-z0-9_]{1,64}")
"""Ids of attributes, audiences, feeds, actions, cooldown groups, enrichments, funnel steps."""
ID_RULE = "lowercase letters, digits and underscores, 1 to 64 characters"

# Document size: checked before anything else, so an oversized document is refused at once
# (the only errors reported) instead of costing a long validation.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024  # serialized protobuf size
MAX_ATTRIBUTES = 500  # Tealium: 500 visit + visitor attributes per profile
MAX_AUDIENCES = 1000
MAX_EVENT_FEEDS = 1000
MAX_ACTIONS = 1000
MAX_COOLDOWN_GROUPS = 100
MAX_ENRICHMENTS_PER_ATTRIBUTE = 100
MAX_CONDITIONS_PER_RULE = 100
MAX_EXPRESSION_DEPTH = 16
MAX_JOIN_OPERANDS = 20

MAX_NAME_LENGTH = 256
MAX_AUDIENCE_NAME_LENGTH = 127  # Tealium: shorter than 128 characters
MAX_DESCRIPTION_LENGTH = 4096
MAX_EVENT_FIELD_LENGTH = 256
MAX_CONNECTOR_ID_LENGTH = 128
MAX_PLATFORM_LENGTH = 64
MAX_DATE_FORMATS = 20
MAX_DATE_FORMAT_LENGTH = 100

MIN_VISIT_TIMEOUT_MS = 5_000  # Tealium: custom session length at least 5,000 ms
MAX_VISIT_TIMEOUT_MS = MAX_VISIT_LENGTH_MS  # 24 hours
MAX_VISITOR_RETENTION_MS = 3650 * 86_400_000  # ten years
MAX_EVENT_DEDUP_WINDOW_MS = 30 * 86_400_000
MAX_STRING_LENGTH_SETTING = 1_000_000
MAX_COLLECTION_SIZE_SETTING = 1_000_000

HOUR_MS = 3_600_000
MIN_ACTION_DELAY_MS = HOUR_MS  # Tealium delayed actions: whole hours, 1 h to 365 days
MAX_ACTION_DELAY_MS = 365 * 86_400_000
MAX_COOLDOWN_WAIT_MS = 365 * 86_400_000
MAX_CAP_WINDOW_MS = 365 * 86_400_000
MAX_TIME_OFFSET_MS = 100 * 365 * 86_400_000

# Braze (reference/braze-rest-api.md).
MAX_BRAZE_NAME_LENGTH = 255
BRAZE_RESERVED_EVENT_PROPERTIES = frozenset({"time", "event_name"})
BRAZE_RESERVED_PURCHASE_PROPERTIES = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
BRAZE_IDENTIFIER_FIELDS = frozenset(
    {"external_id", "braze_id", "user_alias", "_update_existing_only", "_merge_objects"}
)
"""Keys of a Braze attributes object that are not attributes."""
MAX_PURCHASE_QUANTITY = 100
