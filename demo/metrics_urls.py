"""The /metrics endpoints of the demo's services (one per worker process)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricsUrls:
    profile: list[str]
    dispatch: list[str]

    def stats_options(self) -> str:
        """The ``crowd stats`` options that read these endpoints."""
        return (
            f"--profile-metrics {','.join(self.profile)} "
            f"--dispatch-metrics {','.join(self.dispatch)}"
        )
