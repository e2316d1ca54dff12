"""Migration ingestion 0017 on existing rollup rows: PostgreSQL's jsonb histograms become packed numerics holding
the same counts, and back again to the very same maps; SQLite's JSON maps stay as they are."""

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ingestion import histograms
from ingestion.models import AgentHourlyRollup, SectionDailyRollup
from ingestion.rollups import sqlite_functions_register

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ingestion", "0016_traceevent_partitions")]
AFTER = [("ingestion", "0017_packed_histograms")]
HOUR = datetime(2026, 10, 31, 23, tzinfo=timezone.utc)
MAPS = [  # (latency_hist, ttft_hist) of one row each: edges, a dense row, the largest count a bucket holds
    ({"0": 3, "1": 1, str(histograms.OVERFLOW): 2}, None),
    ({str(i): i * 7 + 1 for i in range(0, histograms.SIZE, 2)}, {"40": 5, "41": 6}),
    ({"151": 10 ** histograms.WIDTH - 1}, {"0": 1}),  # an odd bucket: the sum over the rows stays < 10**WIDTH
    (None, None),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _column_type(table: str, column: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT data_type FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
                           [table, column])
            return cursor.fetchone()[0]
        return "json text"


def test_0017_packs_the_histograms_and_unpacks_them_back_unchanged():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("ingestion")
    apps = _migrate(BEFORE)
    try:
        org = apps.get_model("accounts", "Organization").objects.create(name="m", slug="m-0017")
        for name in ("AgentHourlyRollup", "SectionDailyRollup"):
            model = apps.get_model("ingestion", name)
            period = {"hour": HOUR} if name.endswith("HourlyRollup") else {"day": HOUR.replace(hour=0)}
            for i, (latency, ttft) in enumerate(MAPS):
                model.objects.create(org_id=org.pk, dims_hash=f"h{i}", calls=1, latency_hist=latency,
                                     ttft_hist=ttft, http_codes={"429": i + 1}, **period)

        _migrate(AFTER)
        if connection.vendor == "sqlite":
            sqlite_functions_register()  # CountsSum's aggregate, on this connection
        for model in (AgentHourlyRollup, SectionDailyRollup):
            table = model._meta.db_table
            assert _column_type(table, "latency_hist") in ("numeric", "json text")
            rows = model.objects.unscoped().filter(org_id=org.pk).order_by("dims_hash")
            assert [(r.latency_hist, r.ttft_hist, r.http_codes) for r in rows] == \
                [(latency, ttft, {"429": i + 1}) for i, (latency, ttft) in enumerate(MAPS)]
            merged = model.objects.unscoped().filter(org_id=org.pk).aggregate(
                h=histograms.CountsSum("latency_hist"), t=histograms.CountsSum("ttft_hist"))
            assert histograms.dense(merged["h"]) == histograms.dense(histograms.counts_merge(*(m for m, _ in MAPS)))
            assert histograms.dense(merged["t"]) == histograms.dense(histograms.counts_merge(*(t for _, t in MAPS)))

        apps = _migrate(BEFORE)
        for name in ("AgentHourlyRollup", "SectionDailyRollup"):
            model = apps.get_model("ingestion", name)
            assert _column_type(model._meta.db_table, "ttft_hist") in ("jsonb", "json text")
            rows = model.objects.filter(org_id=org.pk).order_by("dims_hash")
            assert [(r.latency_hist, r.ttft_hist) for r in rows] == MAPS
    finally:
        _migrate(latest)
