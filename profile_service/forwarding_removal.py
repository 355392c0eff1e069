"""Clearing Braze membership of forwarded audiences that a publish deleted.

When a newly published version no longer defines an audience that a forwarding of the
previous version forwarded, the replica that handled the publish pages through that
audience's member set (its stored memberships are only dropped lazily, on each profile's next
event, so the set still lists them) and sends each member's Braze user a Track User built with
the previous forwarding's identifier: ``SegmentMembership`` set to the labels of the
forwarded audiences the member is still in, and/or ``In <label>`` false for the deleted
audience. Idempotency keys ``<profile>:forwarding:<id>:<audience>:removed:<version>`` make a
repeated run a no-op at the dispatch service.

The scan is durable (:class:`ForwardingClearer`): recorded in Redis as a job when a version
deleting forwarded audiences becomes current, worked by any replica under a lease, and
resumed from its last saved page when the replica working on it stops mid-scan.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio

from crowd.common.v1 import value_pb2
from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.actions import (
    IN_AUDIENCE_PREFIX,
    SEGMENT_MEMBERSHIP_ATTRIBUTE,
    user_identifier_builder,
)
from profile_service.engine.context import EvalContext
from profile_service.engine.forwarding import audience_labels, forwarding_action_id
from profile_service.engine.plan import plan_for
from profile_service.engine.state import ProfileState
from profile_service.storage import DefinitionsStore, ProfileReader
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.lua import storage_script
from profile_service.storage.reads import AudiencePage
from profile_service.storage.replies import as_text
from service_common import keys
from service_common.redis import REDIS_FAILURES

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
SUBMIT_ATTEMPTS = 5
LEASE_MS = 30_000
BASELINE = "baseline_version"
JOB_PREFIX = "job:"
#: Compare-and-set of ``baseline_version`` plus fields to set: the backfill's script, which
#: does exactly that on any hash.
BASELINE_SCRIPT = storage_script("backfill_start")


def _number(version: str) -> int:
    """The sequence number of a version id ``v<N>`` (0 for none)."""
    digits = version.removeprefix("v")
    return int(digits) if digits.isdigit() else 0


Submit = Callable[[list[action_pb2.Action]], object]


def _names(defs: CompiledDefinitions) -> dict[str, str]:
    return {aid: a.name or aid for aid, a in defs.audiences.items()}


def removed_forwardings(
    before: CompiledDefinitions, after: CompiledDefinitions
) -> list[tuple[pb.AudienceForwarding, str]]:
    """(previous forwarding, deleted audience id) pairs whose membership must be cleared."""
    pairs: list[tuple[pb.AudienceForwarding, str]] = []
    for forwarding in before.document.audience_forwarding:
        for audience_id in audience_labels(forwarding, _names(before)):
            if audience_id not in after.audiences:
                pairs.append((forwarding, audience_id))
    return pairs


def clearing_action(
    before: CompiledDefinitions,
    after: CompiledDefinitions,
    forwarding: pb.AudienceForwarding,
    audience_id: str,
    state: ProfileState,
) -> action_pb2.Action | None:
    """The Track User clearing ``audience_id`` for one member (None without an identifier)."""
    plan = plan_for(before)
    now_ms = int(time.time() * 1000)
    c = EvalContext(state, None, now_ms, now_ms, plan.limits, track_favorites=False)
    user = user_identifier_builder(forwarding.identifier, plan.operands)(c)
    if user is None:
        return None
    old_labels = audience_labels(forwarding, _names(before))
    current = next((f for f in after.document.audience_forwarding if f.id == forwarding.id), None)
    labels = audience_labels(current, _names(after)) if current is not None else old_labels
    mode = forwarding.mode or pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP
    track = action_pb2.TrackUser(user=user, update_existing_only=True)
    if mode in (pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP, pb.MEMBERSHIP_MODE_BOTH):
        remaining = [
            label
            for aid, label in labels.items()
            if aid in state.audiences and aid in after.audiences
        ]
        track.attributes.add(
            name=SEGMENT_MEMBERSHIP_ATTRIBUTE,
            set=value_pb2.Value(string_list=value_pb2.StringList(values=remaining)),
        )
    if mode in (pb.MEMBERSHIP_MODE_IN_AUDIENCE_ATTRIBUTES, pb.MEMBERSHIP_MODE_BOTH):
        track.attributes.add(
            name=IN_AUDIENCE_PREFIX + old_labels[audience_id],
            set=value_pb2.Value(bool_value=False),
        )
    action_id = forwarding_action_id(forwarding.id, audience_id, False)
    return action_pb2.Action(
        idempotency_key=f"{state.profile_id}:forwarding:{forwarding.id}:{audience_id}"
        f":removed:{after.version}",
        connector_id=forwarding.connector_id,
        visitor_id=state.profile_id,
        action_id=action_id,
        track_user=track,
    )


@dataclass(frozen=True)
class ClearingJob:
    """One unfinished clearing scan: the version that deleted audiences and where it is."""

    version: str
    before: str
    pair: int = 0
    token: str = ""
    sent: int = 0

    def encode(self) -> str:
        return json.dumps(
            {"before": self.before, "pair": self.pair, "token": self.token, "sent": self.sent}
        )

    @classmethod
    def decode(cls, version: str, raw: str) -> ClearingJob:
        data = json.loads(raw)
        return cls(version, data["before"], data["pair"], data["token"], data["sent"])


class ClearingSubmitFailed(Exception):
    """A page of clearing updates was not accepted: the job keeps its progress, retried later."""


class ForwardingClearer:
    """Runs the clearing scans of deleted forwarded audiences, durably (every replica).

    Each replica's loop compares the current definitions version with the last one compared
    (``baseline_version`` in :data:`~service_common.keys.FORWARDING_CLEARING`, advanced by
    compare-and-set, so one replica records each change); a change that deletes forwarded
    audiences becomes a ``job:<version>`` field. Any replica takes an unfinished job with a
    lease and pages through the members, saving the pair index and page token after each
    page is accepted: a replica that stops mid-scan leaves the job to the next one, which
    resumes at the last saved page (a redone page is a no-op at the dispatch service: same
    idempotency keys).

    Args:
        client: Redis (the job record and leases).
        reader: Pages through audience members and reads profiles.
        definitions_store: Reads the versions a job compares.
        definitions: Returns this replica's current compiled definitions.
        compile: Compiles a stored version (``compile_definitions``).
        submit: Hands a page of updates to the dispatch service (raises when refused).
        interval_s: Pause when there is nothing to do.
        page_size: Members per page (one submit and one saved progress each).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        reader: ProfileReader,
        definitions_store: DefinitionsStore,
        definitions: Callable[[], CompiledDefinitions],
        compile: Callable[[pb.Definitions, str], CompiledDefinitions],
        submit: Submit,
        *,
        interval_s: float = 1.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._reader = reader
        self._definitions_store = definitions_store
        self._definitions = definitions
        self._compile = compile
        self._submit = submit
        self._interval_s = interval_s
        self._owner = secrets.token_hex(8)
        self._compiled: dict[str, CompiledDefinitions] = {}
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("forwarding-clearing")
        self.fault_after_submit: Callable[[], None] | None = None
        """Test hook: called after a page was accepted, before its progress is saved."""

    def published(self, before: CompiledDefinitions, after: CompiledDefinitions) -> None:
        """This replica published ``after``: look for deleted forwarded audiences now."""
        self._wake.set()

    # --- jobs --------------------------------------------------------------------------

    async def ensure_job(self, defs: CompiledDefinitions) -> None:
        """Record a job if ``defs`` deletes forwarded audiences of the last compared version."""
        baseline = as_text(await self._client.hget(keys.FORWARDING_CLEARING, BASELINE) or b"")
        if not defs.version or _number(baseline) >= _number(defs.version):
            return
        previous = baseline or await self._previous_version(defs.version)
        before = await self._load(previous) if previous else None
        fields = [BASELINE, defs.version]
        if before is not None and removed_forwardings(before, defs):
            fields += [JOB_PREFIX + defs.version, ClearingJob(defs.version, previous).encode()]
            logger.info("clearing deleted forwarded audiences of %s", defs.version)
        await BASELINE_SCRIPT.run(self._client, [keys.FORWARDING_CLEARING], [baseline, *fields])

    async def _previous_version(self, version: str) -> str:
        history = [as_text(v) for v in await self._client.zrange(keys.DEFINITIONS_HISTORY, 0, -1)]
        if version not in history or history.index(version) == 0:
            return ""
        return history[history.index(version) - 1]

    async def _load(self, version: str) -> CompiledDefinitions | None:
        if version not in self._compiled:
            stored = await self._definitions_store.find(version)
            if stored is None:
                return None
            self._compiled[version] = self._compile(stored.definitions, version)
        return self._compiled[version]

    async def jobs(self) -> list[ClearingJob]:
        """The unfinished jobs, oldest version first."""
        record = {
            as_text(k): as_text(v)
            for k, v in (await self._client.hgetall(keys.FORWARDING_CLEARING)).items()
        }
        found = [
            ClearingJob.decode(field.removeprefix(JOB_PREFIX), raw)
            for field, raw in record.items()
            if field.startswith(JOB_PREFIX)
        ]
        return sorted(found, key=lambda job: _number(job.version))

    # --- work --------------------------------------------------------------------------

    async def step(self) -> int:
        """Record a job for a new version if needed, then work every job this replica can
        take to its end; return how many updates were accepted."""
        await self.ensure_job(self._definitions())
        sent = 0
        for job in await self.jobs():
            lease = keys.forwarding_clearing_lease(job.version)
            if not await self._client.set(lease, self._owner, nx=True, px=LEASE_MS):
                continue
            try:
                sent += await self._work(job, lease)
            finally:
                await self._client.delete(lease)
        return sent

    async def _work(self, job: ClearingJob, lease: str) -> int:
        before, after = await self._load(job.before), await self._load(job.version)
        field = JOB_PREFIX + job.version
        if before is None or after is None:
            logger.warning("clearing of %s: a version is gone; dropping the job", job.version)
            await self._client.hdel(keys.FORWARDING_CLEARING, field)
            return 0
        pairs = removed_forwardings(before, after)
        sent = 0
        pair, token, total = job.pair, job.token, job.sent
        while pair < len(pairs):
            forwarding, audience_id = pairs[pair]
            page = await self._reader.audience_members(audience_id, self._page_size, token)
            actions = await self._page_actions(before, after, forwarding, audience_id, page)
            if actions:
                await self._send(actions)
                sent += len(actions)
            if self.fault_after_submit is not None:
                self.fault_after_submit()
            token = page.next_page_token
            if not token:
                logger.info(
                    "cleared Braze membership of deleted audience %r (forwarding %r)",
                    audience_id,
                    forwarding.id,
                )
                pair += 1
            total += len(actions)
            progress = ClearingJob(job.version, job.before, pair, token, total)
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(keys.FORWARDING_CLEARING, field, progress.encode())
                pipe.pexpire(lease, LEASE_MS)
                await pipe.execute()
        await self._client.hdel(keys.FORWARDING_CLEARING, field)
        return sent

    async def _page_actions(
        self,
        before: CompiledDefinitions,
        after: CompiledDefinitions,
        forwarding: pb.AudienceForwarding,
        audience_id: str,
        page: AudiencePage,
    ) -> list[action_pb2.Action]:
        stored = await asyncio.gather(*(self._reader.get_profile(p) for p in page.profile_ids))
        return [
            action
            for found in stored
            if found is not None
            and (action := clearing_action(before, after, forwarding, audience_id, found.state))
            is not None
        ]

    async def _send(self, actions: list[action_pb2.Action]) -> None:
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                result = self._submit(actions)
                if asyncio.iscoroutine(result):
                    await result
                return
            except Exception as exc:  # refused or failed: retried, then left for later
                if attempt == SUBMIT_ATTEMPTS - 1:
                    raise ClearingSubmitFailed(
                        f"{len(actions)} clearing updates not accepted: {exc}"
                    ) from exc
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))

    async def run(self) -> None:
        """Clear until `stop`; failures are logged and retried next interval."""
        while not self._loop.stopping:
            self._wake.clear()
            try:
                await self.step()
            except REDIS_FAILURES as exc:
                logger.warning("forwarding clearing failed (%s); retrying", type(exc).__name__)
            except Exception:
                logger.exception("forwarding clearing failed; retrying")
            await self._loop.pause(self._interval_s, self._wake)

    def start(self) -> None:
        """Start the loop in a background task."""
        self._loop.start(self.run)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop after the current page (its progress is saved or redone by the next replica)."""
        await self._loop.stop(grace_s)
