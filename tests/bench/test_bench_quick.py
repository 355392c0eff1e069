"""``python -m bench`` smoke test: a tiny ingest run (real service and lean baseline server on a
fresh redis-server, child processes as in ``make bench``) prints every target row of the
ingest table with PASS or MISS. Only that the run completes and reports is asserted: the
figures themselves are `make bench`'s business, never a test's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ROWS = (
    "ingest: service CPU per event, real / lean",
    "ingest: Redis CPU per event, real / lean",
    "ingest: Redis memory per visitor",
    "GetProfile CPU per request at 300/s, real / lean",
    "GetProfile p99 at 300/s, real / lean",
    "ingest: Redis round trips per batch",
)


def test_quick_ingest_bench_prints_every_target_with_a_verdict(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_ARGS": ""}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "ingest",
            "--quick",
            "--visitors",
            "200",
            "--batch-size",
            "100",
            "--read-seconds",
            "0.5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "lean server, plain workload" in out and "lean server, identity workload" in out
    targets = out[out.index("Targets") :]
    for row in ROWS:
        assert re.search(rf"\[(PASS|MISS)\] {re.escape(row)}", targets), f"no row {row!r}"
    # The lean server really answered: its events/s and CPU per event are figures, not zeros.
    lean_rate = re.search(r"events/s \(real / lean\)\s+[\d,]+ / ([\d,]+)", out)
    assert lean_rate is not None and int(lean_rate.group(1).replace(",", "")) > 0
