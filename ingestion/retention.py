"""Raw-event retention (docs/self-hosting.md § Retention): events older than their org's retention are removed;
rollups, run summaries, facets and insights are kept, so old windows keep their totals.

PostgreSQL drops whole monthly partitions that end before every org's cutoff (no row-by-row delete, no bloat),
then deletes per org, in chunks, the rows older than its cutoff in the partitions still kept (and in the
default partition). SQLite deletes in chunks. Each org's `events_pruned_before` is set to its cutoff before any
of its rows go, so the read side can say which runs have calls past retention.

The requests' raw batches hold no calls once processed (their payload is emptied then); their rows go after
RAW_BATCH_ROWS_KEEP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from accounts.models import Organization
from accounts.services import org_update

from . import partitions
from .models import RawBatch, TraceEvent

CHUNK = 5000  # rows per DELETE: short transactions, bounded locks
# Processed raw batches: their payload is emptied when they are processed (services.PROCESSED_PAYLOAD); the rest of
# the row (org, kind, when received and processed, how many events) feeds the staff console's ingest lag over its
# longest window (ops.selectors.WINDOWS), then goes.
RAW_BATCH_ROWS_KEEP = timedelta(days=90)


def retention_cutoff(*, org: Organization, now: datetime) -> datetime:
    """Raw events of `org` before this instant are past retention."""
    return now - timedelta(days=org.retention_days)


@dataclass
class PruneReport:
    dry_run: bool
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[tuple[str, int]] = field(default_factory=list)  # (name, rows in it)
    rows_deleted: list[tuple[str, datetime, int]] = field(default_factory=list)  # (org slug, cutoff, rows)
    raw_batches_deleted: int = 0  # processed raw batches received before RAW_BATCH_ROWS_KEEP

    def lines(self) -> list[str]:
        verb = "would " if self.dry_run else ""
        out = [f"{verb}create partition {name}" for name in self.partitions_created]
        out += [f"{verb}drop partition {name} ({rows} events)" for name, rows in self.partitions_dropped]
        out += [f"org {slug}: {verb}delete {rows} events before {cutoff.isoformat()}"
                for slug, cutoff, rows in self.rows_deleted if rows]
        if self.raw_batches_deleted:
            out.append(f"{verb}delete {self.raw_batches_deleted} processed raw batches received more than "
                       f"{RAW_BATCH_ROWS_KEEP.days} days ago")
        total = sum(rows for _, rows in self.partitions_dropped) + sum(rows for _, _, rows in self.rows_deleted)
        out.append(f"{'dry run: ' if self.dry_run else ''}{total} events past retention "
                   f"{'found' if self.dry_run else 'removed'}")
        return out


def events_prune(*, now: datetime, dry_run: bool = False, chunk: int = CHUNK) -> PruneReport:
    """Enforce every org's retention at `now` (the daily beat task and `manage.py events_prune`)."""
    report = PruneReport(dry_run=dry_run)
    old_batches = raw_batches_past_keep(now=now)
    report.raw_batches_deleted = old_batches.count() if dry_run else _delete_chunked(old_batches, chunk=chunk)
    orgs = list(Organization.objects.order_by("pk"))
    if not orgs:
        return report
    cutoffs = {org.pk: retention_cutoff(org=org, now=now) for org in orgs}
    if partitions.is_partitioned():
        report.partitions_created = _partitions_ahead(now=now, dry_run=dry_run)
        report.partitions_dropped = _partitions_drop(before=min(cutoffs.values()), dry_run=dry_run)
    in_dropped = Q()  # a dry run: rows of the months that would be dropped are counted there, not again per org
    for name, _ in report.partitions_dropped if dry_run else ():
        start = partitions.partition_month(name)
        in_dropped |= Q(timestamp__gte=start, timestamp__lt=partitions.month_add(start, 1))
    for org in orgs:
        cutoff = cutoffs[org.pk]
        old = TraceEvent.objects.for_org(org).filter(timestamp__lt=cutoff)
        if dry_run:
            report.rows_deleted.append((org.slug, cutoff, old.exclude(in_dropped).count() if in_dropped else old.count()))
            continue
        if org.events_pruned_before is None or org.events_pruned_before < cutoff:
            org_update(org=org, events_pruned_before=cutoff)
        report.rows_deleted.append((org.slug, cutoff, _delete_chunked(old, chunk=chunk)))
    return report


def _partitions_ahead(*, now: datetime, dry_run: bool) -> list[str]:
    if not dry_run:
        return partitions.event_partitions_ensure(now=now)
    with connection.cursor() as cursor:
        existing = {p.name for p in partitions.partitions_list(cursor)}
    start = partitions.month_start(now)
    names = [partitions.partition_name(partitions.month_add(start, n)) for n in range(partitions.AHEAD_MONTHS + 1)]
    return [name for name in names if name not in existing]


def _partitions_drop(*, before: datetime, dry_run: bool) -> list[tuple[str, int]]:
    """Months that end at or before `before` (the earliest cutoff of all orgs): dropped whole."""
    dropped = []
    with connection.cursor() as cursor:
        for part in partitions.partitions_list(cursor):
            if part.end is None or part.end > before:
                continue
            cursor.execute(f"SELECT count(*) FROM {part.name}")  # noqa: S608 - a catalog name
            rows = cursor.fetchone()[0]
            if not dry_run:
                with transaction.atomic():
                    # Deferred FK checks of rows inserted earlier in an enclosing transaction would block the DROP.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {part.name}")
                    cursor.execute(f"DROP TABLE {part.name}")
            dropped.append((part.name, rows))
    return dropped


def raw_batches_past_keep(*, now: datetime) -> QuerySet[RawBatch]:
    """Every org's processed raw batches received before RAW_BATCH_ROWS_KEEP, oldest first (by primary key). With no
    index on their arrival, a day with none that old reads the table once: 53 ms for a million emptied rows, against
    an index's 21 MB a million rows and a write per processed batch (bench/raw_batch_prune.py)."""
    return RawBatch.objects.unscoped().filter(received_at__lt=now - RAW_BATCH_ROWS_KEEP,
                                              processed_at__isnull=False).order_by("pk")


def _delete_chunked(qs, *, chunk: int) -> int:
    """Delete the rows of `qs` a chunk at a time, each chunk in its own transaction."""
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(qs.values_list("pk", flat=True)[:chunk])
            if not pks:
                return deleted
            deleted += qs.filter(pk__in=pks).delete()[0]
