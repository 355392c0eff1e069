"""Every Redis key shape of both services, in one place.

Cluster readiness: Redis Cluster only runs a multi-key command or Lua script
when all its keys hash to one slot, which a *hash tag* (the part of a key in
``{...}``) guarantees. We do not tag by visitor id alone, because the engine
also keeps per-partition structures (visit-expiry index, outbox, audience
membership) that must change in the same atomic step as a visitor's profile.
Instead every visitor belongs to one of ``partitions`` partitions
(``crc32(visitor id) % partitions``), and all of that visitor's keys, together
with its partition's indexes, carry the tag ``{p<N>}``. Scripts get every key
through ``KEYS``; no script builds a key name.

The partition count is fixed for the life of a Redis dataset (changing it
re-homes visitors); both services check it against ``META_PARTITIONS``.

Encodings and TTLs are listed per key below. Values are protobuf-serialised
bytes, JSON for small internal records, or Redis-native types.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

PREFIX = "crowd:v1"
"""Versioned prefix: a storage-format change bumps it instead of migrating in place."""

DEFAULT_PARTITIONS = 256


def partition_of(identifier: str, partitions: int) -> int:
    """Return the partition of a visitor (or any identifier) id.

    CRC-32 is stable across processes and languages, unlike Python's ``hash``.
    """
    return zlib.crc32(identifier.encode("utf-8")) % partitions


def partition_tag(partition: int) -> str:
    """Return the hash tag shared by every key of one partition."""
    return f"{{p{partition}}}"


# --- global keys (one slot each unless they share a tag) --------------------------------

META_PARTITIONS = f"{PREFIX}:meta:partitions"
"""String: the partition count the dataset was created with. No TTL."""

DEFINITIONS_TAG = "{defs}"
"""Hash tag shared by the definitions keys: publishing stores a version, switches the current
pointer and records the history in one Lua script, so they must live in one slot."""

DEFINITIONS_CURRENT = f"{PREFIX}:{DEFINITIONS_TAG}:current"
"""String: id of the current definitions version (e.g. ``v7``). No TTL."""

DEFINITIONS_SEQUENCE = f"{PREFIX}:{DEFINITIONS_TAG}:seq"
"""Integer counter used to number versions. No TTL."""

DEFINITIONS_HISTORY = f"{PREFIX}:{DEFINITIONS_TAG}:history"
"""Sorted set: version id scored by publish time (ms). No TTL."""

FORWARDING_CLEARING = f"{PREFIX}:{DEFINITIONS_TAG}:forwarding-clearing"
"""Hash: clearing scans of deleted forwarded audiences (profile_service.forwarding_removal):
``baseline_version`` (the last version compared) and one ``job:<version>`` per unfinished
scan (JSON: the previous version, the pair index, the member page token, updates sent).
No TTL; a finished job's field is deleted."""


def forwarding_clearing_lease(version: str) -> str:
    """String: the replica working on the clearing scan of ``version`` (``SET NX PX``)."""
    return f"{PREFIX}:{DEFINITIONS_TAG}:forwarding-clearing:lease:{version}"


BACKFILL_JOB = f"{PREFIX}:{DEFINITIONS_TAG}:backfill"
"""Hash: the current audience backfill: ``job`` (definitions version), ``audiences`` (JSON
list of audience ids), ``baseline`` (JSON: audience id -> expression digest of that
version), ``started`` (ms). No TTL."""

DEFINITIONS_CHANNEL = f"{PREFIX}:defs:changed"
"""Pub/sub channel: the new version id is published after every switch."""


def definitions_version(version: str) -> str:
    """String: a serialised ``crowd.profile.v1.DefinitionsVersion``. No TTL."""
    return f"{PREFIX}:{DEFINITIONS_TAG}:version:{version}"


