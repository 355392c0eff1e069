"""``python -m bench`` (``make bench``): the ingest and dispatch benchmarks, with targets.

Sizes are flags; ``BENCH_ARGS`` in the environment adds flags too (``BENCH_ARGS=--quick
make bench``). Missed targets are reported as MISS and do not change the exit status; only a
crash (a process that dies, an RPC that fails, a delivery that never completes) exits
non-zero.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import backfill, cluster, collect, dispatch, file_import, ingest, scaling
from bench.procs import machine
from bench.report import Check, checks, section, table

RUN_DIR = Path(".run/bench")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about 30 s in all)")
    p.add_argument(
        "--only",
        choices=("ingest", "collect", "import", "cluster", "scaling", "dispatch", "backfill"),
        help="run one benchmark",
    )
    g = p.add_argument_group("ingest")
    g.add_argument("--visitors", type=int, help="default 10,000 (quick 2,000)")
    g.add_argument("--events-per-visitor", type=int, help="default 4 (quick 2)")
    g.add_argument("--batch-size", type=int, default=500, help="events per TrackEvents")
    g.add_argument("--clients", type=int, default=4, help="concurrent clients")
    g.add_argument(
        "--read-seconds",
        type=float,
        help="length of each GetProfile pass at 300 requests/s, default 10 (quick 3)",
    )
    g = p.add_argument_group("file import (crowd import of a generated CSV)")
    g.add_argument("--import-rows", type=int, help="default 1,000,000 (quick 50,000)")
    g = p.add_argument_group("scaling (ingest with 1 and with N worker processes)")
    g.add_argument("--workers", type=int, default=0, help="N (default: the cores, at least 2)")
    g.add_argument(
        "--connections",
        type=int,
        default=scaling.ScalingConfig.connections,
        help="connections the clients share, taken in turn per batch",
    )
    g = p.add_argument_group("dispatch")
    g.add_argument("--users", type=int, help="default 5,000 (quick 1,000)")
    g.add_argument("--actions-per-user", type=int, default=4)
    g.add_argument("--attributes", type=int, default=10, help="attributes per action")
    g.add_argument("--changed", type=int, default=2, help="attributes changed per update")
    g.add_argument("--submit-batch", type=int, default=1000, help="actions per SubmitActions")
    g.add_argument(
        "--track-rate",
        default="3000/3",
        help="/users/track limit N/SECONDS for sandbox and connectors (Braze: 3000/3)",
    )
    return p


def _scaling_config(args: argparse.Namespace) -> scaling.ScalingConfig:
    return scaling.ScalingConfig(
        visitors=args.visitors or (2_000 if args.quick else 10_000),
        events_per_visitor=args.events_per_visitor or (2 if args.quick else 4),
        batch_size=args.batch_size,
        clients=args.clients,
        connections=args.connections,
        workers=args.workers,
    )


def _configs(args: argparse.Namespace) -> tuple[ingest.IngestConfig, dispatch.DispatchConfig]:
    count, _, seconds = str(args.track_rate).partition("/")
    ingest_config = ingest.IngestConfig(
        visitors=args.visitors or (2_000 if args.quick else 10_000),
        events_per_visitor=args.events_per_visitor or (2 if args.quick else 4),
        batch_size=args.batch_size,
        clients=args.clients,
        round_trip_batches=8 if args.quick else 20,
        read_seconds=args.read_seconds or (3.0 if args.quick else 10.0),
    )
    dispatch_config = dispatch.DispatchConfig(
        users=args.users or (1_000 if args.quick else 5_000),
        actions_per_user=args.actions_per_user,
        attributes=args.attributes,
        changed=args.changed,
        batch_size=args.submit_batch,
        rate=(int(count), float(seconds or 1)),
    )
    return ingest_config, dispatch_config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; 0 unless something crashed."""
    extra = shlex.split(os.environ.get("BENCH_ARGS", ""))
    args = _parser().parse_args([*extra, *(sys.argv[1:] if argv is None else argv)])
    ingest_config, dispatch_config = _configs(args)
    started = time.monotonic()
    section("Machine")
    table(machine())
    results: list[Check] = []
    try:
        single = None
        if args.only in (None, "ingest"):
            single = ingest.run(ingest_config, RUN_DIR / "ingest")
            results += ingest.report_ingest(single)
        if args.only in (None, "collect"):
            collect_config = collect.CollectConfig(
                visitors=args.visitors or (500 if args.quick else 5_000),
                events_per_visitor=ingest_config.events_per_visitor,
                batch_size=args.batch_size,
                clients=args.clients,
            )
            results += collect.report_collect(collect.run(collect_config, RUN_DIR / "collect"))
        if args.only in (None, "import"):
            rows = args.import_rows or (50_000 if args.quick else 1_000_000)
            imported = file_import.run(file_import.ImportConfig(rows=rows), RUN_DIR / "import")
            file_import.report_import(imported)
        if args.only in (None, "cluster"):
            on_cluster = cluster.run(ingest_config, RUN_DIR / "cluster")
            cluster.report_cluster(on_cluster, single)
        if args.only in (None, "scaling"):
            scaled = scaling.run(_scaling_config(args), RUN_DIR / "scaling")
            results += scaling.report_scaling(scaled)
        if args.only in (None, "backfill"):
            visitors = args.visitors or (2_000 if args.quick else 10_000)
            backfill.report_backfill(backfill.run(visitors, RUN_DIR / "backfill"))
        if args.only in (None, "dispatch"):
            results += dispatch.report_dispatch(dispatch.run(dispatch_config, RUN_DIR / "dispatch"))
    except Exception:
        traceback.print_exc()
        print(f"\nbenchmark crashed; process logs are in {RUN_DIR}/", file=sys.stderr)
        return 1
    section(f"Summary ({time.monotonic() - started:.0f} s)")
    checks(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
