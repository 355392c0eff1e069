"""Run the real ``crowd`` console script (or ``python -m crowd``) in a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "definitions" / "seed_vip.yaml"
CONSOLE_SCRIPT = Path(sys.executable).parent / "crowd"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without any CROWD_* setting of the developer's shell, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    env.update(extra)
    # Wide, plain output: no terminal, no colour codes in what the tests read.
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> Ran:
    """Run ``crowd ARGS`` and wait (for commands that need no server in this process)."""
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=60,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


async def run_cli_async(*args: str, env: dict[str, str]) -> Ran:
    """Run ``python -m crowd ARGS`` without blocking the event loop (in-process servers)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crowd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())
