"""Clearing Braze membership of forwarded audiences that a publish deleted.

When a newly published version no longer defines an audience that a forwarding of the
previous version forwarded, the replica that handled the publish pages through that
audience's member set (its stored memberships are only dropped lazily, on each profile's next
event, so the set still lists them) and sends each member's Braze user a Track User built with
the previous forwarding's identifier: ``SegmentMembership`` set to the labels of the
forwarded audiences the member is still in, and/or ``In <label>`` false for the deleted
audience. Idempotency keys ``<profile>:forwarding:<id>:<audience>:removed:<version>`` make a
repeated run a no-op at the dispatch service.

This runs in the background of the publishing replica and is not resumed if that replica
stops mid-scan (the README states it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

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
from profile_service.storage import ProfileReader

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
SUBMIT_ATTEMPTS = 5

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


class ForwardingClearer:
    """Starts the clearing scans of a publish (background tasks of this replica)."""

    def __init__(self, reader: ProfileReader, submit: Callable[[list[action_pb2.Action]], object]):
        self._reader = reader
        self._submit = submit
        self._tasks: set[asyncio.Task[int]] = set()

    def published(self, before: CompiledDefinitions, after: CompiledDefinitions) -> None:
        """Queue the clearing of every forwarded audience ``after`` deleted."""
        pairs = removed_forwardings(before, after)
        if not pairs:
            return
        task = asyncio.create_task(self.clear(before, after, pairs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def clear(
        self,
        before: CompiledDefinitions,
        after: CompiledDefinitions,
        pairs: Sequence[tuple[pb.AudienceForwarding, str]],
    ) -> int:
        """Send the clearing updates; returns how many were accepted."""
        sent = 0
        for forwarding, audience_id in pairs:
            token = ""
            while True:
                page = await self._reader.audience_members(audience_id, PAGE_SIZE, token)
                stored = await asyncio.gather(
                    *(self._reader.get_profile(p) for p in page.profile_ids)
                )
                actions = [
                    action
                    for found in stored
                    if found is not None
                    and (
                        action := clearing_action(
                            before, after, forwarding, audience_id, found.state
                        )
                    )
                    is not None
                ]
                if actions:
                    await self._send(actions)
                    sent += len(actions)
                token = page.next_page_token
                if not token:
                    break
            logger.info(
                "cleared Braze membership of deleted audience %r (forwarding %r)",
                audience_id,
                forwarding.id,
            )
        return sent

    async def _send(self, actions: list[action_pb2.Action]) -> None:
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                result = self._submit(actions)
                if asyncio.iscoroutine(result):
                    await result
                return
            except Exception as exc:  # a refused or failed page: retried, then logged
                if attempt == SUBMIT_ATTEMPTS - 1:
                    logger.warning("clearing membership failed for %d users: %s", len(actions), exc)
                    return
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))

    async def stop(self) -> None:
        """Cancel scans still running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
