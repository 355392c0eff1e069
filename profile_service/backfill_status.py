"""The API view of the audience backfill's progress (``GetBackfillStatus``)."""

from __future__ import annotations

from crowd.profile.v1 import definition_service_pb2 as pb
from profile_service.storage.backfill import BackfillProgress

__all__ = ["backfill_status_message"]


def backfill_status_message(progress: BackfillProgress) -> pb.GetBackfillStatusResponse:
    """``GetBackfillStatusResponse`` of ``progress``."""
    return pb.GetBackfillStatusResponse(
        version=progress.version,
        audience_ids=list(progress.audience_ids),
        state=progress.state,
        profiles_scanned=progress.scanned,
        joins_found=progress.joins,
        partitions_done=progress.partitions_done,
        partitions_total=len(progress.partitions),
        partitions=[
            pb.BackfillPartition(
                partition=p.partition,
                profiles_scanned=p.scanned,
                joins_found=p.joins,
                done=p.done,
            )
            for p in progress.partitions
        ],
    )
