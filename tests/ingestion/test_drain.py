"""One queued drain per org and kind of batch, not one task per request (accounts.tasking § drains)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import redis
from django.conf import settings

from ingestion import services
from ingestion.models import RawBatch, TraceEvent

from .otlp_export import chat, new_trace_id, protobuf
from .test_otlp_ingest import post_otlp  # noqa: F401 - the fixture
from .test_worker_e2e import ROOT, _database_url, _wait_for


def _events(prefix: str, n: int) -> list[dict]:
    return [{"event_id": f"{prefix}-{i}", "run_id": f"run-{prefix}", "provider": "openai", "model": "gpt-4o",
             "input_tokens": 100, "output_tokens": 10, "section_path": "agent:bot"} for i in range(n)]


@pytest.mark.django_db
def test_a_drain_whose_batch_is_done_takes_the_orgs_oldest_pending_one(org, ingest_key, post_events, prices,
                                                                      dead_broker, settings):
    """A request that found a drain waiting queued nothing: when that drain starts and its own batch was taken
    meanwhile, it processes the org's pending batches of its kind all the same."""
    post_events(ingest_key, _events("a", 3))
    post_events(ingest_key, _events("b", 2))  # the broker is down: both batches pending, nothing queued
    first, second = RawBatch.objects.for_org(org).order_by("pk").values_list("pk", flat=True)
    settings.LLMOBSERVE_INGEST_GROUP_EVENTS = 3  # PostgreSQL: a group of the first batch alone
    services.batch_process(batch_id=first)
    assert not RawBatch.objects.for_org(org).get(pk=second).processed_at

    services.batch_process(batch_id=first, org_id=org.pk, kind="events")

    assert RawBatch.objects.for_org(org).get(pk=second).processed_at
    assert TraceEvent.objects.for_org(org).count() == 5
    assert services.batch_process(batch_id=first, org_id=org.pk, kind="events") == 0  # nothing left


# --- a real worker on Redis -------------------------------------------------------------------------

def _broker() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _queued_batch_tasks(broker: redis.Redis) -> int:
    """batch_process messages waiting in the broker's queue (the `prices` fixture queues re-pricing too)."""
    import json

    return sum(json.loads(m)["headers"]["task"] == "ingestion.tasks.batch_process" for m in broker.lrange("celery", 0, -1))


@pytest.fixture
def idle_queue():
    """A PostgreSQL + Redis run with no worker yet, tasks queued for real: the broker's queue and drain flags
    start empty."""
    if not settings.REDIS_URL or not _database_url():
        if os.environ.get("LLMOBSERVE_CI") and settings.REDIS_URL:
            pytest.fail("CI must run the real-worker tests on PostgreSQL + Redis")
        pytest.skip("needs REDIS_URL and a PostgreSQL DATABASE_URL (the PostgreSQL + Redis CI run has both)")
    from celery import current_app

    from accounts import tasking

    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = False
    tasking._drain_flags_failed_at[0] = -tasking.DRAIN_FLAGS_REST  # no earlier test's Redis error
    broker = _broker()
    broker.delete("celery", *broker.keys("llmobserve:drain:*"))
    yield broker
    current_app.conf.task_always_eager = eager


def _worker(**env):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "llmobserve_site", "worker", "--pool=prefork", "--concurrency=2",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_requests_while_a_drain_waits_queue_nothing_and_the_drain_takes_them_all(idle_queue, org, ingest_key,
                                                                                  api, read_key, post_events,
                                                                                  prices):
    """Seven requests before the worker starts: one queued task. Groups of two batches (the worker's setting)
    leave some after each, so each drain queues its successor until every batch is processed."""
    for n in range(7):
        assert post_events(ingest_key, _events(f"r{n}", 10)).status_code == 202
    assert _queued_batch_tasks(idle_queue) == 1

    worker = _worker(LLMOBSERVE_INGEST_GROUP_EVENTS="20")
    try:
        counted = _wait_for(lambda: api(read_key).get("/v1/stats/summary").json()["calls"] == 70, timeout=90)
        assert counted, worker.stdout.read1().decode() if worker.poll() is not None else "not every batch drained"
        assert not RawBatch.objects.for_org(org).filter(processed_at__isnull=True).exists()
        assert TraceEvent.objects.for_org(org).count() == 70
        # A request after the drains: the flag was cleared when the last one started, so it queues its own.
        assert post_events(ingest_key, _events("late", 4)).status_code == 202
        assert _wait_for(lambda: api(read_key).get("/v1/stats/summary").json()["calls"] == 74, timeout=60)
    finally:
        _stop(worker)
    assert _queued_batch_tasks(idle_queue) == 0


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_otlp_exports_while_a_drain_waits_are_drained_by_it(idle_queue, org, ingest_key, api, read_key, post_otlp,
                                                            prices):
    for _ in range(3):
        start = datetime.now(timezone.utc) - timedelta(seconds=5)
        response = post_otlp(ingest_key, protobuf([chat(new_trace_id(), input_tokens=100, output_tokens=10,
                                                        start=start)]))
        assert response.status_code == 200
    assert _queued_batch_tasks(idle_queue) == 1
    worker = _worker()
    try:
        assert _wait_for(lambda: TraceEvent.objects.for_org(org).count() == 3, timeout=90), \
            worker.stdout.read1().decode() if worker.poll() is not None else "the exports were not drained"
        assert _wait_for(lambda: api(read_key).get("/v1/stats/summary").json()["calls"] == 3, timeout=30)
    finally:
        _stop(worker)


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_a_drain_that_never_runs_delays_the_next_requests_at_most_its_flag_ttl(idle_queue, org, ingest_key,
                                                                               post_events, settings):
    """The queued task is lost (the queue emptied before any worker read it): requests within the flag's life
    queue nothing (the sweeper processes their batches), and once it has expired a request queues again."""
    from accounts import tasking

    post_events(ingest_key, _events("lost", 2))
    assert _queued_batch_tasks(idle_queue) == 1
    idle_queue.delete("celery")
    post_events(ingest_key, _events("next", 2))
    assert _queued_batch_tasks(idle_queue) == 0
    [flag] = idle_queue.keys("llmobserve:drain:*")
    assert 0 < idle_queue.ttl(flag) <= tasking.DRAIN_FLAG_TTL
    idle_queue.delete(flag)  # as if DRAIN_FLAG_TTL had passed
    post_events(ingest_key, _events("after", 2))
    assert _queued_batch_tasks(idle_queue) == 1
    assert len(services.batches_pending(older_than=services.SWEEP_GRACE * 0)) == 3
