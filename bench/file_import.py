"""File import benchmark: ``crowd import`` of a generated CSV (1,000,000 rows by default)
into one profile service process, as a user runs it (the CLI in its own process).

Figures: rows/s end to end (parsing, ``ImportRecords`` calls, the engine and Redis), and
the summary the CLI prints (every row imported, none refused). The rows are purchases of
``rows / ROWS_PER_VISITOR`` visitors with a number, a string, a JSON array and a date
column, so every row runs the bench definitions' purchase enrichments.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import publish_bench_definitions
from bench.procs import quiet_env
from bench.report import fmt_int, note, section, table
from demo.stack import PYTHON, Stack, free_port, start_redis, wait_serving

ROWS_PER_VISITOR = 5
CATEGORIES = ("shoes", "shirts", "bags", "hats", "socks")
MAPPING = {
    "event": "purchase",
    "date_format": "%Y-%m-%d",
    "visitor": {"column": "visitor"},
    "columns": {
        "total": {"name": "order_total", "type": "number"},
        "category": "category",
        "tags": {"name": "tags", "type": "string_list"},
        "ordered": {"name": "ordered_on", "type": "date"},
    },
}


@dataclass(frozen=True)
class ImportConfig:
    """Size of the file import benchmark."""

    rows: int = 1_000_000
    chunk_size: int = 1000


@dataclass(frozen=True)
class ImportResult:
    """What the CLI reported and how long it took."""

    rows: int
    seconds: float
    summary: dict[str, object]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def write_csv(path: Path, rows: int) -> None:
    """A CSV of ``rows`` purchases (header on line 1), deterministic for a given size."""
    pick = random.Random(11)
    visitors = max(1, rows // ROWS_PER_VISITOR)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["visitor", "total", "category", "tags", "ordered"])
        for n in range(rows):
            tags = json.dumps(pick.sample(CATEGORIES, 2))
            day = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}"
            total = f"{pick.uniform(5, 500):.2f}"
            writer.writerow([f"imp-{n % visitors:07d}", total, CATEGORIES[n % 5], tags, day])


def run(config: ImportConfig, run_dir: Path) -> ImportResult:
    """Write the file, start Redis and the profile service, then time ``crowd import``."""
    section(f"File import: crowd import of a {config.rows:,}-row CSV")
    run_dir.mkdir(parents=True, exist_ok=True)
    source, mapping = run_dir / "purchases.csv", run_dir / "mapping.json"
    note(f"writing {source}")
    write_csv(source, config.rows)
    mapping.write_text(json.dumps(MAPPING), encoding="utf-8")
    checkpoint = run_dir / "purchases.checkpoint"
    checkpoint.unlink(missing_ok=True)
    return asyncio.run(_run(config, run_dir, source, mapping, checkpoint))


async def _run(
    config: ImportConfig, run_dir: Path, source: Path, mapping: Path, checkpoint: Path
) -> ImportResult:
    api_key = secrets.token_urlsafe(24)
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        port = free_port()
        profile = stack.start(
            "profile",
            [PYTHON, "-m", "profile_service"],
            {
                **quiet_env("CROWD_PROFILE_"),
                "CROWD_PROFILE_REDIS_URL": redis_url,
                "CROWD_PROFILE_API_KEYS": json.dumps({api_key: ["ingest", "read", "admin"]}),
                "CROWD_PROFILE_DISPATCH_TARGET": "",
                "CROWD_PROFILE_WORKERS": "1",
                "CROWD_PROFILE_PORT": str(port),
            },
        )
        target = f"127.0.0.1:{port}"
        await wait_serving(profile, target)
        await publish_bench_definitions(target, api_key)
        command = [PYTHON, "-m", "crowd", "--json", "import", str(source), "-m", str(mapping)]
        command += ["--checkpoint", str(checkpoint), "--chunk-size", str(config.chunk_size)]
        env = {**os.environ, "CROWD_PROFILE_TARGET": target, "CROWD_API_KEY": api_key}
        note("importing")
        started = time.perf_counter()
        ran = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        profile.check_alive()
    if ran.returncode != 0:
        raise RuntimeError(f"crowd import exited {ran.returncode}: {ran.stderr[-2000:]}")
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    if summary.get("imported") != config.rows or summary.get("errors"):
        raise RuntimeError(f"crowd import did not import every row: {summary}")
    return ImportResult(config.rows, seconds, summary)


def report_import(result: ImportResult) -> None:
    """Print the figure (no target: the issue asks for the rate)."""
    table(
        [
            ("rows imported", fmt_int(int(str(result.summary["imported"])))),
            ("wall time", f"{result.seconds:,.1f} s"),
            ("rate", f"{result.rows_per_s:,.0f} rows/s"),
        ],
        title="crowd import (CSV, one profile service process)",
    )
