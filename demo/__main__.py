"""`make run`: start Redis, the Braze sandbox and both services, then play the seed scenario.

The seed scenario (Braze's page on Tealium AudienceStream): purchases raise a visitor's
Lifetime Order Value above 500, which earns the VIP badge; a visit that added to the cart
and bought nothing earns the Cart Abandoner badge when it ends; both badges put the visitor
in the audience "VIP cart abandoners", and joining it sends a Braze Track User request.
Then the same customer logs in on a second device: its new anonymous profile is stitched into
the first, and both ids resolve to one person (one profile, one audience member).

Everything goes through the public gRPC API. The stack then keeps running (try the
``crowd`` CLI with the printed environment) until SIGINT (Ctrl-C), SIGTERM or SIGHUP;
``--exit`` stops after the demo. A child that dies ends the run with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from google.protobuf import duration_pb2, json_format
from rich.console import Console

from braze_sandbox import BrazeSandbox  # noqa: F401  (documents the API used)
from crowd.cli.metrics_snapshot import MetricsUnavailable, read_snapshot
from crowd.cli.stats import render
from crowd.client import CrowdClient, make_event
from crowd.definitions.loader import load_definitions
from crowd.profile.v1 import profile_service_pb2
from demo.metrics_urls import MetricsUrls
from demo.stack import (
    PYTHON,
    RUN_DIR,
    ChildExited,
    Process,
    Stack,
    free_port,
    free_port_range,
    start_redis,
    wait_serving,
)
from demo.stop_requests import StopRequests
from demo.supervise import report_child_exit, supervise
from service_common.settings import available_cores

SEED_DEFINITIONS = Path(__file__).resolve().parent.parent / "examples/definitions/seed_vip.yaml"
RUN_DIR_ENV = "CROWD_DEMO_RUN_DIR"
DEMO_VISIT_TIMEOUT = timedelta(seconds=5)
"""The seed uses 30 minutes; the demo shortens it so the visit ends while you watch."""
BRAZE_KEY_ENV = "DEMO_BRAZE_API_KEY"
T = TypeVar("T")


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def _wait_for(check: Callable[[], Awaitable[T]], what: str, within_s: float = 30.0) -> T:
    """Poll ``check()`` until it returns something truthy (the demo has no events to await
    across process boundaries)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


async def _sandbox_track_requests(sandbox_url: str) -> list[dict[str, object]]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox_url}/_sandbox/requests", params={"path": "/users/track"}) as reply,
    ):
        doc = await reply.json()
    requests: list[dict[str, object]] = doc.get("requests", doc) if isinstance(doc, dict) else doc
    return [r for r in requests if r.get("status") == 201]


async def play(profile_target: str, dispatch_target: str, api_key: str, sandbox_url: str) -> None:
    """The seed scenario, through the public API."""
    async with CrowdClient(profile_target, dispatch_target, api_key=api_key) as crowd:
        definitions = load_definitions(SEED_DEFINITIONS)
        definitions.settings.visit_timeout.CopyFrom(
            duration_pb2.Duration(seconds=int(DEMO_VISIT_TIMEOUT.total_seconds()))
        )
        check = await crowd.validate_definitions(definitions)
        _say(f"definitions {SEED_DEFINITIONS} valid: {check.valid}")
        for error in check.errors:
            print(f"  {error.path}: {error.message}")
        version = await crowd.publish_definitions(definitions)
        print(f"published as {version.version} (digest {version.digest[:12]}…)")

        visitor = f"demo-visitor-{secrets.token_hex(3)}"
        customer = f"customer-{secrets.token_hex(3)}"
        _say(f"visitor {visitor} (customer {customer}) shops")
        visits: list[list[tuple[str, dict[str, object]]]] = [
            [
                ("page_view", {"customer_id": customer}),
                ("purchase", {"order_total": 320.0}),
                ("purchase", {"order_total": 240.0}),
            ],
            [("page_view", {}), ("cart_add", {"product_id": "sku-42"})],
        ]

        async def visit_ended() -> bool:
            return not (await crowd.get_profile(visitor)).HasField("current_visit")

        last_trace_id = ""
        for number, steps in enumerate(visits, start=1):
            print(f"  visit {number}:")
            for name, data in steps:
                # Each call starts its own W3C trace, as an instrumented backend would.
                trace_id = secrets.token_hex(16)
                traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
                response = await crowd.profiles.TrackEvent(
                    profile_service_pb2.TrackEventRequest(event=make_event(visitor, name, data)),
                    metadata=(*crowd.metadata, ("traceparent", traceparent)),
                )
                result = response.result
                last_trace_id = trace_id
                changed = sorted(c.attribute_id for c in result.changed_attributes)
                print(
                    f"    {name:<10} changed={changed} badges+={list(result.badges_assigned)}"
                    f" joined={list(result.audiences_joined)}"
                )
            print(f"    (no event for {DEMO_VISIT_TIMEOUT.seconds}s: the visit ends by itself)")
            await _wait_for(visit_ended, f"visit {number} to end")

        async def in_audience() -> bool:
            profile = await crowd.get_profile(visitor)
            return any(a.audience_id == "vip_cart_abandoners" for a in profile.audiences)

        await _wait_for(in_audience, "the visit to end and the audience to be joined")
        profile = await crowd.get_profile(visitor)
        print(f"  badges: {list(profile.badges)}")
        print(f"  audiences: {[a.audience_id for a in profile.audiences]}")
        size = await crowd.audience_size("vip_cart_abandoners")
        print(f"  audience size of vip_cart_abandoners: {size}")

        _say("the Braze sandbox received the Track User request")

        async def delivered() -> list[dict[str, object]]:
            requests = await _sandbox_track_requests(sandbox_url)
            return [r for r in requests if customer in json.dumps(r.get("body"))]

        found = await _wait_for(delivered, "the Track User request at the sandbox")
        request = found[0]
        print(json.dumps(request.get("body"), indent=2))
        headers = request.get("headers")
        sent = headers.get("traceparent") if isinstance(headers, dict) else None
        braze_traceparent = str(request.get("traceparent") or sent)
        print(f"  traceparent sent to Braze: {braze_traceparent}")
        print(
            f"  the caller's last TrackEvent started trace {last_trace_id}: "
            + ("the same trace reached Braze" if last_trace_id in braze_traceparent else "MISMATCH")
        )

        _say("the visitor's live trace (stored history)")

        async def show_trace() -> None:
            async for entry in crowd.stream_trace(visitor, after="0"):
                kind = json_format.MessageToDict(entry).get("kind", "")
                print(f"  {kind.removeprefix('TRACE_ENTRY_KIND_'):<20} {entry.message}")

        # The trace stream never ends by itself: show what is stored, then move on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(show_trace(), 2.0)

        await _second_device(crowd, visitor, customer)


