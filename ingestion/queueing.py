"""How a stored batch is queued: the drain of its org's pending batches of its kind (accounts.tasking § drains)."""

from __future__ import annotations

from accounts.tasking import enqueue_drain, enqueue_drain_on_commit

from .models import RawBatch

BATCH_TASK = "ingestion.tasks.batch_process"


def drain_key(org_id: int, kind: str) -> str:
    return f"batches:{org_id}:{kind}"


def batch_drain_on_commit(batch: RawBatch) -> None:
    """After the request's commit, queue the drain of the org's pending batches of this kind, unless one is waiting
    to start: it will take this batch too."""
    enqueue_drain_on_commit(BATCH_TASK, batch.pk, drain_key=drain_key(batch.org_id, batch.kind),
                            org_id=batch.org_id, kind=batch.kind)


def drain_successor(org_id: int, kind: str) -> None:
    """Queue the next drain of these batches now (a drain whose group leaves some), unless one is waiting."""
    enqueue_drain(BATCH_TASK, 0, drain_key=drain_key(org_id, kind), org_id=org_id, kind=kind)
