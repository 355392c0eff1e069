"""Rate-limited log lines: at most one per cause per interval, with a count of those skipped.

Hostile or broken clients can send the same bad request thousands of times a second; logging
each one would flood the log (and cost more than refusing the request). A
:class:`LogThrottle` logs the first occurrence of a cause, drops repeats for ``interval_s``
seconds, then logs the next one with how many were dropped in between.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["LogThrottle"]


class LogThrottle:
    """Logs at most one line per cause per ``interval_s`` seconds.

    Args:
        logger: Where the lines go.
        interval_s: Minimum seconds between two lines of the same cause.
        clock: Monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        # cause -> (when it was last logged, how many were dropped since)
        self._state: dict[Hashable, tuple[float, int]] = {}
        # Deserializers may run on grpc's threads as well as the event loop.
        self._lock = threading.Lock()

    def log(self, level: int, cause: Hashable, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``cause`` was logged less than ``interval_s`` ago.

        The line never carries a stack trace. Returns whether it was logged.
        """
        now = self._clock()
        with self._lock:
            last = self._state.get(cause)
            if last is not None and now - last[0] < self._interval_s:
                self._state[cause] = (last[0], last[1] + 1)
                return False
            dropped = last[1] if last is not None else 0
            self._state[cause] = (now, 0)
        if dropped:
            message += " (%d more like it since the last such line)"
            args = (*args, dropped)
        self._logger.log(level, message, *args)
        return True

    def warning(self, cause: Hashable, message: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, cause, message, *args)
