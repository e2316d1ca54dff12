"""The Prometheus text of GET /metrics: the processes' counters plus backlog gauges read from the database.

With `PROMETHEUS_MULTIPROC_DIR` set, the counters are the sum over every process that wrote files there
(gunicorn workers, Celery workers, dead ones included); unset, this process's own registry.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from . import selectors

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ThisProcess:
    """The default registry (this process's metrics and the process/GC collectors), read through at scrape."""

    def collect(self):
        return REGISTRY.collect()


class _Backlog:
    """Gauges computed when scraped: two counts and one row, each on a partial index of unprocessed batches."""

    def __init__(self, now: datetime):
        self.now = now

    def collect(self):
        try:
            state = selectors.backlog(now=self.now)
        except Exception:  # noqa: BLE001 - a database outage must not hide the process counters
            logger.exception("metrics: backlog gauges unavailable")
            return
        yield GaugeMetricFamily("llmobserve_batches_pending", "Raw batches waiting to be processed (retries included).",
                                value=state.pending)
        yield GaugeMetricFamily("llmobserve_batches_quarantined",
                                "Raw batches quarantined after repeated failures: an operator must retry them.",
                                value=state.quarantined)
        yield GaugeMetricFamily("llmobserve_oldest_pending_batch_seconds",
                                "Age of the oldest pending batch (0 when none is pending).",
                                value=state.oldest_pending_seconds)


def metrics_exposition(*, now: datetime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(_Backlog(now))
    return generate_latest(registry)