def identity_index(attribute_id: str, value: str, partitions: int) -> str:
    """String: the profile id owning a visitor-ID attribute value.

    Partitioned by the value, not by the profile, because lookups start from the
    value. TTL: the visitor retention, refreshed with the profile. Written in the same
    pipeline as the profile's commit but outside its script (another slot), so it is a hint:
    readers confirm that the profile still holds the value.
    """
    tag = partition_tag(partition_of(f"{attribute_id}\x00{value}", partitions))
    return f"{PREFIX}:id:{tag}:{attribute_id}:{value}"


def trace_by_id(trace_id: str) -> str:
    """Stream: trace entries of events carrying a live-trace id. Capped; TTL 12 hours.

    Entries have the same encoding as `PartitionKeys.trace` (written one record per entry,
    field ``e``). Written after the profile commit (this key is in another slot than the
    profile).
    """
    return f"{PREFIX}:trace:id:{trace_id}"


def wait_marker(key: str) -> str:
    """String ``1``: written right before a ``WAIT`` in the slot of ``key`` (its hash tag, or
    the whole key as the tag) so that the ``WAIT`` also confirms every earlier write to that
    master (`service_common.redis_toolkit.replication`). TTL 60 s."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    tag = key[start + 1 : end] if start >= 0 and end > start + 1 else key
    return f"{PREFIX}:wait:{{{tag}}}"


# --- per-partition keys of the profile service ------------------------------------------


@dataclass(frozen=True)
class PartitionKeys:
    """Key shapes of one profile partition; every key carries the partition's tag."""

    partition: int

    @property
    def tag(self) -> str:
        return partition_tag(self.partition)

    def profile(self, profile_id: str) -> str:
        """Hash: ``s`` = serialised ``ProfileState`` (JSON bytes), ``v`` = version token,
        ``d`` = the event ids seen within the dedup window (``profile_service.storage.
        recent_ids``, with the expiry deadline an event commit last set), and ``f`` = the
        survivor once a stitch has frozen the profile (no commit writes it then).

        The version token is a string replaced on every write (a random prefix per process
        and a counter): writers compare it (compare-and-set in Lua) so that concurrent
        replicas never lose an update, and a token cannot repeat after a delete (no ABA).
        The state is JSON, versioned by its ``format`` field (`ProfileState`). TTL: visitor
        retention, set again by a commit that finds the deadline in ``d`` more than a day
        behind (or beyond) ``now + retention`` (``TTL_REFRESH_SLACK_MS`` of
        ``profile_service.storage.commit``).
        """
        return f"{PREFIX}:{self.tag}:profile:{profile_id}"

    def alias(self, visitor_id: str) -> str:
        """String: the surviving profile id an anonymous id was merged into. TTL: retention,
        refreshed whenever the survivor's TTL is. Lives in the partition of ``visitor_id``
        (lookups start from it), not in the survivor's."""
        return f"{PREFIX}:{self.tag}:alias:{visitor_id}"

    def dedup(self, profile_id: str) -> str:
        """Sorted set: event ids seen, scored by arrival (ms), where the profile hash has no
        field ``d``: the ids of a profile written before that field existed (its next commit
        moves them into it), and those of a profile stitched away (so that events retried
        with its visitor id are still recognised).

        TTL: the dedup window.
        """
        return f"{PREFIX}:{self.tag}:dedup:{profile_id}"

    @property
    def visits_due(self) -> str:
        """Sorted set: profile ids with an open visit, scored by the visit's end (ms). No TTL."""
        return f"{PREFIX}:{self.tag}:visits:due"

    @property
    def outbox(self) -> str:
        """Stream: fired actions waiting to reach the dispatch service; consumer group
        ``forwarders``. Entries are deleted once the dispatch service has accepted them.

        Entry fields: ``k`` = idempotency key, ``a`` = serialised ``crowd.dispatch.v1.Action``.
        No MAXLEN and no TTL: an action must never be dropped while the dispatch service is down.
        """
        return f"{PREFIX}:{self.tag}:outbox"

    @property
    def delayed(self) -> str:
        """Sorted set: delayed actions scored by due time (ms). No TTL.

        Members are JSON ``{"p": profile id, "a": action id, "k": idempotency key}``; the
        action is re-evaluated against the profile when due (a gone profile drops it).
        """
        return f"{PREFIX}:{self.tag}:delayed"

    @property
    def stitches(self) -> str:
        """Sorted set: stitches in progress whose replaced profile lives in this partition,
        scored by when they started (ms). No TTL.

        Members are JSON ``{"r": replaced id, "s": survivor id, "a": attribute id, "v":
        value, "i": stitch id}``: written with the freeze (step 1), removed when the replaced
        profile is retired (step 3); an entry older than the recovery grace is completed by
        the sweeper (docs/identity.md).
        """
        return f"{PREFIX}:{self.tag}:stitches"

    @property
    def reevaluate_due(self) -> str:
        """Sorted set: profile ids scored by the next instant (ms) a date-vs-now audience
        condition can flip for them (time-based re-evaluation). Written with ``ZADD LT`` in
        the commit's pipeline (an early entry only wakes the worker early); corrected by the
        worker against the profile version. No TTL."""
        return f"{PREFIX}:{self.tag}:reevaluate:due"

    @property
    def backfill(self) -> str:
        """Hash: this partition's backfill progress: ``job`` (definitions version), ``cursor``
        (SCAN cursor of the partition's profiles), ``scanned``, ``joins``, ``done``. No TTL."""
        return f"{PREFIX}:{self.tag}:backfill"

    @property
    def backfill_lease(self) -> str:
        """String: the replica backfilling this partition right now. TTL 30 s."""
        return f"{PREFIX}:{self.tag}:backfill:lease"

    def audience(self, audience_id: str) -> str:
        """Set: profile ids in an audience within this partition. No TTL (kept in step with
        profiles by the commit script; members whose profile expired by retention are removed
        by the periodic audience reconciler)."""
        return f"{PREFIX}:{self.tag}:audience:{audience_id}"

    def tracing(self, profile_id: str) -> str:
        """String: present while a ``StreamTrace`` follows the profile (its trace history is
        then kept whatever the sampling, see ``profile_service/storage/trace_history.py``).
        Set by the follower with a TTL of a few seconds and refreshed while it follows."""
        return f"{PREFIX}:{self.tag}:tracing:{profile_id}"

    def trace(self, profile_id: str) -> str:
        """Stream: trace entries of one profile, written only while the profile is traced or
        sampled (``trace_sample_rate``). Capped (about ``trace_history_max_bytes``, at most
        ~1000 entries); TTL 12 hours.

        Each entry holds one or more trace records, each the JSON object ``{"k":
        TraceEntryKind, "m": message, "d": details, "t": time ms, "p": profile id, "ev":
        event id, "tr": live-trace id, "o": OpenTelemetry trace id}``: an entry with one
        record has the field ``e`` = that object; an entry written by a commit with several
        records has the field ``b`` = a JSON array of them, in order (one XADD per commit).
        Readers accept both. A record's cursor is the entry id, or ``<entry id>.<index>``
        for a record of a ``b`` entry other than its last.
        """
        return f"{PREFIX}:{self.tag}:trace:{profile_id}"


