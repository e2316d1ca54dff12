"""A batch that fails processing is isolated: it never blocks its org, is retried with backoff, then quarantined.

The poison events here are ones validation would refuse today (a token count beyond 64 bits, a NUL on
PostgreSQL): they stand for a batch stored before a rule existed, or a database limit nobody foresaw.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.services import api_key_create
from ingestion.models import RawBatch, TraceEvent
from ingestion.schema import EventIn, events_encode
from ingestion.services import MAX_ATTEMPTS, batches_sweep

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

POISONS = {
    "tokens beyond 64 bits": {"input_tokens": 2**63},
    "NUL in a label": {"customer_id": "acme\x00corp"},  # PostgreSQL text cannot hold it
}


def _event(event_id: str, **fields) -> EventIn:
    fields = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, **fields}
    return EventIn(event_id=event_id, run_id=f"run-{event_id}", timestamp=timezone.now(), **fields)


def _stored_batch(org, events: list[EventIn]) -> RawBatch:
    """A batch as the request stores it (durably, before the 202), not yet processed."""
    return RawBatch.objects.create(org=org, payload=events_encode(events), event_count=len(events))


@pytest.fixture(params=list(POISONS))
def poison(request):
    if request.param == "NUL in a label" and connection.vendor != "postgresql":
        pytest.skip("SQLite stores a NUL; only PostgreSQL refuses it")
    return POISONS[request.param]


def _summary(api, read_key):
    return api(read_key).get("/v1/stats/summary", window="24h").json()


def test_a_failing_batch_never_blocks_the_orgs_later_batches(org, ingest_key, read_key, api, post_events, prices,
                                                             poison):
    _stored_batch(org, [_event("good-1"), _event("bad", **poison), _event("good-2")])
    later = [{"event_id": f"later-{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
              "output_tokens": 100} for i in range(3)]
    # On PostgreSQL the later batch's transaction drains the org's pending batches, the poison one too: that
    # group fails, the later batch is stored alone, and the poison batch is queued again at once, where its
    # good events are stored and the bad one recorded (SQLite processes each batch alone: it waits its turn).
    assert post_events(ingest_key, later).status_code == 202
    stored = set(TraceEvent.objects.for_org(org).values_list("event_id", flat=True))
    later_ids = {"later-0", "later-1", "later-2"}
    if connection.vendor == "postgresql":
        assert stored == later_ids | {"good-1", "good-2"}
        assert RawBatch.objects.for_org(org).get(event_count=3, processed_at__isnull=True).failed_events == 1
    else:
        assert stored == later_ids
    assert _summary(api, read_key)["calls"] == len(stored)


def test_valid_events_of_a_failing_batch_are_stored_then_it_is_retried_with_backoff_and_quarantined(
        org, read_key, api, prices, poison):
    batch = _stored_batch(org, [_event("good-1"), _event("bad", **poison), _event("good-2")])
    start = timezone.now() + timedelta(minutes=1)  # past the sweeper's grace period for a queued batch

    assert batches_sweep(now=start) == 2  # the good ones, each alone, once
    batch.refresh_from_db()
    assert batch.state == "pending" and batch.attempts == 1 and batch.failed_events == 1
    assert "1 of 3 events could not be stored" in batch.last_error and "event 1 (bad)" in batch.last_error
    assert batch.next_attempt_at == start + timedelta(minutes=1)
    assert batches_sweep(now=start + timedelta(seconds=59)) == 0  # backing off: not retried yet
    assert RawBatch.objects.for_org(org).get().attempts == 1

    now = start
    for attempt in range(2, MAX_ATTEMPTS + 1):
        now = RawBatch.objects.for_org(org).get().next_attempt_at
        assert batches_sweep(now=now) == 0  # retried: the good events are not stored or counted twice
        assert RawBatch.objects.for_org(org).get().attempts == attempt
    batch.refresh_from_db()
    assert batch.state == "quarantined" and batch.quarantined_at == now and batch.next_attempt_at is None
    assert batches_sweep(now=now + timedelta(days=1)) == 0
    assert RawBatch.objects.for_org(org).get().attempts == MAX_ATTEMPTS  # left alone until an operator acts

    summary = _summary(api, read_key)
    assert summary["calls"] == 2 and summary["cost_usd"] == "0.007"  # 2 × (1000 × $2.5 + 100 × $10) / 1M


def test_quarantine_is_counted_in_health_and_retried_from_the_admin(org, client, prices,
                                                                     django_capture_on_commit_callbacks):
    batch = _stored_batch(org, [_event("bad", input_tokens=2**63), _event("good")])
    now = timezone.now() + timedelta(minutes=1)
    for _ in range(MAX_ATTEMPTS):
        batches_sweep(now=now)
        now += timedelta(hours=1)
    assert RawBatch.objects.for_org(org).get().state == "quarantined"
    assert client.get("/health").json()["batches"] == {"pending": 0, "quarantined": 1}

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:ingestion_rawbatch_changelist"), {"state": "quarantined"})
    assert page.status_code == 200
    assert "1 of 2 events could not be stored" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:ingestion_rawbatch_changelist"),
                               {"action": "retry", "_selected_action": [batch.pk]}, follow=True)
    assert "1 batch(es) queued for processing again." in response.content.decode()
    batch.refresh_from_db()
    # Processed again at once (the event still cannot be stored): a fresh attempt budget, not quarantined.
    assert batch.state == "pending" and batch.attempts == 1 and batch.next_attempt_at is not None
    assert client.get("/health").json()["batches"] == {"pending": 1, "quarantined": 0}
    assert TraceEvent.objects.for_org(org).count() == 1  # the good event, once


def test_the_retry_action_is_refused_without_change_permission(org, client):
    batch = _stored_batch(org, [_event("bad", input_tokens=2**63)])
    RawBatch.objects.for_org(org).update(quarantined_at=timezone.now(), attempts=MAX_ATTEMPTS)
    viewer = UserFactory(is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_rawbatch"))
    client.force_login(viewer)
    client.post(reverse("admin:ingestion_rawbatch_changelist"), {"action": "retry", "_selected_action": [batch.pk]})
    assert RawBatch.objects.for_org(org).get().state == "quarantined"


def test_one_orgs_poison_does_not_touch_another_org(org, other_org, prices, post_events):
    _stored_batch(org, [_event("bad", input_tokens=2**63)])
    other_key = api_key_create(org=other_org, name="ingest", scope="ingest").raw_key
    assert post_events(other_key, [{"event_id": "x", "provider": "openai", "model": "gpt-4o"}]).status_code == 202
    assert TraceEvent.objects.for_org(other_org).count() == 1
