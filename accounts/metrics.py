"""Every Prometheus metric the server exposes, defined once; each instrumented site calls one function here.

It lives in `accounts` (the house's shared layer, like `tasking`) so every app may record without a
new import edge. The metrics are process-local counters from the official `prometheus-client`; with
`PROMETHEUS_MULTIPROC_DIR` set (gunicorn workers, Celery workers) each process writes its own files in
that directory and `GET /metrics` aggregates them (`ops.views.metrics`). The directory must be empty when
the deployment starts; see docs/operations.md.

Label values are bounded sets: endpoint names, HTTP codes, wire-format field names, task names,
alert channels. Never an org, key or run id (orgs are many; per-org figures live in the staff console).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Iterable

from prometheus_client import Counter, Histogram

INGEST_REQUESTS = Counter(
    "llmobserve_ingest_requests", "Ingest requests answered, by endpoint and HTTP status.", ["endpoint", "status"])
INGEST_SECONDS = Histogram(
    "llmobserve_ingest_request_seconds", "Ingest request handling time, authentication to response.",
    ["endpoint"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EVENTS_ACCEPTED = Counter(
    "llmobserve_events_accepted", "Events accepted (durably stored as a raw batch) by the ingest endpoints.")
EVENTS_REJECTED = Counter(
    "llmobserve_events_rejected", "Events refused by validation, by the first failing field.", ["reason"])
EVENTS_PROCESSED = Counter(
    "llmobserve_events_processed", "New events priced, stored and folded into the rollups (duplicates excluded).")
EVENT_LAG = Histogram(
    "llmobserve_event_lag_seconds", "Per processed event: request accepted (batch received) to priced and folded.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600))
TASKS = Counter("llmobserve_tasks", "Celery task runs, by task name and outcome.", ["task", "outcome"])
ALERTS_SENT = Counter(
    "llmobserve_alerts_sent", "Alert delivery attempts, by channel and outcome.", ["channel", "outcome"])
PRICE_BOOK_RELOADS = Counter(
    "llmobserve_price_book_reloads", "Times a process rebuilt its price book from the price table.")

# The names /metrics exposes (docs/grafana/llmobserve.json may reference only these): counters as exposed.
EXPOSED_NAMES = (
    "llmobserve_ingest_requests_total", "llmobserve_ingest_request_seconds", "llmobserve_events_accepted_total",
    "llmobserve_events_rejected_total", "llmobserve_events_processed_total", "llmobserve_event_lag_seconds",
    "llmobserve_tasks_total", "llmobserve_alerts_sent_total", "llmobserve_price_book_reloads_total",
    "llmobserve_batches_pending", "llmobserve_batches_quarantined", "llmobserve_oldest_pending_batch_seconds",
)

OTHER = "other"


def ingest_request_observe(*, endpoint: str, status: int, seconds: float) -> None:
    INGEST_REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
    INGEST_SECONDS.labels(endpoint=endpoint).observe(seconds)


def events_counted(*, accepted: int, rejected: Iterable[dict], known_fields: Iterable[str]) -> None:
    """Accepted events, and each rejected one under its first error field (unknown keys count as `other`)."""
    if accepted:
        EVENTS_ACCEPTED.inc(accepted)
    known = set(known_fields)
    for item in rejected:
        errors = item.get("errors") or {}
        first = next(iter(errors), OTHER)
        EVENTS_REJECTED.labels(reason=first if first in known else OTHER).inc()


def events_processed(*, now: datetime, received: Iterable[tuple[datetime, int]]) -> None:
    """`received`: (batch received_at, new events from it). Call once the storing transaction commits."""
    for received_at, count in received:
        if count <= 0:
            continue
        EVENTS_PROCESSED.inc(count)
        _observe_many(EVENT_LAG, max(0.0, (now - received_at).total_seconds()), count)


def _observe_many(histogram: Histogram, amount: float, count: int) -> None:
    """`count` observations of one `amount` (one per event: the histogram's count equals the counter) in O(1).

    prometheus-client has no weighted observe; its Histogram keeps one value per bucket (made cumulative at
    collection) and one sum, which are incremented here by `count` as `observe` does by 1. (5,000 separate
    observations cost ~24 ms in multiprocess mode: bench/metrics_overhead.py.) Falls back to a loop if a
    future version stores them differently; tests/ops pin the exact counts.
    """
    buckets, bounds, total = (getattr(histogram, "_buckets", None), getattr(histogram, "_upper_bounds", None),
                              getattr(histogram, "_sum", None))
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for _ in range(count):
            histogram.observe(amount)
        return
    total.inc(amount * count)
    for i, bound in enumerate(bounds):
        if amount <= bound:
            buckets[i].inc(count)
            return


def task_finished(*, task: str, outcome: str) -> None:
    TASKS.labels(task=task, outcome=outcome).inc()


def alert_sent(*, channel: str, outcome: str) -> None:
    ALERTS_SENT.labels(channel=channel, outcome=outcome).inc()


def price_book_reloaded() -> None:
    PRICE_BOOK_RELOADS.inc()


class IngestMetricsMixin:
    """For an ingest APIView: counts every answer (401/413/415/429 from DRF included) and times it.

    `class OtlpTracesView(IngestMetricsMixin, APIView): metrics_endpoint = "otlp"` is all another
    endpoint needs. An exception DRF does not turn into a response is counted as a 500, then re-raised.
    """

    metrics_endpoint = "events"

    def dispatch(self, request, *args, **kwargs):
        started = time.perf_counter()
        status = 500
        try:
            response = super().dispatch(request, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            ingest_request_observe(endpoint=self.metrics_endpoint, status=status,
                                   seconds=time.perf_counter() - started)


def _task_name(sender) -> str:
    return getattr(sender, "name", None) or OTHER


def task_signals_connect() -> None:
    """Count every Celery task's outcome (worker and eager runs alike) through Celery's own signals."""
    from celery.signals import task_failure, task_retry, task_success

    def on_success(sender=None, **_):
        task_finished(task=_task_name(sender), outcome="success")

    def on_failure(sender=None, **_):
        task_finished(task=_task_name(sender), outcome="failure")

    def on_retry(sender=None, request=None, **_):
        # task_retry's sender is the task's request-bound task object in Celery 5.
        task_finished(task=_task_name(sender), outcome="retry")

    task_success.connect(on_success, weak=False, dispatch_uid="llmobserve-metrics-success")
    task_failure.connect(on_failure, weak=False, dispatch_uid="llmobserve-metrics-failure")
    task_retry.connect(on_retry, weak=False, dispatch_uid="llmobserve-metrics-retry")
