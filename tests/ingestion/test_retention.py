"""Raw-event retention and (PostgreSQL) monthly partitions: events past their org's retention are pruned while
the rollups keep old windows' totals and run summaries stay; a re-sent event still lands once under the
(org, event_id, timestamp) key; out-of-range timestamps land in the default partition and move when their
month is created. Time is pinned at month ends, 23:40 UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from accounts.services import org_update
from ingestion import partitions
from ingestion.models import HourlyRollup, RunSummary, TraceEvent
from ingestion.retention import events_prune

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 1, 31, 23, 40, tzinfo=timezone.utc)  # a month end, late in the UTC day
OLD = NOW - timedelta(days=120)  # 2026-10-03 23:40
RECENT = NOW - timedelta(days=10)
pg_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's")


def ev(event_id: str, at: datetime, **fields):
    base = {"event_id": event_id, "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
            "output_tokens": 200, "timestamp": at.isoformat().replace("+00:00", "Z")}
    base.update(fields)
    return base


def day_of(at: datetime) -> str:
    return at.date().isoformat()


def stored(org) -> set[str]:
    return set(TraceEvent.objects.for_org(org).values_list("event_id", flat=True))


def totals(api, key, at: datetime) -> tuple[dict, list]:
    since, until = day_of(at) + "T00:00:00Z", day_of(at + timedelta(days=1)) + "T00:00:00Z"
    summary = api(key).get("/v1/stats/summary", since=since, until=until).json()
    series = api(key).get("/v1/stats/timeseries", since=since, until=until, interval="day").json()["buckets"]
    return summary, series


def test_a_120_day_old_event_is_pruned_while_its_days_totals_and_run_summary_remain(
        org, ingest_key, read_key, post_events, api, prices, client, member):
    with time_machine.travel(NOW, tick=False):
        client.force_login(member)  # a session of the pinned day
        batch = [ev("old-1", OLD, run_id="old-run"), ev("old-2", OLD + timedelta(seconds=3), run_id="old-run"),
                 ev("new-1", RECENT, run_id="new-run")]
        assert post_events(ingest_key, batch).status_code == 202
        assert post_events(ingest_key, [ev("old-1", OLD, run_id="old-run")]).status_code == 202  # re-sent
        assert stored(org) == {"old-1", "old-2", "new-1"}
        old_hour = OLD.replace(minute=0, second=0)
        assert HourlyRollup.objects.for_org(org).filter(hour=old_hour).aggregate(n=Sum("calls"))["n"] == 2
        before = totals(api, read_key, OLD)
        assert before[0]["calls"] == 2 and before[1][0]["values"]["openai"] == before[0]["cost_usd"]

        report = events_prune(now=NOW)

        assert stored(org) == {"new-1"}
        assert ("old-2" not in stored(org)) and report.rows_deleted[0][2] + sum(
            n for _, n in report.partitions_dropped) == 2
        assert totals(api, read_key, OLD) == before  # from the rollups
        old_run = api(read_key).get("/v1/runs/old-run").json()
        assert old_run["calls"] == 2 and old_run["cost_usd"] == before[0]["cost_usd"]
        assert old_run["calls_past_retention"] is True and old_run["events"] == []
        new_run = api(read_key).get("/v1/runs/new-run").json()
        assert new_run["calls_past_retention"] is False and len(new_run["events"]) == 1
        page = client.get(f"/o/{org.slug}/runs/old-run/")
        assert page.status_code == 200 and b'data-testid="run-past-retention"' in page.content
        assert b"run-past-retention" not in client.get(f"/o/{org.slug}/runs/new-run/").content
        # Pruning twice changes nothing.
        assert events_prune(now=NOW).rows_deleted[0][2] == 0
        assert totals(api, read_key, OLD) == before


def test_a_re_sent_event_lands_once_and_folds_once_and_a_new_timestamp_is_a_new_event(
        org, ingest_key, post_events, prices):
    at = datetime(2026, 11, 30, 23, 40, tzinfo=timezone.utc)
    with time_machine.travel(at + timedelta(minutes=5), tick=False):
        for _ in range(3):
            post_events(ingest_key, [ev("same", at, run_id="r")])
        assert TraceEvent.objects.for_org(org).count() == 1
        assert RunSummary.objects.for_org(org).get(run_id="r").calls == 1
        assert HourlyRollup.objects.for_org(org).aggregate(n=Sum("calls"))["n"] == 1
        # The key is (org, event_id, timestamp): the same id at another instant is another call.
        post_events(ingest_key, [ev("same", at + timedelta(minutes=1), run_id="r")])
        assert TraceEvent.objects.for_org(org).count() == 2
        assert HourlyRollup.objects.for_org(org).aggregate(n=Sum("calls"))["n"] == 2


def test_an_event_re_sent_without_a_timestamp_lands_once_even_across_a_month_end(
        org, ingest_key, post_events, prices):
    """Without a timestamp the server stamps the request's time; a retry minutes later, in the next month (another
    partition on PostgreSQL), takes the first stamp, so the key still holds."""
    first = datetime(2026, 11, 30, 23, 40, tzinfo=timezone.utc)
    bare = {"event_id": "no-ts", "run_id": "r", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
            "output_tokens": 200}
    for at in (first, first + timedelta(minutes=1), first + timedelta(minutes=25)):
        with time_machine.travel(at, tick=False):
            assert post_events(ingest_key, [bare, {**bare, "event_id": f"other-{at.minute}", "run_id": f"o-{at.minute}"}]).status_code == 202
    rows = TraceEvent.objects.for_org(org).filter(event_id="no-ts")
    assert list(rows.values_list("timestamp", flat=True)) == [first]
    assert TraceEvent.objects.for_org(org).count() == 4  # no-ts once, and the three distinct others
    assert RunSummary.objects.for_org(org).get(run_id="r").calls == 1
    assert HourlyRollup.objects.for_org(org).aggregate(n=Sum("calls"))["n"] == 4


def test_retention_is_per_org_and_the_dry_run_changes_nothing(org, other_org, ingest_key, post_events, prices):
    from accounts.services import api_key_create

    other_key = api_key_create(org=other_org, name="i", scope="ingest").raw_key
    org_update(org=other_org, event_retention_days=400)
    with time_machine.travel(NOW, tick=False):
        post_events(ingest_key, [ev("a", OLD)])
        post_events(other_key, [ev("b", OLD), ev("c", NOW - timedelta(days=500))])
        dry = events_prune(now=NOW, dry_run=True)
        assert stored(org) == {"a"} and stored(other_org) == {"b", "c"}
        assert dict((slug, n) for slug, _, n in dry.rows_deleted) == {org.slug: 1, other_org.slug: 1}
        org.refresh_from_db()
        assert org.events_pruned_before is None
        events_prune(now=NOW)
        assert stored(org) == set() and stored(other_org) == {"b"}
        org.refresh_from_db()
        other_org.refresh_from_db()
        assert org.events_pruned_before == NOW - timedelta(days=90)
        assert other_org.events_pruned_before == NOW - timedelta(days=400)


def test_events_prune_command_prints_what_it_would_do_and_does_it(org, ingest_key, post_events, prices, capsys):
    with time_machine.travel(NOW, tick=False):
        post_events(ingest_key, [ev("a", OLD), ev("b", RECENT)])
    call_command("events_prune", "--dry-run", "--now", NOW.isoformat())
    out = capsys.readouterr().out
    assert "dry run: 1 events past retention found" in out
    assert f"org {org.slug}: would delete 1 events before" in out or "(1 events)" in out  # a row, or a month
    assert stored(org) == {"a", "b"}
    call_command("events_prune", "--now", "2027-01-31T23:40:00Z")
    assert "1 events past retention removed" in capsys.readouterr().out
    assert stored(org) == {"b"}


def test_far_past_and_next_month_timestamps_are_stored(org, ingest_key, post_events, prices):
    with time_machine.travel(NOW, tick=False):
        partitions.event_partitions_ensure(now=NOW)
        far_past = datetime(2019, 3, 1, 12, tzinfo=timezone.utc)
        next_month = NOW + timedelta(minutes=30)  # 2027-02-01 00:10: the next month's partition
        post_events(ingest_key, [ev("past", far_past), ev("next", next_month)])
        assert stored(org) == {"past", "next"}
        if connection.vendor == "postgresql":
            where = dict(TraceEvent.objects.for_org(org).extra(select={"part": "tableoid::regclass::text"})
                         .values_list("event_id", "part"))
            assert where == {"past": partitions.DEFAULT_PARTITION, "next": "ingestion_traceevent_p2027_02"}


@pg_only
def test_a_month_created_later_takes_its_rows_from_the_default_partition_and_is_dropped_whole(
        org, ingest_key, post_events, prices):
    with time_machine.travel(NOW, tick=False):
        with connection.cursor() as cursor:  # (another test's migration may have left October's partition)
            cursor.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(partitions.month_start(OLD))}")
        post_events(ingest_key, [ev("oct", OLD), ev("jan", RECENT)])
        with connection.cursor() as cursor:
            assert partitions.partition_create(cursor, OLD)
            assert not partitions.partition_create(cursor, OLD)  # idempotent
            cursor.execute(f"SELECT count(*) FROM {partitions.partition_name(partitions.month_start(OLD))}")
            assert cursor.fetchone()[0] == 1
            cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT_PARTITION}")
            assert cursor.fetchone()[0] == 0
        dry = events_prune(now=NOW, dry_run=True)
        # (other, empty months may be left by the migration test)
        assert [p for p in dry.partitions_dropped if p[1]] == [("ingestion_traceevent_p2026_10", 1)]
        assert dry.rows_deleted == [(org.slug, NOW - timedelta(days=90), 0)]  # counted once, in its month
        assert stored(org) == {"oct", "jan"}
        report = events_prune(now=NOW)
        assert [p for p in report.partitions_dropped if p[1]] == [("ingestion_traceevent_p2026_10", 1)]
        with connection.cursor() as cursor:
            names = {p.name for p in partitions.partitions_list(cursor)}
        assert "ingestion_traceevent_p2026_10" not in names
        assert {"ingestion_traceevent_p2027_01", "ingestion_traceevent_p2027_02",
                "ingestion_traceevent_p2027_03", partitions.DEFAULT_PARTITION} <= names
        assert stored(org) == {"jan"}


@pg_only
def test_the_table_is_partitioned_with_the_timestamp_in_every_key():
    with connection.cursor() as cursor:
        assert partitions.is_partitioned()
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                       "AND contype IN ('p', 'u') ORDER BY contype", [partitions.TABLE])
        assert [d for (d,) in cursor.fetchall()] == ['PRIMARY KEY (id, "timestamp")',
                                                     'UNIQUE (org_id, event_id, "timestamp")']
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [partitions.TABLE])
        assert cursor.fetchone()[0] == "public.ingestion_traceevent_id_seq"