def partition_keys_for(visitor_id: str, partitions: int) -> PartitionKeys:
    """Return the key shapes of the partition a visitor belongs to."""
    return PartitionKeys(partition_of(visitor_id, partitions))


# --- dispatch service -------------------------------------------------------------------


@dataclass(frozen=True)
class DispatchKeys:
    """Key shapes of one dispatch partition (actions are partitioned by visitor, so a
    visitor's caps, its actions' records and the queue entry change in one script)."""

    partition: int

    @property
    def tag(self) -> str:
        return partition_tag(self.partition)

    def action(self, idempotency_key: str) -> str:
        """Hash: one action's record (payload protobuf, state, reason, attempts, times).

        TTL: the action retention (default 7 days) once delivered, suppressed or skipped;
        none while accepted or failed.
        """
        return f"{PREFIX}:dispatch:{self.tag}:action:{idempotency_key}"

    @property
    def queue(self) -> str:
        """Stream: idempotency keys waiting for delivery; consumer group ``dispatchers``."""
        return f"{PREFIX}:dispatch:{self.tag}:queue"

    def cooldown(self, visitor_id: str, group: str) -> str:
        """String: ``<end ms> <idempotency key>``: when a visitor's cooldown in a group ends
        and the action that started it.

        TTL: the group's wait.
        """
        return f"{PREFIX}:dispatch:{self.tag}:cooldown:{group}:{visitor_id}"

    def cap(self, visitor_id: str, action_id: str) -> str:
        """Sorted set: send times (ms) of an action for a visitor, trimmed to the window.

        TTL: the window.
        """
        return f"{PREFIX}:dispatch:{self.tag}:cap:{action_id}:{visitor_id}"

    @property
    def failed(self) -> str:
        """Sorted set: dead letters scored by failure time (ms). No TTL.

        Members are ``<connector id> NUL <idempotency key>`` (see :func:`failed_member`) so
        that listing one connector's dead letters needs no record reads.
        """
        return f"{PREFIX}:dispatch:{self.tag}:failed"

    @property
    def retry(self) -> str:
        """Sorted set: idempotency keys of accepted actions waiting for a retry, scored by
        when they are due (ms); moved back onto :attr:`queue` when due. No TTL."""
        return f"{PREFIX}:dispatch:{self.tag}:retry"


