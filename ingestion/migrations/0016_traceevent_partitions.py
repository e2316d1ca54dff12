"""Events partitioned by month on PostgreSQL; the idempotency key gains the timestamp (docs/scaling.md § 3).

PostgreSQL: the table is rebuilt as `PARTITION BY RANGE ("timestamp")`. Its index and constraint definitions are
read from the catalog (pg_get_indexdef / pg_get_constraintdef), so whatever index migrations ran before this one
carry over; the primary key becomes (id, timestamp) and the unique key (org_id, event_id, timestamp) — a
partitioned table's unique keys must hold the partition key. The id sequence continues where it was. A
partition per month that holds rows, this month and the next two, and a default partition; then the rows move.
The unique key is changed first on both backends (SQLite keeps the same key), so one model definition holds.

`OtlpResponseKey` keeps OTLP's one-call-per-provider-response exact now that the event key holds the timestamp
(filled here from the events already stored).
"""

from datetime import timezone as dt_timezone

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

OLD_KEY = models.UniqueConstraint(fields=["org", "event_id"], name="traceevent_unique_org_event")
NEW_KEY = models.UniqueConstraint(fields=["org", "event_id", "timestamp"], name="traceevent_unique_org_event_ts")
TABLE = "ingestion_traceevent"
OLD_TABLE = "ingestion_traceevent_unpartitioned"


def _rebuild(cursor, *, partitioned: bool) -> None:
    """Rebuild the events table partitioned by month (or, backwards, as one table) with its own indexes,
    constraints and id sequence as the catalog states them."""
    from ingestion.partitions import AHEAD_MONTHS, default_partition_create, month_add, month_start, partition_create

    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [TABLE])
    if cursor.fetchone()[0] == partitioned:
        return
    cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    # Indexes not backing a constraint, and the constraints, as the catalog states them today.
    cursor.execute("SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                   "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
                   "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) "
                   "ORDER BY c.relname", [TABLE])
    indexes = [(name, definition.replace(" ON ONLY ", " ON ", 1)) for name, definition in cursor.fetchall()]
    cursor.execute("SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = %s::regclass ORDER BY conname", [TABLE])
    constraints = cursor.fetchall()
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
    last_value, is_called = cursor.fetchone()
    cursor.execute("SELECT attidentity FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'", [TABLE])
    identity = cursor.fetchone()[0]

    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    for name, _, _ in constraints:
        cursor.execute(f'ALTER TABLE {OLD_TABLE} DROP CONSTRAINT "{name}"')
    if identity:
        cursor.execute(f"ALTER TABLE {OLD_TABLE} ALTER COLUMN id DROP IDENTITY")  # drops its sequence
    else:
        cursor.execute(f"ALTER TABLE {OLD_TABLE} ALTER COLUMN id DROP DEFAULT")
        cursor.execute(f"DROP SEQUENCE {sequence}")

    partition_by = ' PARTITION BY RANGE ("timestamp")' if partitioned else ""
    cursor.execute(f"CREATE TABLE {TABLE} (LIKE {OLD_TABLE} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS)"
                   f"{partition_by}")
    cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq AS bigint OWNED BY {TABLE}.id")
    cursor.execute(f"SELECT setval('{TABLE}_id_seq', %s, %s)", [last_value, is_called])
    cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")

    if partitioned:
        cursor.execute(f"SELECT DISTINCT date_trunc('month', \"timestamp\" AT TIME ZONE 'UTC') FROM {OLD_TABLE}")
        months = {month_start(m.replace(tzinfo=dt_timezone.utc)) for (m,) in cursor.fetchall()}
        current = month_start(timezone.now())
        months.update(month_add(current, n) for n in range(AHEAD_MONTHS + 1))
        for month in sorted(months):
            partition_create(cursor, month)
        default_partition_create(cursor)
    cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD_TABLE}")
    cursor.execute(f"DROP TABLE {OLD_TABLE}")  # with its partitions, backwards

    for name, kind, definition in constraints:
        if kind == "p":
            definition = 'PRIMARY KEY (id, "timestamp")' if partitioned else "PRIMARY KEY (id)"
        elif partitioned and kind in ("u", "x") and "timestamp" not in definition:
            raise RuntimeError(f"{name}: a unique key of a table partitioned on timestamp must include it")
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)  # "CREATE INDEX … ON public.ingestion_traceevent …": the new table


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=True)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=False)


def response_keys_fill(apps, schema_editor):
    OtlpResponseKey = apps.get_model("ingestion", "OtlpResponseKey")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {OtlpResponseKey._meta.db_table} (org_id, event_id, timestamp) "
                       f"SELECT org_id, event_id, min(timestamp) FROM {TABLE} WHERE event_id LIKE 'resp:%%' "
                       f"GROUP BY org_id, event_id")


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("accounts", "0003_org_event_retention"),
        ("ingestion", "0015_rawbatch_payload_lz4"),
    ]

    operations = [
        # Both backends: the key gains the timestamp (PostgreSQL's rebuild below copies it as it stands).
        migrations.RemoveConstraint(model_name="traceevent", name=OLD_KEY.name),
        migrations.AddConstraint(model_name="traceevent", constraint=NEW_KEY),
        migrations.RunPython(forwards, backwards),
        migrations.CreateModel(
            name="OtlpResponseKey",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("event_id", models.CharField(max_length=64)),
                ("timestamp", models.DateTimeField()),
                ("org", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                          to="accounts.organization")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("org", "event_id"), name="otlpresponsekey_unique")],
                "indexes": [models.Index(fields=["org", "timestamp"], name="otlpresponsekey_org_ts_idx")],
            },
        ),
        migrations.RunPython(response_keys_fill, migrations.RunPython.noop),
    ]
