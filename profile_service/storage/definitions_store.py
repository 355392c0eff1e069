"""Versioned definitions in Redis: publishing with an atomic switch, reading, and watching.

Publishing validates the whole document first (an invalid one is refused whole, nothing is
stored), numbers the new version ``v<N>`` from ``DEFINITIONS_SEQUENCE`` and then, in one Lua
script, stores it, points ``DEFINITIONS_CURRENT`` at it, records it in the history and
announces it on ``DEFINITIONS_CHANNEL``. The script only switches if the current version is
still the one the publisher compared against, so concurrent publishers cannot overwrite each
other unnoticed. A document equal (by digest) to the current one is not stored again.

`DefinitionsWatcher` keeps the compiled current version of one replica in memory. It
switches on the pub/sub announcement, and polls the pointer every 500 ms in case an
announcement was missed (pub/sub is fire-and-forget). The switch replaces one reference:
the ingest path takes the snapshot once per batch, so no event sees two versions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions

from crowd.definitions.errors import DefinitionError, InvalidDefinitionsError
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.storage.background import BackgroundLoop
from profile_service.storage.layout import Clock, system_clock_ms
from profile_service.storage.lua import storage_script
from profile_service.storage.replies import as_bytes, as_text
from service_common import keys
from service_common.errors import Aborted, FailedPrecondition, NotFound
from service_common.redis import REDIS_FAILURES

__all__ = [
    "Compiler",
    "DefinitionsStore",
    "DefinitionsWatcher",
    "Digest",
    "PublishResult",
    "Validator",
]

logger = logging.getLogger(__name__)

PUBLISH_SCRIPT = storage_script("publish_definitions")

Validator = Callable[[pb.Definitions], Sequence[DefinitionError]]
"""Returns every problem of a document (empty when valid)."""

Digest = Callable[[pb.Definitions], str]
"""SHA-256 (hex) of a document's canonical bytes."""

Compiler = Callable[[pb.Definitions, str], CompiledDefinitions]
"""Compiles a valid document published as the given version id."""


@dataclass(frozen=True)
class PublishResult:
    """The outcome of `DefinitionsStore.publish`."""

    version: pb.DefinitionsVersion
    changed: bool
    """False when the document equalled the current version (which is returned)."""


