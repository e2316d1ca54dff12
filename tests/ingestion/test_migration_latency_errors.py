"""Migration ingestion 0011 on existing data: events get their histogram bucket indexes and the new section
tables are filled from the fine-grain rollups (cost by section stays right before any rebuild)."""

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ingestion.histograms import bucket_of

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ingestion", "0010_otlp")]
HOUR = datetime(2026, 10, 31, 23, 0, tzinfo=timezone.utc)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_0011_backfills_buckets_and_section_rollups():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("ingestion")
    apps = _migrate(BEFORE)
    try:
        org = apps.get_model("accounts", "Organization").objects.create(name="m", slug="m-0011")
        events = apps.get_model("ingestion", "TraceEvent").objects
        events.create(org_id=org.pk, event_id="a", run_id="r", timestamp=HOUR, latency_ms=250.0, ttft_ms=40.0)
        events.create(org_id=org.pk, event_id="b", run_id="r", timestamp=HOUR)
        fine = apps.get_model("ingestion", "HourlyRollup").objects
        for key, model, cost in (("k1", "gpt-4o", 7), ("k2", "gpt-4o-mini", 5)):
            fine.create(org_id=org.pk, hour=HOUR, dims_hash=key, section_path="agent:a/tool:x", model=model,
                        calls=2, errors=1, cost_pico=cost)

        apps = _migrate(latest)
        stored = {e.event_id: (e.latency_bucket, e.ttft_bucket)
                  for e in apps.get_model("ingestion", "TraceEvent").objects.filter(org_id=org.pk)}
        assert stored == {"a": (bucket_of(250.0), bucket_of(40.0)), "b": (None, None)}
        section = apps.get_model("ingestion", "SectionHourlyRollup").objects.get(org_id=org.pk)
        assert (section.section_path, section.calls, section.errors, section.cost_pico) == ("agent:a/tool:x", 4, 2, 12)
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
