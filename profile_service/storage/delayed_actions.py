"""Due delayed actions for the sweeper: re-evaluated, then moved to the outbox at most once."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import ProfileState, TraceRecord
from profile_service.storage.batch_reads import MAX_LINK_HOPS
from profile_service.storage.replies import RedisArg, as_text
from profile_service.storage.state_codec import decode_state
from profile_service.storage.store_core import (
    MOVE_DELAYED_SCRIPT,
    DelayedReport,
    StoreCore,
    raise_errors,
)
from service_common import keys
from service_common.trace_entries import TRACE_MAXLEN, TRACE_TTL_MS, encode_entry

__all__ = ["DelayedActions"]

logger = logging.getLogger(__name__)


class DelayedActions(StoreCore):
    """Fires due delayed actions (part of `ProfileStore`)."""

    async def fire_due_delayed(
        self,
        defs: CompiledDefinitions,
        due: Sequence[tuple[int, str]],
        now_ms: int,
    ) -> DelayedReport:
        """Re-evaluate due delayed actions and move those that still apply to the outbox.

        Args:
            due: ``(partition, member)`` pairs read from the partitions' delayed sets.

        Each member is claimed by one atomic ZREM (``move_delayed.lua``), so with several
        sweepers an action reaches the outbox at most once; a member a visit end has moved
        to a later time since it was read (rescheduled) is left for that time.
        """
        parsed: list[tuple[int, str, dict[str, str] | None]] = []
        for partition, member in due:
            try:
                doc = json.loads(member)
                # Members written before rescheduling also carry "k" (the key is derived now).
                entry = {"p": str(doc["p"]), "a": str(doc["a"])}
            except (ValueError, KeyError, TypeError):
                logger.error("dropping an unreadable delayed action in partition %d", partition)
                entry = None
            parsed.append((partition, member, entry))
        profile_ids = sorted({e["p"] for _, _, e in parsed if e is not None})
        states = await self._states_for_delayed(profile_ids)

        fired_flags: list[bool] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for partition, member, entry in parsed:
                pkeys = keys.PartitionKeys(partition)
                args: list[RedisArg] = [member, "", "", "", TRACE_MAXLEN, TRACE_TTL_MS, now_ms]
                trace_key = pkeys.delayed  # any key of the slot; unused when no trace entry
                state = states.get(entry["p"]) if entry is not None else None
                fired = None
                if entry is not None and state is not None:
                    # The scheduling id's own trace (its slot), also when a survivor decides.
                    trace_key = pkeys.trace(entry["p"])
                    try:
                        fired = self._engine.evaluate_delayed(defs, state, entry["a"], now_ms)
                    except Exception:
                        logger.exception(
                            "re-evaluating delayed action %s of %s failed", entry["a"], entry["p"]
                        )
                        continue  # stays due: retried by the next sweep
                    record = _delayed_trace_record(entry["a"], fired is not None)
                    args[3] = encode_entry(record, profile_id=entry["p"], time_ms=now_ms)
                if fired is not None:
                    args[1] = fired.idempotency_key
                    args[2] = fired.action.SerializeToString()
                fired_flags.append(fired is not None)
                MOVE_DELAYED_SCRIPT.queue(pipe, [pkeys.delayed, pkeys.outbox, trace_key], args)
            replies = await self._execute(pipe) if fired_flags else []
        raise_errors(replies)
        fired_count = dropped = 0
        for was_fired, reply in zip(fired_flags, replies, strict=True):
            if reply == 1:
                if was_fired:
                    fired_count += 1
                else:
                    dropped += 1
        if fired_count and self._on_outbox_write is not None:
            self._on_outbox_write()
        return DelayedReport(fired=fired_count, dropped=dropped)

    async def _states_for_delayed(
        self, profile_ids: Sequence[str]
    ) -> dict[str, ProfileState | None]:
        """The profile each scheduling id stands for now: its own, or, once it was stitched
        into another profile (retired, its alias names the survivor), the survivor's. The
        person's pending run then still fires, decided on the merged profile; its key is
        derived from that profile's visit, so a run the survivor scheduled for the same visit
        is the same action to the dispatch service (idempotency key)."""
        states: dict[str, ProfileState | None] = {}
        current = {profile_id: profile_id for profile_id in profile_ids}
        for _ in range(MAX_LINK_HOPS):
            if not current:
                break
            async with self._client.pipeline(transaction=False) as pipe:
                for target in current.values():
                    pkeys = self._layout.keys_for(target)
                    pipe.hget(pkeys.profile(target), "s")
                    pipe.get(pkeys.alias(target))
                replies = await self._execute(pipe)
            raise_errors(replies)
            moved: dict[str, str] = {}
            for (profile_id, target), raw, alias in zip(
                current.items(), replies[0::2], replies[1::2], strict=True
            ):
                if raw:
                    states[profile_id] = decode_state(raw)
                elif alias and as_text(alias) != target:
                    moved[profile_id] = as_text(alias)
                else:
                    states[profile_id] = None
            current = moved
        return states


def _delayed_trace_record(action_id: str, fired: bool) -> TraceRecord:
    if fired:
        return TraceRecord(
            kind=trace_pb2.TRACE_ENTRY_KIND_ACTION_TRIGGERED,
            message=f"delayed action {action_id} fired after its delay",
            details={"action_id": action_id},
        )
    return TraceRecord(
        kind=trace_pb2.TRACE_ENTRY_KIND_ACTION_SUPPRESSED,
        message=f"delayed action {action_id} dropped: the visitor no longer qualifies",
        details={"action_id": action_id},
    )