async def _second_device(crowd: CrowdClient, phone: str, customer: str) -> None:
    """The customer logs in on a laptop: identity stitching makes one person of both ids."""
    laptop = f"demo-laptop-{secrets.token_hex(3)}"
    _say(f"the same customer logs in on a second device ({laptop})")
    browsing = await crowd.track_event(laptop, "page_view")
    print(f"  page_view (anonymous)   profile={browsing.profile_id} new={browsing.new_visitor}")
    login = await crowd.track_event(laptop, "page_view", {"customer_id": customer})
    print(
        f"  page_view (logged in)   profile={login.profile_id}"
        f" stitched={list(login.stitched_profile_ids)}"
    )
    profile = await crowd.get_profile(laptop)
    replaced = [(r.profile_id, r.attribute_id) for r in profile.replaces]
    print(f"  GetProfile({laptop}) -> {profile.profile_id}, replaced_by={profile.replaced_by!r}")
    print(f"  visitor ids: {list(profile.visitor_ids)}; replaces: {replaced}")
    by_customer = await crowd.get_profile(attribute_id="customer_id", value=customer)
    print(f"  GetProfile(customer_id={customer}) -> {by_customer.profile_id}")
    size = await crowd.audience_size("vip_cart_abandoners")
    print(f"  audience size of vip_cart_abandoners: {size} (one person, not two)")
    if profile.profile_id != phone or laptop not in profile.visitor_ids:
        raise RuntimeError("the second device was not stitched into the first profile")


def _metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


async def show_metrics(metrics: MetricsUrls) -> None:
    """Where the metrics are, and a ``crowd stats --once`` summary of the run."""
    _say("metrics (Prometheus; one endpoint per worker process)")
    print(f"  profile:  {', '.join(metrics.profile)}")
    print(f"  dispatch: {', '.join(metrics.dispatch)}")
    try:
        snapshot = await asyncio.to_thread(read_snapshot, metrics.profile, metrics.dispatch)
    except MetricsUnavailable as exc:
        print(f"  {exc}")
        return
    Console(highlight=False).print(render(snapshot))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--exit", action="store_true", help="stop after the demo")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get(RUN_DIR_ENV) or RUN_DIR),
        help=f"where logs, pid files and Redis data go (env {RUN_DIR_ENV}; default {RUN_DIR})",
    )
    return parser.parse_args(argv)


def _write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path``, readable by the owner only."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret)