DEFAULT_DISPATCH_PARTITIONS = 16
"""Default number of dispatch partitions (``DISPATCH_PARTITIONS`` setting of the dispatch
service). Independent of the profile service's partitions: dispatch keys live under their own
``dispatch:`` prefix. Fixed for the life of a dataset, like :data:`DEFAULT_PARTITIONS`; the
dispatch service records it in :data:`DISPATCH_META_PARTITIONS`."""

DISPATCH_META_PARTITIONS = f"{PREFIX}:dispatch:meta:partitions"
"""String: the dispatch partition count the dataset was created with. No TTL."""


def dispatch_keys_for(visitor_id: str, partitions: int) -> DispatchKeys:
    """Return the dispatch key shapes of the partition a visitor's actions belong to."""
    return DispatchKeys(partition_of(visitor_id, partitions))


def failed_member(connector_id: str, idempotency_key: str) -> str:
    """Member of :attr:`DispatchKeys.failed` for one dead letter."""
    return f"{connector_id}\x00{idempotency_key}"


def braze_user_state(connector_id: str, user_key: str, partitions: int) -> str:
    """Hash: attribute name -> JSON of the value Braze last accepted for one user.

    Drives attribute deltas. TTL: the delta memory lifetime (default 30 days), so that
    changes made in Braze by other tools are eventually overwritten again.
    """
    tag = partition_tag(partition_of(f"{connector_id}\x00{user_key}", partitions))
    return f"{PREFIX}:braze:{tag}:{connector_id}:user:{user_key}"


def rate_limit(connector_id: str, endpoint_group: str) -> str:
    """Prefix of the shared rate-limit counters of one connector's endpoint group."""
    return f"{PREFIX}:ratelimit:{connector_id}:{endpoint_group}"


def _rate_limit_tag(connector_id: str, endpoint_group: str) -> str:
    # One hash tag per (connector, group): the log and the pause key are used by one script.
    return f"{{rl:{connector_id}:{endpoint_group}}}"


def rate_limit_slots(connector_id: str, endpoint_group: str) -> str:
    """Sorted set: the request slots of one connector's endpoint group still inside the
    shared sliding window (at most N members, N = the group's limit).

    Member: a random slot id (hex). Score: server time in microseconds at which the slot's
    request is known to have reached Braze (the time its answer came back), or, while the
    request is in flight, the grant time plus the longest a request may stay in flight.
    TTL: twice (window + longest in-flight time), refreshed on every grant.
    """
    return f"{PREFIX}:ratelimit:{_rate_limit_tag(connector_id, endpoint_group)}:slots"


