"""Migration ingestion 0014 on existing data: the endpoint grain's tables are filled from the events, exactly
as `manage.py rebuild_rollups` refolds them (sums, maxima, histograms and HTTP code maps)."""

from datetime import datetime, timezone

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ingestion.models import EndpointDailyRollup, EndpointHourlyRollup

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ingestion", "0013_price_discounts")]
LATE = datetime(2026, 10, 31, 23, 40, 12, 250000, tzinfo=timezone.utc)  # a month's last hour
EARLY = datetime(2026, 10, 31, 0, 5, tzinfo=timezone.utc)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _rows(model) -> list[tuple]:
    fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
    return sorted(tuple(r) for r in model.objects.unscoped().values_list(*fields))


def test_0014_fills_the_endpoint_rollups_from_events_as_a_rebuild_does():
    from ingestion.histograms import bucket_of

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("ingestion")
    apps = _migrate(BEFORE)
    try:
        org = apps.get_model("accounts", "Organization").objects.create(name="m", slug="m-0014")
        events = apps.get_model("ingestion", "TraceEvent").objects
        chat = "/v1/chat/completions"
        for i, (at, provider, endpoint, status, http, latency, ttft, cost) in enumerate([
            (LATE, "openai", chat, "ok", 200, 120.0, 30.0, 7),
            (LATE, "openai", chat, "rate_limited", 429, 80.0, None, None),
            (EARLY, "openai", chat, "error", 500, 900.0, None, 5),
            (LATE, "azure", chat, "ok", None, None, None, 3),
            (LATE, "openai", "", "timeout", None, 60000.0, None, 0),
        ]):
            events.create(org_id=org.pk, event_id=f"e{i}", run_id="r", timestamp=at, provider=provider,
                          endpoint=endpoint, status=status, http_status=http, latency_ms=latency, ttft_ms=ttft,
                          latency_bucket=bucket_of(latency), ttft_bucket=bucket_of(ttft), cost_pico=cost)

        _migrate(latest)
        migrated = {m: _rows(m) for m in (EndpointHourlyRollup, EndpointDailyRollup)}
        assert len(migrated[EndpointHourlyRollup]) == 4 and len(migrated[EndpointDailyRollup]) == 3
        day = EndpointDailyRollup.objects.unscoped().get(org_id=org.pk, provider="openai", endpoint=chat)
        assert (day.calls, day.errors, day.status_rate_limited, day.status_error, day.http_4xx, day.http_5xx,
                day.failed_cost_pico, day.latency_ms_max, day.ttft_calls) == (3, 2, 1, 1, 1, 1, 5, 900.0, 1)
        call_command("rebuild_rollups", stdout=open("/dev/null", "w"))
        assert {m: _rows(m) for m in migrated} == migrated
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
