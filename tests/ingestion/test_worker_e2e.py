"""End to end with a real Celery worker process on Redis: POST → queue → worker → read API."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        return ""
    user = db["USER"] or "postgres"
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker():
    if not settings.REDIS_URL or not _database_url():
        if os.environ.get("LLMOBSERVE_CI") and settings.REDIS_URL:
            pytest.fail("CI must run the real-worker test on PostgreSQL + Redis")
        pytest.skip("needs REDIS_URL and a PostgreSQL DATABASE_URL (the PostgreSQL + Redis CI run has both)")
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL}
    env.pop("PYTEST_VERSION", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "llmobserve_site", "worker", "--pool=solo", "--concurrency=1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def test_worker_prices_and_counts_each_event_once(worker, api, ingest_key, read_key, post_events, prices):
    batch = [{"event_id": f"e{i}", "run_id": f"run-{i % 3}", "provider": "openai", "model": "gpt-4o",
              "input_tokens": 1000, "output_tokens": 200, "section_path": "agent:bot"} for i in range(30)]
    assert post_events(ingest_key, batch).status_code == 202
    assert post_events(ingest_key, batch[:10]).json()["accepted"] == 10  # re-sent: stored once

    summary = _wait_for(lambda: (s := api(read_key).get("/v1/stats/summary").json())["calls"] >= 30 and s)
    assert summary, worker.stdout.read1().decode() if worker.poll() is not None else "worker never caught up"
    time.sleep(1.0)  # the duplicate batch, processed after, must not add anything
    summary = api(read_key).get("/v1/stats/summary").json()
    assert summary["calls"] == 30
    assert summary["cost_usd"] == "0.135"  # 30 × $0.0045
    runs = api(read_key).get("/v1/runs").json()["results"]
    assert sorted((r["run_id"], r["calls"]) for r in runs) == [("run-0", 10), ("run-1", 10), ("run-2", 10)]
