"""A backed-up queue is drained in groups of up to LLMOBSERVE_INGEST_GROUP_EVENTS per transaction (PostgreSQL),
each event stored and counted once; raw payloads are lz4-compressed on PostgreSQL (migration 0015)."""

import pytest
from django.db import connection
from django.utils import timezone

from ingestion.models import HourlyRollup, RawBatch, TraceEvent
from ingestion.schema import EventIn, events_encode
from ingestion.services import batch_process

pytestmark = pytest.mark.django_db


def _stored_batch(org, prefix: str, n: int) -> RawBatch:
    events = [EventIn(event_id=f"{prefix}-{i}", run_id=f"run-{prefix}", timestamp=timezone.now(), provider="openai",
                      model="gpt-4o", input_tokens=1000, output_tokens=100) for i in range(n)]
    return RawBatch.objects.create(org=org, payload=events_encode(events), event_count=n)


def test_a_backed_up_queue_is_drained_up_to_the_group_size_each_event_once(org, prices, settings):
    settings.LLMOBSERVE_INGEST_GROUP_EVENTS = 7
    batches = [_stored_batch(org, f"b{i}", 3) for i in range(5)]

    first = batch_process(batch_id=batches[0].pk)

    pg = connection.vendor == "postgresql"
    assert first == (6 if pg else 3)  # PostgreSQL drains a second batch; a third would pass 7 events
    pending = RawBatch.objects.for_org(org).filter(processed_at__isnull=True).count()
    assert pending == (3 if pg else 4)
    for batch in batches:
        batch_process(batch_id=batch.pk)
    assert batch_process(batch_id=batches[0].pk) == 0  # a retried task changes nothing
    assert TraceEvent.objects.for_org(org).count() == 15
    assert sum(HourlyRollup.objects.for_org(org).values_list("calls", flat=True)) == 15


def test_raw_payloads_are_lz4_compressed_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL TOAST only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        if not cursor.fetchone()[0]:
            pytest.skip("this PostgreSQL was built without lz4")
        cursor.execute("SELECT attcompression FROM pg_attribute WHERE attrelid = 'ingestion_rawbatch'::regclass "
                       "AND attname = 'payload'")
        assert cursor.fetchone()[0] == "l"
