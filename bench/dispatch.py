"""Dispatch benchmark: Track User actions through the real dispatch service into the sandbox.

Processes: a fresh redis-server, the Braze sandbox (``python -m
braze_sandbox``, Braze's default /users/track limit of 3,000 requests per
3 s unless ``rate`` says otherwise) and the dispatch service (``python -m
dispatch_service``) with two connectors to the sandbox that differ only in ``deltas``.

For each connector (deltas on, then off), with the sandbox reset in between:

1. **first sync** (not measured): one update per user with every attribute, delivered
   completely — what Braze already holds in a running system, and what the delta memory
   then remembers;
2. **measured**: ``actions_per_user`` more updates per user (80% of values repeated by
   default), submitted with ``SubmitActions`` in batches of ``batch_size`` by
   ``submitters`` concurrent callers as fast as the service accepts them (saturation);
3. **paced** (deltas on only): one more update per user offered at half the rate step 2
   delivered, in batches of 100, for the submit-to-arrival latency without a backlog.

The sandbox's recorded requests give, for the measured phase: requests sent (any status),
objects accepted, the minimum number of requests for them (objects / 75, rounded up), and
when each action's object arrived (matched by external_id and ``last_order_id``, see
`bench.dispatch_workload`). Its data-point counter gives the attribute data points, compared
with the attribute values submitted (what a connector without deltas sends: one data point
per value) and with the deltas-off connector's (which still drops values repeated by two
actions of one user in the same batch). Its rate-limit statistics give the most requests
seen in one window (clock-aligned, as Braze counts, and sliding).

Why a first sync: with a cold delta memory the first update of every user must carry all its
attributes, so with 4 updates per user and 80% repeated values no delta logic can save more
than 60%. The target is about the steady state of a running connector; the cold figure is
printed as well.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.dispatch_workload import SEQ_ATTRIBUTE, PlannedAction, UpdatePlan, seq_of
from bench.load import percentile
from bench.procs import cpu_seconds, quiet_env
from bench.report import Check, fmt_int, note, section, table
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from demo.stack import PYTHON, Stack, free_port, start_redis, wait_serving

BRAZE_KEY_ENV = "BENCH_BRAZE_API_KEY"
OBJECTS_PER_REQUEST = 75
TARGET_REQUEST_FACTOR = 1.05
TARGET_DELTA_CUT = 0.80
DISPATCH_BASELINE_US = 418.0
"""Dispatch CPU per action (deltas on) of main before issue 12, measured on the benchmark
machine on 2026-12-06 (docs/benchmarks.md, "Dispatch baseline"); the target is half."""
TARGET_CPU_SHARE = 0.5
POLL_S = 0.2
PACED_BATCH = 100
PACED_SHARE = 0.5
"""The paced round offers this share of the throughput the saturated phase measured."""


@dataclass(frozen=True)
class DispatchConfig:
    """Sizes of the dispatch benchmark."""

    users: int = 5_000
    actions_per_user: int = 4
    attributes: int = 10
    changed: int = 2
    """Attributes changed per update (the rest repeat the user's previous update)."""
    batch_size: int = 1_000
    submitters: int = 2
    rate: tuple[int, float] = (3000, 3.0)
    """/users/track limit: requests per seconds (sandbox and connectors alike)."""
    deliver_timeout_s: float = 120.0


@dataclass
class PhaseResult:
    """One connector's measured phase."""

    deltas: bool
    actions: int
    submitted_at: dict[int, float]
    arrived_at: dict[int, float]
    requests: Counter[int]
    """/users/track requests by response status."""
    objects: int
    attribute_points: int
    """Attribute data points the sandbox logged in the measured phase."""
    submitted_values: int
    """Attribute values in the submitted actions of the measured phase (what a connector
    without deltas or coalescing would send, one data point each)."""
    first_sync_attribute_points: int
    first_sync_values: int
    seconds: float
    """First submit to last arrival."""
    submit_s: float
    """First submit to the last SubmitActions answer."""
    not_accepted: int
    failed: int
    rate_stats: dict[str, Any] = field(default_factory=dict)
    cpu_s: float = 0.0
    paced_rate: float = 0.0
    """Offered load of the paced round (actions/s); 0 if none ran."""
    paced_latencies_s: list[float] = field(default_factory=list)

    @property
    def min_requests(self) -> int:
        """Fewest requests that could carry the accepted objects."""
        return math.ceil(self.objects / OBJECTS_PER_REQUEST)

    @property
    def total_requests(self) -> int:
        """Requests sent, whatever the answer."""
        return sum(self.requests.values())

    @property
    def latencies_s(self) -> list[float]:
        """Submit to arrival, per delivered action."""
        return [
            self.arrived_at[seq] - submitted
            for seq, submitted in self.submitted_at.items()
            if seq in self.arrived_at
        ]

    @property
    def cpu_per_action_us(self) -> float:
        """Dispatch-service CPU µs per action of the measured phase."""
        return self.cpu_s / self.actions * 1e6 if self.actions else 0.0

    @property
    def actions_per_s(self) -> float:
        """Actions delivered per second, first submit to last arrival."""
        return len(self.arrived_at) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DispatchResult:
    """Both connectors' phases."""

    with_deltas: PhaseResult
    without_deltas: PhaseResult
    limit: str
    changed_per_action: int

    @property
    def delta_cut(self) -> float:
        """Share of the submitted attribute values that deltas kept from Braze (measured
        phase): data points with deltas against sending every value."""
        on = self.with_deltas
        return 1 - on.attribute_points / on.submitted_values if on.submitted_values else 0.0

    @property
    def cut_vs_off_run(self) -> float:
        """Data points with deltas against the deltas-off connector's (measured phase)."""
        off = self.without_deltas.attribute_points
        return 1 - self.with_deltas.attribute_points / off if off else 0.0

    @property
    def cold_delta_cut(self) -> float:
        """`delta_cut` counting the first sync too (every user new to Braze)."""
        on = self.with_deltas
        full = on.submitted_values + on.first_sync_values
        sent = on.attribute_points + on.first_sync_attribute_points
        return 1 - sent / full if full else 0.0


class SandboxWatch:
    """Follows the sandbox's recorded /users/track requests and matches arrivals to actions."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self._since = 0
        self.requests: Counter[int] = Counter()
        self.objects = 0
        self.last_seq: dict[str, int] = {}
        """Per external_id, the newest last_order_id seen (accepted requests only)."""
        self.seen: dict[str, list[tuple[float, int]]] = {}
        """Per external_id, (arrival time, last_order_id) of each accepted object."""

    async def _get(self, route: str, **params: str) -> Any:
        async with self._session.get(f"{self._url}{route}", params=params) as reply:
            reply.raise_for_status()
            return await reply.json()

    async def stats(self) -> dict[str, Any]:
        """The sandbox's counters."""
        found: dict[str, Any] = await self._get("/_sandbox/stats")
        return found

    async def reset(self) -> None:
        """Forget users, recorded requests and rate-limit windows."""
        async with self._session.post(f"{self._url}/_sandbox/reset") as reply:
            reply.raise_for_status()
        self._since = 0
        self.start_phase()

    def start_phase(self) -> None:
        """Count requests and objects from now on (arrivals are kept per user)."""
        self.requests = Counter()
        self.objects = 0

    async def poll(self) -> None:
        """Take in the requests recorded since the last poll."""
        doc = await self._get("/_sandbox/requests", path="/users/track", since=str(self._since))
        for request in doc["requests"]:
            self._since = max(self._since, int(request["seq"]))
            status = int(request["status"])
            self.requests[status] += 1
            body = request.get("body")
            if status != 201 or not isinstance(body, dict):
                continue
            arrived = float(request["time"])
            for array in ("attributes", "events", "purchases"):
                self.objects += len(body.get(array) or ())
            for obj in body.get("attributes") or ():
                seq = seq_of(obj.get(SEQ_ATTRIBUTE))
                external_id = obj.get("external_id")
                if seq is None or not isinstance(external_id, str):
                    continue
                self.seen.setdefault(external_id, []).append((arrived, seq))
                self.last_seq[external_id] = max(seq, self.last_seq.get(external_id, -1))

    def arrivals(self, actions: Sequence[PlannedAction]) -> dict[int, float]:
        """Arrival time of each action: the first object of its user carrying its sequence
        number or a later one (a later action's object merged with it)."""
        found: dict[int, float] = {}
        for action in actions:
            times = [t for t, seq in self.seen.get(action.external_id, ()) if seq >= action.seq]
            if times:
                found[action.seq] = min(times)
        return found

    async def wait_delivered(self, actions: Sequence[PlannedAction], timeout_s: float) -> bool:
        """Poll until every user's newest action has arrived; False on timeout."""
        final: dict[str, int] = {}
        for action in actions:
            final[action.external_id] = max(action.seq, final.get(action.external_id, -1))
        deadline = time.monotonic() + timeout_s
        while True:
            await self.poll()
            if all(self.last_seq.get(user, -1) >= seq for user, seq in final.items()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)


async def _submit(
    crowd: CrowdClient, actions: Sequence[PlannedAction], batch_size: int, submitters: int
) -> tuple[dict[int, float], int]:
    """Submit in batches with ``submitters`` concurrent callers; (submit time per seq, number
    of actions not accepted)."""
    chunks = [actions[i : i + batch_size] for i in range(0, len(actions), batch_size)]
    # A chunk waits for the last earlier chunk that updates one of its users: submitted
    # concurrently, the later update of a user could be accepted (and so delivered) first,
    # leaving Braze with the older value and the benchmark waiting for the newer one.
    answered = [asyncio.Event() for _ in chunks]
    after: list[int | None] = []
    last_chunk_of: dict[str, int] = {}
    for index, chunk in enumerate(chunks):
        earlier = [last_chunk_of[a.external_id] for a in chunk if a.external_id in last_chunk_of]
        after.append(max(earlier, default=None))
        last_chunk_of.update((a.external_id, index) for a in chunk)
    submitted: dict[int, float] = {}
    not_accepted = 0
    cursor = 0

    async def submitter() -> None:
        nonlocal cursor, not_accepted
        while cursor < len(chunks):
            index = cursor
            chunk = chunks[index]
            cursor += 1
            if (previous := after[index]) is not None:
                await answered[previous].wait()
            at = time.time()  # epoch, like the sandbox's arrival times
            try:
                outcomes = await crowd.submit_actions([a.action for a in chunk])
            finally:
                answered[index].set()
            for planned in chunk:
                submitted[planned.seq] = at
            not_accepted += sum(1 for o in outcomes if o.state != action_pb2.ACTION_STATE_ACCEPTED)

    await asyncio.gather(*(submitter() for _ in range(submitters)))
    return submitted, not_accepted


async def _submit_paced(
    crowd: CrowdClient, actions: Sequence[PlannedAction], rate: float
) -> dict[int, float]:
    """Submit ``PACED_BATCH`` actions at a time at ``rate`` actions/s (each call on its own
    task, so a slow answer does not delay the next one); submit time per seq."""
    submitted: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(chunk: Sequence[PlannedAction]) -> None:
        at = time.time()
        await crowd.submit_actions([a.action for a in chunk])
        for planned in chunk:
            submitted[planned.seq] = at

    tasks = []
    for n, first in enumerate(range(0, len(actions), PACED_BATCH)):
        await asyncio.sleep(max(0.0, start + n * PACED_BATCH / rate - loop.time()))
        tasks.append(asyncio.create_task(send(actions[first : first + PACED_BATCH])))
    await asyncio.gather(*tasks)
    return submitted


def _values(actions: Sequence[PlannedAction]) -> int:
    return sum(len(a.action.track_user.attributes) for a in actions)


async def _run_connector(
    crowd: CrowdClient,
    watch: SandboxWatch,
    config: DispatchConfig,
    *,
    connector_id: str,
    deltas: bool,
    first_seq: int,
    dispatch_pid: int,
    paced: bool,
) -> PhaseResult:
    plan = UpdatePlan(
        users=config.users,
        attributes=config.attributes,
        changed=config.changed,
        connector_id=connector_id,
    )
    await watch.reset()
    sync = plan.round(first_seq, seed=1)
    seq = first_seq + len(sync)
    await _submit(crowd, sync, config.batch_size, config.submitters)
    if not await watch.wait_delivered(sync, config.deliver_timeout_s):
        raise RuntimeError(f"{connector_id}: the first sync was not delivered in time")
    sync_points = int((await watch.stats())["data_points"]["attributes"])

    measured: list[PlannedAction] = []
    for round_number in range(config.actions_per_user):
        batch = plan.round(seq, seed=100 + round_number)
        seq += len(batch)
        measured.extend(batch)
    watch.start_phase()
    cpu_before = cpu_seconds(dispatch_pid)
    started = time.time()
    submitted, not_accepted = await _submit(crowd, measured, config.batch_size, config.submitters)
    submit_s = time.time() - started
    delivered = await watch.wait_delivered(measured, config.deliver_timeout_s)
    cpu = cpu_seconds(dispatch_pid) - cpu_before
    arrived = watch.arrivals(measured)
    if not delivered:
        note(f"{connector_id}: {len(arrived):,} of {len(measured):,} actions arrived in time")
    stats = await watch.stats()
    requests, objects = Counter(watch.requests), watch.objects
    last = max(arrived.values(), default=started)
    paced_rate = 0.0
    paced_latencies: list[float] = []
    if paced and delivered and last > started:
        # One more update per user, offered well below capacity: latency without a backlog.
        paced_rate = PACED_SHARE * len(arrived) / (last - started)
        paced_round = plan.round(seq, seed=999)
        paced_submitted = await _submit_paced(crowd, paced_round, paced_rate)
        await watch.wait_delivered(paced_round, config.deliver_timeout_s)
        paced_arrived = watch.arrivals(paced_round)
        paced_latencies = [
            paced_arrived[n] - at for n, at in paced_submitted.items() if n in paced_arrived
        ]
    failed = await crowd.failed_actions(connector_id)
    traffic = (await watch.stats())["traffic"].get("track", {})  # every request of the run
    return PhaseResult(
        deltas=deltas,
        actions=len(measured),
        submitted_at=submitted,
        arrived_at=arrived,
        requests=requests,
        objects=objects,
        attribute_points=int(stats["data_points"]["attributes"]) - sync_points,
        submitted_values=_values(measured),
        first_sync_attribute_points=sync_points,
        first_sync_values=_values(sync),
        seconds=last - started,
        submit_s=submit_s,
        not_accepted=not_accepted,
        failed=len(failed),
        rate_stats=dict(traffic),
        cpu_s=cpu,
        paced_rate=paced_rate,
        paced_latencies_s=paced_latencies,
    )


def _connectors_doc(sandbox_url: str, rate: tuple[int, float]) -> dict[str, Any]:
    common = {
        "url": sandbox_url,
        "api_key_env": BRAZE_KEY_ENV,
        "track_rate": {"requests": rate[0], "per_seconds": rate[1]},
    }
    return {
        "connectors": [
            {"id": "bench_deltas", "deltas": True, **common},
            {"id": "bench_full", "deltas": False, **common},
        ]
    }


async def run_dispatch(config: DispatchConfig, run_dir: Path) -> DispatchResult:
    """Start the processes, run both connectors, stop everything."""
    section(
        f"Dispatch: {config.users:,} users x {config.actions_per_user} Track User actions, "
        f"{config.attributes} attributes ({config.changed} changed per update), "
        f"SubmitActions batches of {config.batch_size}"
    )
    api_key = secrets.token_urlsafe(24)
    braze_key = secrets.token_urlsafe(24)
    limit = f"{config.rate[0]}/{config.rate[1]:g}"
    with Stack(run_dir=run_dir) as stack:
        redis_url = start_redis(stack, fresh=True)
        sandbox_port, dispatch_port = free_port(), free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        sandbox = stack.start(
            "braze-sandbox",
            [
                PYTHON,
                "-m",
                "braze_sandbox",
                "--port",
                str(sandbox_port),
                "--track-rate",
                limit,
                "--log-level",
                "warning",
            ],
            # Not on the command line, where `ps` shows it.
            {"BRAZE_SANDBOX_API_KEYS": f"{braze_key}:users.track"},
        )
        connectors = run_dir / "connectors.json"
        connectors.write_text(json.dumps(_connectors_doc(sandbox_url, config.rate)))
        dispatch = stack.start(
            "dispatch",
            [PYTHON, "-m", "dispatch_service"],
            {
                **quiet_env("CROWD_DISPATCH_"),
                "CROWD_DISPATCH_PORT": str(dispatch_port),
                "CROWD_DISPATCH_REDIS_URL": redis_url,
                "CROWD_DISPATCH_API_KEYS": json.dumps({api_key: ["dispatch", "read"]}),
                "CROWD_DISPATCH_CONNECTORS_FILE": str(connectors.resolve()),
                BRAZE_KEY_ENV: braze_key,
                # One process: its CPU is measured by pid.
                "CROWD_DISPATCH_WORKERS": "1",
            },
        )
        target = f"127.0.0.1:{dispatch_port}"
        await wait_serving(dispatch, target)
        sandbox.check_alive()
        note(f"sandbox /users/track limit {limit} s; dispatch connectors: deltas on / off")
        async with (
            aiohttp.ClientSession() as session,
            CrowdClient("", target, api_key=api_key, timeout=60) as crowd,
        ):
            watch = SandboxWatch(session, sandbox_url)
            phases: list[PhaseResult] = []
            first_seq = 1
            for connector_id, deltas in (("bench_deltas", True), ("bench_full", False)):
                note(f"connector {connector_id} (deltas {'on' if deltas else 'off'})")
                phase = await _run_connector(
                    crowd,
                    watch,
                    config,
                    connector_id=connector_id,
                    deltas=deltas,
                    first_seq=first_seq,
                    dispatch_pid=dispatch.popen.pid,
                    paced=deltas,
                )
                first_seq += config.users * (config.actions_per_user + 2)
                note(
                    f"  {phase.actions_per_s:,.0f} actions/s, "
                    f"{phase.total_requests} requests for {phase.objects:,} objects"
                )
                phases.append(phase)
        dispatch.check_alive()
    return DispatchResult(
        with_deltas=phases[0],
        without_deltas=phases[1],
        limit=limit,
        changed_per_action=config.changed,
    )


def _max_in_window(phase: PhaseResult) -> int:
    return int(phase.rate_stats.get("max_in_window", 0))


def report_dispatch(result: DispatchResult) -> list[Check]:
    """Print the dispatch figures; return its target checks."""
    on, off = result.with_deltas, result.without_deltas
    changed = result.changed_per_action
    rows: list[tuple[str, str]] = []
    for phase in (on, off):
        label = "deltas on " if phase.deltas else "deltas off"
        lat = phase.latencies_s
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(phase.requests.items()))
        rows += [
            (f"[{label}] actions delivered", f"{len(phase.arrived_at):,} of {phase.actions:,}"),
            (f"[{label}] actions/s (submit → arrival)", f"{phase.actions_per_s:,.0f}"),
            (
                f"[{label}] SubmitActions intake",
                f"{phase.actions:,} accepted in {phase.submit_s:.1f} s "
                f"({phase.actions / max(phase.submit_s, 1e-9):,.0f}/s)",
            ),
            (
                f"[{label}] submit → sandbox p50 / p99 (saturated)",
                f"{percentile(lat, 0.5):.2f} s / {percentile(lat, 0.99):.2f} s",
            ),
        ]
        if phase.paced_rate:
            rows.append(
                (
                    f"[{label}] paced at {phase.paced_rate:,.0f}/s: p50 / p99",
                    f"{percentile(phase.paced_latencies_s, 0.5):.2f} s / "
                    f"{percentile(phase.paced_latencies_s, 0.99):.2f} s "
                    f"({len(phase.paced_latencies_s):,} actions, batches of {PACED_BATCH})",
                )
            )
        rows += [
            (
                f"[{label}] Braze requests / minimum",
                f"{phase.total_requests} / {phase.min_requests} "
                f"(= {phase.total_requests / max(phase.min_requests, 1):.3f}x; "
                f"{fmt_int(phase.objects)} objects; statuses {statuses})",
            ),
            (f"[{label}] attribute data points", fmt_int(phase.attribute_points)),
            (
                f"[{label}] max requests in one window",
                f"{_max_in_window(phase)} (sliding: "
                f"{int(phase.rate_stats.get('max_in_sliding_window', 0))}; "
                f"429s: {int(phase.rate_stats.get('rejected', 0))}; limit {result.limit} s)",
            ),
            (
                f"[{label}] not accepted / dead-lettered",
                f"{phase.not_accepted} / {phase.failed}",
            ),
            (
                f"[{label}] dispatch service CPU",
                f"{phase.cpu_s:.1f} s ({phase.cpu_s / max(phase.seconds, 1e-9):.0%} of wall, "
                f"{phase.cpu_per_action_us:,.0f} µs per action)",
            ),
        ]
    rows += [
        ("attribute values submitted (measured phase)", fmt_int(on.submitted_values)),
        (
            "ideal: only the changed values",
            f"{fmt_int(on.actions * changed)} ({changed} per action; merging two updates of "
            "a user in one request can send fewer)",
        ),
        (
            "data points cut by deltas (vs every value)",
            f"{result.delta_cut:.1%} ({fmt_int(on.attribute_points)} of "
            f"{fmt_int(on.submitted_values)})",
        ),
        (
            "data points cut by deltas (vs deltas-off run)",
            f"{result.cut_vs_off_run:.1%} ({fmt_int(on.attribute_points)} vs "
            f"{fmt_int(off.attribute_points)})",
        ),
        (
            "… counting the first sync too (cold)",
            f"{result.cold_delta_cut:.1%} "
            f"({fmt_int(on.first_sync_attribute_points + on.attribute_points)} of "
            f"{fmt_int(on.first_sync_values + on.submitted_values)})",
        ),
    ]
    table(rows, title="Dispatch figures")
    limit_requests = int(result.limit.split("/")[0])
    worst_window = max(_max_in_window(on), _max_in_window(off))
    factors = [p.total_requests / max(p.min_requests, 1) for p in (on, off)]
    delivered = all(len(p.arrived_at) == p.actions for p in (on, off))
    cpu_target = DISPATCH_BASELINE_US * TARGET_CPU_SHARE
    return [
        Check(
            "dispatch: CPU per action (deltas on) vs baseline",
            f"{on.cpu_per_action_us:,.0f} µs = {on.cpu_per_action_us / DISPATCH_BASELINE_US:.2f}x"
            f" of {DISPATCH_BASELINE_US:,.0f} µs",
            f"<= {cpu_target:,.0f} µs, half",
            delivered and 0 < on.cpu_per_action_us <= cpu_target,
        ),
        Check(
            "dispatch: requests vs minimum (deltas on / off)",
            " / ".join(f"{f:.3f}x" for f in factors),
            f"<= {TARGET_REQUEST_FACTOR}x",
            delivered and all(f <= TARGET_REQUEST_FACTOR for f in factors),
        ),
        Check(
            "dispatch: attribute data points cut by deltas",
            f"{result.delta_cut:.1%}",
            f">= {TARGET_DELTA_CUT:.0%}",
            delivered and result.delta_cut >= TARGET_DELTA_CUT - 1e-9,
        ),
        Check(
            "dispatch: most requests in one rate-limit window",
            f"{worst_window}",
            f"<= {limit_requests} per {result.limit.split('/')[1]} s",
            worst_window <= limit_requests
            and all(int(p.rate_stats.get("rejected", 0)) == 0 for p in (on, off)),
        ),
    ]


def run(config: DispatchConfig, run_dir: Path) -> DispatchResult:
    """Synchronous entry point."""
    return asyncio.run(run_dispatch(config, run_dir))