def main(argv: list[str] | None = None) -> int:
    """Run the stack and the demo until a stop signal (or the demo's end with --exit).

    Exit status: 0 after the demo (--exit) or a requested stop; 1 if a child died or the demo
    failed. Every child is stopped before the runner exits, whatever ended it.
    """
    args = _parse_args(argv)
    run_dir: Path = args.run_dir
    # From here on a stop signal is only recorded: the supervision loop acts on it.
    stop = StopRequests()
    stop.install()
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("*.pid"):
        stale.unlink()
    (run_dir / "demo.pid").write_text(f"{os.getpid()}\n")

    api_key = secrets.token_urlsafe(24)
    braze_key = secrets.token_urlsafe(24)
    keys_json = json.dumps({api_key: ["ingest", "read", "admin", "dispatch"]})
    api_key_file = run_dir / "api-key"
    _write_secret(api_key_file, api_key)

    def forced_stop(process: Process) -> None:
        print(f"demo: {process.name} did not stop within {stack.stop_grace_s:g} s: killed")

    with Stack(run_dir=run_dir, on_forced_stop=forced_stop) as stack:
        try:
            redis_url = start_redis(stack)
        except ChildExited as exited:
            report_child_exit(exited.process)
            return 1
        sandbox_port, dispatch_port, profile_port = free_port(), free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        # Secrets go through the environment, never the command line (visible in `ps`).
        sandbox = stack.start(
            "braze-sandbox",
            [PYTHON, "-m", "braze_sandbox", "--port", str(sandbox_port)],
            {"BRAZE_SANDBOX_API_KEYS": f"{braze_key}:users.track,users.delete,users.identify"},
        )
        connectors = run_dir / "connectors.yaml"
        connectors.write_text(
            json.dumps(
                {
                    "connectors": [
                        {
                            "id": "braze",
                            "url": sandbox_url,
                            "api_key_env": BRAZE_KEY_ENV,
                            "linger_ms": 200,
                        }
                    ]
                }
            )
        )
        common = {"CROWD_REDIS_URL": redis_url}
        # Each worker process serves /metrics on metrics_port + its index.
        workers = available_cores()
        dispatch_metrics, profile_metrics = free_port_range(workers), free_port_range(workers)
        metrics = MetricsUrls(
            [_metrics_url(profile_metrics + i) for i in range(workers)],
            [_metrics_url(dispatch_metrics + i) for i in range(workers)],
        )
        dispatch = stack.start(
            "dispatch",
            [PYTHON, "-m", "dispatch_service"],
            {
                **common,
                "CROWD_DISPATCH_PORT": str(dispatch_port),
                "CROWD_DISPATCH_REDIS_URL": redis_url,
                "CROWD_DISPATCH_API_KEYS": keys_json,
                "CROWD_DISPATCH_CONNECTORS_FILE": str(connectors),
                "CROWD_DISPATCH_WORKERS": str(workers),
                "CROWD_DISPATCH_METRICS_PORT": str(dispatch_metrics),
                BRAZE_KEY_ENV: braze_key,
            },
        )
        profile = stack.start(
            "profile",
            [PYTHON, "-m", "profile_service"],
            {
                **common,
                "CROWD_PROFILE_PORT": str(profile_port),
                "CROWD_PROFILE_REDIS_URL": redis_url,
                "CROWD_PROFILE_API_KEYS": keys_json,
                "CROWD_PROFILE_DISPATCH_TARGET": f"127.0.0.1:{dispatch_port}",
                "CROWD_PROFILE_DISPATCH_API_KEY": api_key,
                "CROWD_PROFILE_WORKERS": str(workers),
                "CROWD_PROFILE_METRICS_PORT": str(profile_metrics),
                # The demo prints the visitor's stored trace: keep every visitor's history.
                "CROWD_PROFILE_TRACE_SAMPLE_RATE": "1",
            },
        )
        profile_target = f"127.0.0.1:{profile_port}"
        dispatch_target = f"127.0.0.1:{dispatch_port}"

        async def demo() -> None:
            await wait_serving(dispatch, dispatch_target)
            await wait_serving(profile, profile_target)
            sandbox.check_alive()
            _say(f"stack up: redis {redis_url}, sandbox {sandbox_url}, logs in {run_dir}/")
            try:
                await play(profile_target, dispatch_target, api_key, sandbox_url)
            finally:
                await show_metrics(metrics)
            if args.exit:
                return
            _say("stack running; try the CLI in another shell:")
            print(f"  export CROWD_PROFILE_TARGET={profile_target}")
            print(f"  export CROWD_DISPATCH_TARGET={dispatch_target}")
            print(f'  export CROWD_API_KEY="$(cat {api_key_file.resolve()})"')
            print("  .venv/bin/crowd audience size vip_cart_abandoners")
            print(f"  .venv/bin/crowd stats {metrics.stats_options()}")
            print("Ctrl-C (or SIGTERM, SIGHUP) stops everything.", flush=True)

        return asyncio.run(supervise(stack, demo(), stop, exit_after_demo=args.exit))


if __name__ == "__main__":
    sys.exit(main())
