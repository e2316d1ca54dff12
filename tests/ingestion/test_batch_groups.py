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


def _pg_only():
    if connection.vendor != "postgresql":
        pytest.skip("groups are drained on PostgreSQL only")


@pytest.mark.django_db(transaction=True)
def test_a_batch_another_worker_holds_is_skipped_not_waited_for_and_none_is_left_behind(org, prices, settings):
    """Two workers drain distinct groups side by side: a worker's task for a batch that another worker's group
    holds returns at once (that group stores it), and a drain never passes over a batch it could take."""
    _pg_only()
    import psycopg

    settings.LLMOBSERVE_INGEST_GROUP_EVENTS = 7
    held, a, b, c = (_stored_batch(org, f"b{i}", 3) for i in range(4))
    db = connection.settings_dict
    other = psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"])
    try:
        other.execute("SELECT 1 FROM ingestion_rawbatch WHERE id = %s FOR UPDATE", [held.pk])  # another worker's
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")  # a regression fails here instead of hanging
        assert batch_process(batch_id=held.pk) == 0  # skipped at once: the holder stores it
        assert batch_process(batch_id=a.pk) == 6  # a and b: the held batch is passed over, not waited for
        assert batch_process(batch_id=b.pk) == 0  # already stored by a's group
        other.rollback()  # the holder failed: its worker queues the batch again, and it is stored then
        assert batch_process(batch_id=held.pk) == 6  # with c
        assert batch_process(batch_id=c.pk) == 0
    finally:
        other.close()
    assert RawBatch.objects.for_org(org).filter(processed_at__isnull=True).count() == 0
    assert TraceEvent.objects.for_org(org).count() == 12
    assert sum(HourlyRollup.objects.for_org(org).values_list("calls", flat=True)) == 12


def test_a_group_that_fails_queues_its_other_batches_again(org, prices, settings,
                                                           django_capture_on_commit_callbacks):
    """Their own tasks skipped them while the failing group held them: without being queued again they would
    wait for the sweeper. (Tasks run eagerly: tests/conftest.py's `_eager_tasks`.)"""
    _pg_only()
    first = _stored_batch(org, "first", 3)
    poison = RawBatch.objects.create(org=org, event_count=1, payload=events_encode([EventIn(
        event_id="bad", run_id="r", timestamp=timezone.now(), provider="openai", model="gpt-4o",
        customer_id="nul\x00")]))  # PostgreSQL text cannot hold a NUL: this batch fails any group it is in
    after = _stored_batch(org, "after", 3)

    with django_capture_on_commit_callbacks(execute=True):
        assert batch_process(batch_id=first.pk) == 3  # its group (first, poison, after) failed: stored alone
    after.refresh_from_db()
    poison.refresh_from_db()
    assert after.processed_at is not None  # queued again, and stored, without the sweeper
    assert poison.processed_at is None and poison.attempts == 1  # alone, failed, kept out of later groups
    assert TraceEvent.objects.for_org(org).count() == 6
