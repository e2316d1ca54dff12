"""Migration ingestion 0016 on existing data: PostgreSQL's events table becomes monthly partitions with every row,
the indexes an earlier migration (or an operator) added, its constraints and its id sequence; back and forth."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ingestion import partitions

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ingestion", "0015_rawbatch_payload_lz4")]
LATE = datetime(2026, 10, 31, 23, 40, 12, tzinfo=timezone.utc)  # a month's last hour


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [partitions.TABLE])
        return {name: d.replace(" ON ONLY ", " ON ") for name, d in cursor.fetchall()}


def test_0016_partitions_the_events_with_their_indexes_and_sequence_and_migrates_back():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("ingestion")
    apps = _migrate(BEFORE)
    try:
        org = apps.get_model("accounts", "Organization").objects.create(name="m", slug="m-0016")
        events = apps.get_model("ingestion", "TraceEvent").objects
        times = [LATE, LATE + timedelta(minutes=30), LATE - timedelta(days=200), datetime(2031, 1, 1, tzinfo=timezone.utc)]
        for i, at in enumerate(times):
            events.create(org_id=org.pk, event_id=f"e{i}", run_id="r", timestamp=at, provider="openai", model="m")
        last_id = events.order_by("-id").first().id
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # an index added by hand or by an earlier migration
                cursor.execute(f"CREATE INDEX traceevent_test_model_idx ON {partitions.TABLE} (org_id, model)")
            before = _indexes()

        _migrate(latest)
        TraceEvent = MigrationExecutor(connection).loader.project_state(latest).apps.get_model("ingestion", "TraceEvent")
        rows = sorted(TraceEvent.objects.filter(org_id=org.pk).values_list("event_id", "timestamp"))
        assert rows == [(f"e{i}", at) for i, at in enumerate(times)]
        new = TraceEvent.objects.create(org_id=org.pk, event_id="e0", run_id="r", timestamp=LATE + timedelta(seconds=1))
        assert new.id == last_id + 1  # the sequence continues; same id at another instant is another event
        if connection.vendor == "postgresql":
            assert partitions.is_partitioned()
            after = _indexes()
            assert after["traceevent_test_model_idx"] == before["traceevent_test_model_idx"]
            assert set(after) == set(before) - {"traceevent_unique_org_event"} | {"traceevent_unique_org_event_ts"}
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT tableoid::regclass::text, event_id FROM {partitions.TABLE} WHERE org_id = %s "
                               f"ORDER BY event_id, timestamp", [org.pk])
                assert cursor.fetchall() == [("ingestion_traceevent_p2026_10", "e0"), ("ingestion_traceevent_p2026_10", "e0"),
                                             ("ingestion_traceevent_p2026_11", "e1"),
                                             ("ingestion_traceevent_p2026_04", "e2"),
                                             ("ingestion_traceevent_p2031_01", "e3")]  # every month with rows
        TraceEvent.objects.filter(pk=new.pk).delete()

        _migrate(BEFORE)  # back: one plain table, same rows and indexes
        assert not partitions.is_partitioned()
        if connection.vendor == "postgresql":
            assert _indexes() == before
    finally:
        _migrate(latest)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX IF EXISTS traceevent_test_model_idx")
