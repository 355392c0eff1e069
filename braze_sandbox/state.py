"""State shared by the routes of one sandbox instance."""

from __future__ import annotations

from dataclasses import dataclass, field

from braze_sandbox.config import SandboxConfig
from braze_sandbox.context import HandlerContext
from braze_sandbox.faults import FaultInjector
from braze_sandbox.rate_limit import RateLimiter
from braze_sandbox.recorder import Recorder
from braze_sandbox.store import UserStore


@dataclass
class SandboxState:
    """Everything the routes share; one per sandbox instance."""

    config: SandboxConfig
    store: UserStore = field(init=False)
    faults: FaultInjector = field(init=False)
    recorder: Recorder = field(init=False)
    limiter: RateLimiter = field(init=False)
    context: HandlerContext = field(init=False)

    def __post_init__(self) -> None:
        clock = self.config.clock
        self.store = UserStore(clock)
        self.faults = FaultInjector(self.config.faults, clock)
        self.recorder = Recorder(self.config.max_recorded_requests)
        self.limiter = RateLimiter(self.config.rate_limits, self.config.window_alignment, clock)
        self.context = HandlerContext(
            self.config, self.store, self.faults, self.recorder.data_points
        )

    async def reset(self) -> None:
        """Forget users, cohorts, recorded requests and rate windows; restore start-up faults."""
        self.store.clear()
        self.faults.reset()
        self.recorder.clear()
        self.limiter.reset()
        await self.recorder.notify()
