"""PostgreSQL: the events table is range-partitioned by month on `timestamp` (migration 0016).

One partition per UTC month, named `ingestion_traceevent_pYYYY_MM`, created ahead by beat (this month and the
next two) and by `manage.py events_prune`; a default partition catches what falls outside them (a far-future
or far-past timestamp), and a month created later takes its rows out of the default. Retention drops whole
months (`ingestion.retention`). On other backends (SQLite) the table is one plain table and these are no-ops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.db import connection, transaction

TABLE = "ingestion_traceevent"
DEFAULT_PARTITION = f"{TABLE}_default"
AHEAD_MONTHS = 2  # besides the current month
_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})_(\d{{2}})$")


def month_start(at: datetime) -> datetime:
    """The first instant of `at`'s UTC month."""
    at = at.astimezone(dt_timezone.utc)
    return datetime(at.year, at.month, 1, tzinfo=dt_timezone.utc)


def month_add(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=dt_timezone.utc)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month.year:04d}_{month.month:02d}"


def partition_month(name: str) -> datetime:
    """The month a partition named by `partition_name` holds."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a monthly partition of {TABLE}")
    return datetime(int(match[1]), int(match[2]), 1, tzinfo=dt_timezone.utc)


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  # None: the default partition
    end: datetime | None


def is_partitioned() -> bool:
    """Is the events table partitioned here? (PostgreSQL after migration 0016.)"""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [TABLE])
        return cursor.fetchone()[0]


def partitions_list(cursor) -> list[Partition]:
    """The events table's partitions, months oldest first, then the default one."""
    cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                   "WHERE i.inhparent = to_regclass(%s)", [TABLE])
    months, default = [], []
    for (name,) in cursor.fetchall():
        if _NAME.match(name):
            start = partition_month(name)
            months.append(Partition(name, start, month_add(start, 1)))
        elif name == DEFAULT_PARTITION:
            default.append(Partition(name, None, None))
    return sorted(months, key=lambda p: p.start) + default


def partition_create(cursor, month: datetime) -> bool:
    """Create `month`'s partition if missing; rows of that month waiting in the default partition move into it.

    Runs in the caller's transaction (the default partition is detached and re-attached around the move, so
    concurrent inserts wait rather than fail). Returns whether a partition was created.
    """
    month = month_start(month)
    name = partition_name(month)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        return False
    start, end = month, month_add(month, 1)
    bounds = "FOR VALUES FROM (%s) TO (%s)"
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [DEFAULT_PARTITION])
    has_default = cursor.fetchone()[0]
    waiting = False
    if has_default:
        cursor.execute(f'SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE "timestamp" >= %s AND "timestamp" < %s)',
                       [start, end])
        waiting = cursor.fetchone()[0]
    if not waiting:
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bounds}", [start, end])
        return True
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # pending deferred FK checks would block the DETACH
    cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {DEFAULT_PARTITION}")
    cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bounds}", [start, end])
    cursor.execute(f'WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE "timestamp" >= %s AND "timestamp" < %s '
                   f"RETURNING *) INSERT INTO {name} SELECT * FROM moved", [start, end])
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
    return True


def default_partition_create(cursor) -> None:
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")


def event_partitions_ensure(*, now: datetime, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Beat and events_prune: the partitions of this month and the next `ahead` months exist; the names created."""
    if not is_partitioned():
        return []
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        for offset in range(ahead + 1):
            month = month_add(month_start(now), offset)
            if partition_create(cursor, month):
                created.append(partition_name(month))
    return created