class DefinitionsStore:
    """Stores and reads definitions versions.

    Args:
        client: The Redis client.
        validate: The validator (``crowd.definitions.validator.validate``).
        digest: The canonical digest (``profile_service.definitions`` ``digest``).
        clock: Epoch-milliseconds clock for ``published_at``.
        max_attempts: Publishes retried when another publisher switched in between.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        validate: Validator,
        digest: Digest,
        clock: Clock = system_clock_ms,
        max_attempts: int = 5,
    ) -> None:
        self._client = client
        self._validate = validate
        self._digest = digest
        self._clock = clock
        self._max_attempts = max_attempts

    async def current_version_id(self) -> str:
        """The current version id, or ``""`` when nothing was published yet."""
        raw = await self._client.get(keys.DEFINITIONS_CURRENT)
        return as_text(raw) if raw else ""

    async def find(self, version: str = "") -> pb.DefinitionsVersion | None:
        """The named version (``""``: the current one), or ``None`` if there is none."""
        version = version or await self.current_version_id()
        if not version:
            return None
        raw = await self._client.get(keys.definitions_version(version))
        if raw is None:
            return None
        stored = pb.DefinitionsVersion()
        stored.ParseFromString(as_bytes(raw))
        return stored

    async def get(self, version: str = "") -> pb.DefinitionsVersion:
        """Like `find`, but raises `NotFound` instead of returning ``None``."""
        stored = await self.find(version)
        if stored is None:
            what = f"definitions version {version!r}" if version else "published definitions"
            raise NotFound(
                f"there is no {what}",
                reason="DEFINITIONS_NOT_FOUND",
                metadata={"version": version},
            )
        return stored

    async def publish(
        self, definitions: pb.Definitions, expected_current_version: str = ""
    ) -> PublishResult:
        """Validate and publish ``definitions`` as the new current version.

        Raises:
            InvalidDefinitionsError: The document is invalid (every error listed); nothing
                was stored.
            FailedPrecondition: ``expected_current_version`` is set and is not current.
            Aborted: Other publishers kept switching versions for every attempt.
        """
        errors = list(self._validate(definitions))
        if errors:
            raise InvalidDefinitionsError(errors)
        digest = self._digest(definitions)
        for _ in range(self._max_attempts):
            current_id = await self.current_version_id()
            if expected_current_version and expected_current_version != current_id:
                raise _version_mismatch(expected_current_version, current_id)
            if current_id:
                current = await self.find(current_id)
                if current is not None and current.digest == digest:
                    return PublishResult(current, changed=False)
            number = await self._client.incr(keys.DEFINITIONS_SEQUENCE)
            version = pb.DefinitionsVersion(
                version=f"v{number}", digest=digest, definitions=definitions
            )
            now_ms = self._clock()
            version.published_at.FromMilliseconds(now_ms)
            switched, actual = await PUBLISH_SCRIPT.run(
                self._client,
                [
                    keys.DEFINITIONS_CURRENT,
                    keys.DEFINITIONS_HISTORY,
                    keys.definitions_version(version.version),
                ],
                [
                    current_id,
                    version.version,
                    version.SerializeToString(),
                    now_ms,
                    keys.DEFINITIONS_CHANNEL,
                ],
            )
            if int(switched) == 1:
                logger.info("published definitions %s (digest %s)", version.version, digest)
                return PublishResult(version, changed=True)
            if expected_current_version:
                raise _version_mismatch(expected_current_version, as_text(actual))
            # Another publisher switched in between: compare against its version again.
        raise Aborted(
            "definitions were published concurrently too often; retry",
            reason="DEFINITIONS_PUBLISH_CONFLICT",
        )


def _version_mismatch(expected: str, current: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the current definitions version is {current or 'none'}, not {expected}",
        reason="DEFINITIONS_VERSION_MISMATCH",
        metadata={"expectedVersion": expected, "currentVersion": current},
    )


class DefinitionsWatcher:
    """Keeps one replica's compiled current definitions up to date.

    Args:
        client: The Redis client (the pub/sub subscription takes one connection).
        store: Where versions are read.
        compile: The compiler (``profile_service.definitions`` ``compile_definitions``).
        empty: What `current` is before any version was published (default: the compiled
            empty document).
        poll_interval_s: Longest time between two checks of the current pointer.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: DefinitionsStore,
        compile: Compiler,
        *,
        empty: CompiledDefinitions | None = None,
        poll_interval_s: float = 0.5,
    ) -> None:
        self._client = client
        self._store = store
        self._compile = compile
        self._current = empty if empty is not None else compile(pb.Definitions(), "")
        self._version = ""
        self._failed_version = ""
        self._poll_interval_s = poll_interval_s
        self._switched = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self._loop = BackgroundLoop("definitions-watcher")

    @property
    def current(self) -> CompiledDefinitions:
        """The compiled current definitions: take it once per batch and keep it."""
        return self._current

    @property
    def version(self) -> str:
        """The id of the version `current` holds (``""`` before any was published)."""
        return self._version

    async def refresh(self) -> bool:
        """Check the current pointer now and switch if it moved; return whether it switched."""
        version_id = await self._store.current_version_id()
        if not version_id or version_id in (self._version, self._failed_version):
            return False
        async with self._refresh_lock:
            if version_id == self._version:
                return False
            stored = await self._store.find(version_id)
            if stored is None:
                return False
            try:
                compiled = self._compile(stored.definitions, version_id)
            except Exception:
                # E.g. a version published by a newer release: keep serving the old one.
                logger.exception(
                    "cannot compile definitions %s; keeping %s",
                    version_id,
                    self._version or "the empty definitions",
                )
                self._failed_version = version_id
                return False
            self._current = compiled
            self._version = version_id
            self._switched.set()
            self._switched = asyncio.Event()
            logger.info("switched to definitions %s", version_id)
            return True

    async def wait_for(self, version_id: str, timeout_s: float) -> CompiledDefinitions:
        """Wait until `current` is ``version_id`` (raises `TimeoutError` after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            while self._version != version_id:
                await self._switched.wait()
        return self._current

    async def start(self) -> None:
        """Load the current version, then follow changes in a background task."""
        await self.refresh()
        self._loop.start(self._run)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop following changes (within one poll interval)."""
        await self._loop.stop(grace_s)

    async def _run(self) -> None:
        while not self._loop.stopping:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(keys.DEFINITIONS_CHANNEL)
                    await self.refresh()  # anything published while (re)subscribing
                    while not self._loop.stopping:
                        # Returns on an announcement or after the poll interval: either way
                        # compare the pointer (the poll covers lost announcements).
                        await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=self._poll_interval_s
                        )
                        await self.refresh()
            except REDIS_FAILURES as exc:
                logger.warning("definitions watch interrupted (%s); retrying", type(exc).__name__)
                await self._loop.pause(self._poll_interval_s)
