"""Supervision of the demo stack: run the demo while every child runs and no stop is asked.

Ends with one of three outcomes: the demo finished (``--exit``), a stop was requested (a
signal to the runner, or to the ``make`` running it), or a child died, which is reported as
one line naming it and its exit status. The caller then stops the remaining children.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from demo.stack import Process, Stack, describe_exit
from demo.stop_requests import MakeParent, StopRequests

POLL_S = 0.2
"""How often children, stop requests and make are checked (nothing to await across them)."""
CHILD_EXIT_WINDOW_S = 2.0
"""After the demo fails, how long to look for a child's exit as the cause: a killed child
closes its sockets just before the kernel reports it as exited."""
CANCEL_WINDOW_S = 5.0


def report_child_exit(process: Process) -> None:
    """The one line the runner prints when a child dies unexpectedly."""
    returncode = process.popen.returncode
    print(
        f"demo: {process.name} (pid {process.pid}) died unexpectedly: {describe_exit(returncode)}"
        f"; its log: {process.log_path}",
        file=sys.stderr,
        flush=True,
    )


async def supervise(
    stack: Stack,
    demo: Coroutine[Any, Any, None],
    stop: StopRequests,
    *,
    exit_after_demo: bool,
) -> int:
    """Run ``demo`` under supervision; the runner's exit status."""
    make = MakeParent.detect()
    task = asyncio.create_task(demo)
    try:
        while True:
            dead = stack.first_exited()
            if dead is not None:
                report_child_exit(dead)
                return 1
            if make is not None and (reason := make.stop_reason()) is not None:
                stop.request(reason)
            if stop.reason is not None:
                print(f"\nstopping ({stop.reason})…", flush=True)
                return 0
            if task.done():
                if task.cancelled() or (error := task.exception()) is None:
                    if exit_after_demo:
                        return 0
                else:
                    return await _demo_failed(stack, error)
            await asyncio.sleep(POLL_S)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_WINDOW_S)


async def _demo_failed(stack: Stack, error: BaseException) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CHILD_EXIT_WINDOW_S
    while loop.time() < deadline:
        dead = stack.first_exited()
        if dead is not None:
            report_child_exit(dead)
            return 1
        await asyncio.sleep(0.1)
    print(f"demo: the demo failed: {error!r} (logs in {stack.run_dir}/)", file=sys.stderr)
    return 1
