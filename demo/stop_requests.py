"""Stop requests to the demo runner: SIGINT, SIGTERM, SIGHUP, or the ``make`` running it.

The handlers only record the request; the runner's supervision loop sees it and stops the
children in order. Raising instead (Python's KeyboardInterrupt) could land in the middle of
that stop, or between starting a child and recording it, and leave a child behind.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequests:
    """Remembers why the runner was asked to stop (the first request wins)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def install(self) -> None:
        """Handle every stop signal from now on (caught even if it was ignored: `make run &`
        from a script starts us with SIGINT ignored, and it must still stop us)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)


@dataclass(frozen=True)
class MakeParent:
    """The GNU make that started us (``make run``), watched for a stop request.

    make forwards SIGTERM to its recipe's process, but a SIGINT or SIGHUP sent to make alone
    (not to the terminal's process group) is not forwarded: make resets that signal to its
    default action and waits for its children before dying, so ``kill -INT <make>`` would wait
    forever. A stop signal that make caught when we started but no longer catches therefore
    means make is handling it, and we stop as if we had received it ourselves. We also stop
    when make is gone (we were re-parented).
    """

    pid: int
    caught_at_start: frozenset[signal.Signals]

    @classmethod
    def detect(cls) -> MakeParent | None:
        """The parent process if it is make (Linux /proc), else None."""
        pid = os.getppid()
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            caught = _caught_stop_signals(pid)
        except OSError:
            return None
        return cls(pid, caught) if name in ("make", "gmake") else None

    def stop_reason(self) -> str | None:
        """Why make wants us to stop, or None while it does not."""
        if os.getppid() != self.pid:
            return "make exited"
        try:
            caught = _caught_stop_signals(self.pid)
        except OSError:
            return "make exited"
        no_longer_caught = sorted(self.caught_at_start - caught)
        return f"{no_longer_caught[0].name} to make" if no_longer_caught else None


def _caught_stop_signals(pid: int) -> frozenset[signal.Signals]:
    """The stop signals ``pid`` has a handler for (``SigCgt`` in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return frozenset(s for s in STOP_SIGNALS if mask >> (s - 1) & 1)
    return frozenset()