def rate_limit_pause(connector_id: str, endpoint_group: str) -> str:
    """String: server time (ms) until which every replica holds back requests of one
    connector's endpoint group, set when Braze answers 429 with a retry delay.

    TTL: the pause itself (the key vanishes when the pause ends).
    """
    return f"{PREFIX}:ratelimit:{_rate_limit_tag(connector_id, endpoint_group)}:paused"


# --- cohort sync (dispatch service) ------------------------------------------------------


def cohort_partition(connector_id: str, cohort_id: str, partitions: int) -> int:
    """The dispatch partition of one cohort: every key of a cohort shares its tag, so an
    intake or a settle step is one atomic call in one slot."""
    return partition_of(f"{connector_id}\x00{cohort_id}", partitions)


def cohort_member(connector_id: str, cohort_id: str) -> str:
    """Member of :attr:`CohortKeys.dirty` (and queue entry value) naming one cohort.

    Connector ids never contain NUL (``[A-Za-z0-9_.-]``), so the split is unambiguous.
    Used as a hash input too, so it must stay stable.
    """
    return f"{connector_id}\x00{cohort_id}"


@dataclass(frozen=True)
class CohortKeys:
    """Key shapes of cohort sync in one dispatch partition (cohorts are partitioned by
    ``connector id NUL cohort id``, see :func:`cohort_partition`). Cohort ids are printable text
    (no control characters, checked at intake); they follow the tag and the connector id in
    every key, so a ``{`` in a cohort id cannot move the hash tag.
    """

    partition: int

    @property
    def tag(self) -> str:
        return partition_tag(self.partition)

    @property
    def queue(self) -> str:
        """Stream: cohorts with changes to send; consumer group ``cohort-senders``.

        Entry fields: ``c`` = :func:`cohort_member`. At most one waiting entry per cohort
        (see :attr:`dirty`); an entry is acknowledged and deleted once its cohort's pending
        changes are sent or dead-lettered. No MAXLEN and no TTL.
        """
        return f"{PREFIX}:cohort:{self.tag}:queue"

    @property
    def dirty(self) -> str:
        """Set: :func:`cohort_member` of cohorts whose queue entry nobody has started on yet
        (intake adds an entry only when it adds the member; a sender removes the member
        before it reads the pending changes). No TTL."""
        return f"{PREFIX}:cohort:{self.tag}:dirty"

    def pending(self, connector_id: str, cohort_id: str) -> str:
        """Hash: identifier -> wanted membership (``1`` add, ``0`` remove) not yet sent.

        Identifier fields: ``e:<external_id>``, ``d:<device_id>``, ``a:<JSON [alias_label,
        alias_name]>`` (``dispatch_service.cohorts.identifiers``). A later change of the same
        identifier overwrites the field (the last change wins); a sender deletes a field only
        if it still holds the value it sent.
        No TTL (emptied by sending).
        """
        return f"{PREFIX}:cohort:{self.tag}:pending:{connector_id}:{cohort_id}"

    def meta(self, connector_id: str, cohort_id: str) -> str:
        """Hash: ``name`` (wanted), ``exported_name`` (last one Braze accepted), ``created_at``
        (ISO-8601, first intake), ``traceparent`` (of the last intake). No TTL."""
        return f"{PREFIX}:cohort:{self.tag}:meta:{connector_id}:{cohort_id}"

    def lease(self, connector_id: str, cohort_id: str) -> str:
        """String: random token of the sender working on a cohort (one at a time, so that a
        cohort's changes reach Braze in order). TTL: the lease time, renewed while working."""
        return f"{PREFIX}:cohort:{self.tag}:lease:{connector_id}:{cohort_id}"

    @property
    def failed(self) -> str:
        """Stream: cohort dead letters (requests Braze refused for good). No MAXLEN, no TTL.

        Entry fields: ``c`` connector id, ``i`` cohort id, ``k`` kind (``members`` or ``name``),
        ``s`` HTTP status (0: none), ``r`` reason, ``t`` time (ms), ``n`` number of ids,
        ``b`` the refused request body as JSON, credentials left out.
        """
        return f"{PREFIX}:cohort:{self.tag}:failed"
