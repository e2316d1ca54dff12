"""Multiprocess mode: two gunicorn workers (PROMETHEUS_MULTIPROC_DIR) each count what they served, and /metrics,
whichever worker answers it, reports the sum. PostgreSQL only, like the other process tests."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.processes import PrivateRedis, WebServer, app_env, require_postgres_and_redis_server

from .conftest import Scrape, parse

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

TOKEN = "multiprocess-metrics-token"
REQ = "llmobserve_ingest_requests_total"


def _per_process(directory: Path, tmp_path: Path) -> dict[str, float]:
    """Each process's own count of 202 answers, read from its file alone."""
    counts = {}
    for file in sorted(directory.glob("counter_*.db")):
        alone = tmp_path / f"alone-{file.stem}"
        alone.mkdir(parents=True)
        shutil.copy(file, alone / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == REQ and sample.labels == {"endpoint": "events", "status": "202"}:
                    counts[file.stem] = sample.value
    return counts


def test_two_workers_counters_are_summed_by_metrics(tmp_path, ingest_key):
    require_postgres_and_redis_server()
    directory = tmp_path / "prometheus"
    directory.mkdir()
    redis = PrivateRedis()
    redis.start()
    env = app_env(redis.url(), PROMETHEUS_MULTIPROC_DIR=str(directory), LLMOBSERVE_METRICS_TOKEN=TOKEN,
                  LLMOBSERVE_INGEST_RATE="100000")
    web = WebServer(env, workers=2, threads=1)  # sync workers: a busy one leaves the next connection to the other
    sent = 0

    def post(i: int) -> int:
        body = {"events": [{"event_id": f"mp-{i}-{j}", "provider": "openai", "model": "gpt-4o"} for j in range(3)]}
        return requests.post(f"{web.base}/v1/events", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {ingest_key}", "Connection": "close"}).status_code

    try:
        web.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(10):  # rounds of concurrent posts until both workers have served some
                statuses = list(pool.map(post, range(sent, sent + 16)))
                assert statuses == [202] * 16
                sent += 16
                if len([n for n in _per_process(directory, tmp_path / str(sent)).values() if n]) >= 2:
                    break
        per_process = _per_process(directory, tmp_path / "final")
        assert len([n for n in per_process.values() if n]) == 2, per_process
        assert sum(per_process.values()) == sent

        response = requests.get(f"{web.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code == 200
        scrape = Scrape(parse(response.text))
        assert scrape.value(REQ, endpoint="events", status="202") == sent
        assert scrape.value("llmobserve_events_accepted_total") == 3 * sent
        assert scrape.value("llmobserve_ingest_request_seconds_count", endpoint="events") == sent
    finally:
        web.stop()
        redis.stop()
