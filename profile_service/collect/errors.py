"""The one error type of the Collect ingest: an HTTP status and the ``X-Error`` text."""

from __future__ import annotations


class CollectError(Exception):
    """A refused Collect request, answered with ``status`` and ``X-Error: message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        # A header value: user text (a key) must not smuggle line breaks or control bytes.
        self.message = "".join(c if c.isprintable() and c.isascii() else "?" for c in message)
        self.counted = False
        """True once the events it refused were counted as rejected (``crowd_profile_*``)."""

    @property
    def reason(self) -> str:
        """The bounded ``reason`` label of the rejected-events counter."""
        return _REASONS.get(self.status, "refused")


_REASONS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    429: "rate_limited",
    503: "unavailable",
}
