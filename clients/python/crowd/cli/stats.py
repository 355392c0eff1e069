"""``crowd stats``: a live one-screen view read from the services' /metrics endpoints."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from crowd.cli.metrics_snapshot import MetricsUnavailable, Snapshot, read_snapshot, with_rate
from crowd.cli.session import EXIT_UNAVAILABLE, Session


def _counts(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in values.items()) or "0"


def _backfill(figures: dict[str, float]) -> str:
    total = figures.get("partitions_total", 0.0)
    if not total:
        return "idle"
    state = "running" if figures.get("running") else "done"
    return (
        f"{state}: {figures.get('partitions_done', 0):g}/{total:g} partitions, "
        f"{figures.get('profiles_scanned', 0):g} profiles, {figures.get('joins_found', 0):g} joins"
    )


def render(snapshot: Snapshot) -> Table:
    table = Table(title="crowd stats", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rate = snapshot.ingest_rate_per_s
    table.add_row("ingest rate", "…" if rate is None else f"{rate:g} events/s")
    table.add_row("events ingested", f"{snapshot.events_ingested:g}")
    table.add_row("events rejected", f"{snapshot.events_rejected:g}")
    table.add_row(
        "outbox backlog",
        f"{snapshot.outbox_backlog:g} (oldest {snapshot.outbox_oldest_age_s:.1f}s)",
    )
    for queue, depth in snapshot.queue_depth.items():
        age = snapshot.queue_oldest_age_s.get(queue, 0.0)
        table.add_row(f"queue {queue}", f"{depth:g} (oldest {age:.1f}s)")
    table.add_row("braze requests", _counts(snapshot.braze_requests))
    table.add_row("actions suppressed", f"{snapshot.actions_suppressed:g} (frequency caps)")
    table.add_row("backfill", _backfill(snapshot.backfill))
    dead = _counts(snapshot.dead_letters)
    table.add_row(
        "dead letters", f"[red]{dead}[/red]" if sum(snapshot.dead_letters.values()) else dead
    )
    return table


def stats(
    ctx: typer.Context,
    profile_metrics: Annotated[
        str,
        typer.Option(
            "--profile-metrics",
            envvar="CROWD_PROFILE_METRICS",
            help="profile service /metrics URL (comma-separated: one per worker)",
        ),
    ] = "http://127.0.0.1:9101/metrics",
    dispatch_metrics: Annotated[
        str,
        typer.Option(
            "--dispatch-metrics",
            envvar="CROWD_DISPATCH_METRICS",
            help="dispatch service /metrics URL (comma-separated: one per worker)",
        ),
    ] = "http://127.0.0.1:9102/metrics",
    once: Annotated[bool, typer.Option("--once", help="print one snapshot and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="seconds between refreshes")
    ] = 2.0,
) -> None:
    """Ingest rate, queue depth, backlog age, Braze status counts and dead letters, live."""
    session: Session = ctx.obj
    output = session.output
    pretty = output.pretty and not as_json

    def read(previous: Snapshot | None) -> Snapshot:
        try:
            profile_urls = profile_metrics.split(",")
            dispatch_urls = dispatch_metrics.split(",")
            return with_rate(read_snapshot(profile_urls, dispatch_urls), previous)
        except MetricsUnavailable as exc:
            output.problem(str(exc))
            raise typer.Exit(EXIT_UNAVAILABLE) from None

    snapshot = read(None)
    if once:
        if pretty:
            output.table(render(snapshot))
        else:
            output.line(json.dumps(snapshot.as_json(), sort_keys=True))
        return
    try:
        if not pretty:
            while True:
                output.line(json.dumps(snapshot.as_json(), sort_keys=True))
                time.sleep(interval)
                snapshot = read(snapshot)
        with Live(render(snapshot), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                snapshot = read(snapshot)
                live.update(render(snapshot), refresh=True)
    except KeyboardInterrupt:
        return
