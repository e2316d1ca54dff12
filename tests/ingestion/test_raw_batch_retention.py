"""A processed raw batch keeps no copy of the calls it carried: its payload is emptied in the transaction that stores
its events, so the raw copy never outlives the events' retention; a pending, retrying or quarantined batch keeps it
until it is processed. The rows themselves (what the staff console's ingest lag reads) go after RAW_BATCH_ROWS_KEEP,
in the daily prune. Time is pinned at a month's end, 23:40 UTC."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from ingestion.models import RawBatch, TraceEvent
from ingestion.retention import RAW_BATCH_ROWS_KEEP, events_prune
from ingestion.schema import EventIn, events_encode
from ingestion.services import MAX_ATTEMPTS, batches_sweep

from .otlp_export import chat, new_trace_id, protobuf

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 1, 31, 23, 40, tzinfo=timezone.utc)
SECRET = "cust-7f3a-private"


def _payloads() -> list[bytes]:
    return [bytes(p) for p in RawBatch.objects.unscoped().values_list("payload", flat=True)]


def test_a_processed_batch_keeps_no_copy_of_its_calls(org, ingest_key, post_events, client,
                                                      django_capture_on_commit_callbacks, prices):
    call = chat(new_trace_id(), start=NOW - timedelta(minutes=1), input_tokens=100, output_tokens=10,
                **{"enduser.id": SECRET})
    with time_machine.travel(NOW, tick=False):
        assert post_events(ingest_key, [{"event_id": "e1", "provider": "openai", "model": "gpt-4o",
                                         "input_tokens": 1000, "output_tokens": 200, "customer_id": SECRET,
                                         "metadata": {"ticket": "T-981"}}]).status_code == 202
        with django_capture_on_commit_callbacks(execute=True):
            response = client.generic("POST", "/v1/otlp/v1/traces", protobuf([call]),
                                      content_type="application/x-protobuf",
                                      headers={"Authorization": f"Bearer {ingest_key}"})
        assert response.status_code == 200
    # Both calls are stored, with their customer; every batch (events, spans, and on PostgreSQL the fold) is
    # processed and holds nothing of them.
    assert sorted(TraceEvent.objects.for_org(org).values_list("customer_id", flat=True)) == [SECRET, SECRET]
    kinds = {"events", "otlp", "fold"} if connection.vendor == "postgresql" else {"events", "otlp"}
    batches = RawBatch.objects.for_org(org)
    assert {b.kind for b in batches} == kinds and {b.state for b in batches} == {"processed"}
    assert _payloads() == [b""] * len(kinds)


def test_a_failing_batch_keeps_its_payload_through_its_retries_and_its_quarantine(org, prices):
    events = [EventIn(event_id=f"e{i}", run_id="r", provider="openai", model="gpt-4o", input_tokens=1000,
                      output_tokens=100, timestamp=NOW - timedelta(minutes=5), customer_id=SECRET) for i in range(3)]
    events[1].input_tokens = 2**63  # beyond 64 bits: stored before a rule refused it (test_poison_batches)
    payload = events_encode(events)
    batch = RawBatch.objects.create(org=org, payload=payload, event_count=3, received_at=NOW - timedelta(minutes=5))
    now = NOW
    for _ in range(MAX_ATTEMPTS):
        batches_sweep(now=now)
        batch.refresh_from_db()
        assert batch.state in ("pending", "quarantined")
        assert bytes(batch.payload) == payload  # all of it, to retry
        now = batch.next_attempt_at or now
    assert batch.state == "quarantined" and batch.attempts == MAX_ATTEMPTS
    assert sorted(TraceEvent.objects.for_org(org).values_list("event_id", flat=True)) == ["e0", "e2"]


def _batch(org, *, received: datetime, processed: bool = True, quarantined: bool = False) -> RawBatch:
    return RawBatch.objects.create(org=org, payload=b"" if processed else b"[]", event_count=1, received_at=received,
                                   processed_at=received + timedelta(seconds=1) if processed else None,
                                   quarantined_at=received + timedelta(minutes=15) if quarantined else None)


def test_the_daily_prune_deletes_processed_batches_after_90_days_and_never_an_unprocessed_one(org, other_org, capsys):
    cutoff = NOW - RAW_BATCH_ROWS_KEEP
    gone = [_batch(org, received=cutoff - timedelta(days=40)), _batch(other_org, received=cutoff - timedelta(seconds=1))]
    kept = [_batch(org, received=cutoff + timedelta(seconds=1)),  # the console's 90-day window still reads it
            _batch(org, received=cutoff - timedelta(days=1), processed=False),  # its events are not stored yet
            _batch(other_org, received=cutoff - timedelta(days=5), processed=False, quarantined=True)]

    call_command("events_prune", "--dry-run", "--now", NOW.isoformat())
    assert "would delete 2 processed raw batches received more than 90 days ago" in capsys.readouterr().out
    assert RawBatch.objects.unscoped().count() == 5

    assert events_prune(now=NOW, chunk=1).raw_batches_deleted == 2  # one per transaction
    assert set(RawBatch.objects.unscoped().values_list("pk", flat=True)) == {b.pk for b in kept}
    assert events_prune(now=NOW).raw_batches_deleted == 0
    assert not RawBatch.objects.unscoped().filter(pk__in=[g.pk for g in gone]).exists()


def test_the_migration_empties_the_payloads_of_batches_processed_before_it(org, monkeypatch):
    migration = importlib.import_module("ingestion.migrations.0023_processed_raw_batch_payloads_cleared")
    monkeypatch.setattr(migration, "CHUNK", 2)  # several chunks
    done = [RawBatch.objects.create(org=org, payload=b"payload %d" % i, event_count=1, processed_at=NOW)
            for i in range(5)]
    pending = RawBatch.objects.create(org=org, payload=b"still to process", event_count=1)

    migration.clear_processed_payloads(apps, SimpleNamespace(connection=connection))
    migration.clear_processed_payloads(apps, SimpleNamespace(connection=connection))  # again: nothing left

    assert [bytes(RawBatch.objects.unscoped().get(pk=b.pk).payload) for b in done] == [b""] * 5
    assert bytes(RawBatch.objects.unscoped().get(pk=pending.pk).payload) == b"still to process"
