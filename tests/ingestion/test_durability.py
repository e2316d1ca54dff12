"""Durable first, then async: a broker outage never loses a batch; the sweeper catches up."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.models import RawBatch, TraceEvent
from ingestion.tasks import batches_sweep

pytestmark = pytest.mark.django_db


def test_broker_outage_still_answers_202_and_sweeper_processes_later(org, ingest_key, post_events, prices,
                                                                      dead_broker):
    response = post_events(ingest_key, [{"provider": "openai", "model": "gpt-4o", "input_tokens": 10,
                                         "event_id": "kept"}])
    assert response.status_code == 202 and response.json()["accepted"] == 1
    batch = RawBatch.objects.for_org(org).get()
    assert batch.processed_at is None and not TraceEvent.objects.for_org(org).exists()

    # The broker is back; the beat-scheduled sweeper picks up what is pending (older than its grace period).
    RawBatch.objects.for_org(org).update(received_at=timezone.now() - timedelta(minutes=2))
    assert batches_sweep() == 1
    assert TraceEvent.objects.for_org(org).get().event_id == "kept"
    assert RawBatch.objects.for_org(org).get().processed_at is not None
    assert batches_sweep() == 0  # nothing left, nothing counted twice


def test_sweeper_leaves_fresh_batches_to_the_queue(org, ingest_key, post_events, dead_broker):
    post_events(ingest_key, [{"span_type": "api"}])
    assert batches_sweep() == 0
    assert RawBatch.objects.for_org(org).get().processed_at is None
