"""Ingest throughput, end to end, on PostgreSQL + Redis.

Starts a fresh PostgreSQL database, one Celery worker (-c 1) and gunicorn (-w 2), posts
120,000 events in 1,000-event gzip batches from 4 client threads, and measures events/s from
the first POST until every event is priced and counted in /v1/stats/summary. Then it times
PostgreSQL's own COPY of the same rows into an indexed copy of the events table, for scale.

    .venv/bin/python bench/ingest.py [--events 120000] [--threads 4] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PG = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


AGENTS = {
    "": [("openai", "gpt-4o-mini-2024-07-18")],
    "agent:researcher": [("openai", "gpt-4o-2024-08-06"), ("openai", "text-embedding-3-small")],
    "agent:researcher/tool:web_search": [("openai", "gpt-4o-mini-2024-07-18")],
    "agent:writer": [("anthropic", "claude-sonnet-4-20250514")],
    "agent:writer/tool:edit": [("anthropic", "claude-sonnet-4-20250514"), ("openai", "gpt-4o-mini-2024-07-18")],
    "agent:planner/step:outline": [("openai", "gpt-4o-2024-08-06")],
}


def make_batches(n_events: int, batch_size: int, seed: int = 1, calls_per_run: int = 8) -> list[bytes]:
    """Realistic runs: each run is one end customer's request, its calls seconds apart, spread over 20 hours."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    paths = list(AGENTS)
    events = []
    for i in range(n_events):
        run = i // calls_per_run
        if i % calls_per_run == 0:
            run_start = now - timedelta(seconds=rng.randint(60, 20 * 3600))
            customer = f"cust-{rng.randint(1, 50)}"
            root = rng.choice(["agent:researcher", "agent:writer", "agent:planner", ""])
        path = rng.choice([p for p in paths if p.startswith(root)] if root else [""])
        provider, model = rng.choice(AGENTS[path])
        events.append({
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "run_id": f"run-{seed}-{run}",
            "span_id": f"s{i}", "section_path": path, "span_type": "embedding" if "embedding" in model else "llm",
            "provider": provider, "model": model, "endpoint": "/v1/chat/completions",
            "input_tokens": rng.randint(100, 5000), "output_tokens": rng.randint(10, 800),
            "cached_input_tokens": rng.choice([0, 0, 64]), "latency_ms": rng.uniform(100, 3000),
            "status": "ok" if rng.random() > 0.02 else "error", "http_status": 200,
            "customer_id": customer, "stream": False,
            "timestamp": (run_start + timedelta(seconds=2 * (i % calls_per_run))).isoformat(),
            "metadata": {"sdk": "bench"},
        })
    return [gzip.compress(json.dumps({"events": events[b:b + batch_size]}).encode(), 1)
            for b in range(0, n_events, batch_size)]


def manage(env: dict, *args: str) -> str:
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True).stdout


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db", default="llmobserve_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db}")
        conn.execute(f"CREATE DATABASE {args.db}")
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING",
           "LLMOBSERVE_INGEST_RATE": "100000", "LLMOBSERVE_READ_RATE": "100000"}
    print("migrating a fresh database …", flush=True)
    manage(env, "migrate", "--noinput")
    try:
        manage(env, "sync_prices")
    except subprocess.CalledProcessError:
        print("sync_prices unavailable; pricing from a minimal table")
    ingest_key = manage(env, "create_api_key", "--org", "bench", "--create-org").strip().splitlines()[-1]
    read_key = manage(env, "create_api_key", "--org", "bench", "--scope", "read").strip().splitlines()[-1]
    subprocess.run([PY, "-c", """
import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'llmobserve_site.settings'); django.setup()
from ingestion.models import ModelPrice
for provider, model, i, o in [('openai', 'gpt-4o', '2.5', '10'), ('openai', 'gpt-4o-mini', '0.15', '0.6'),
                              ('anthropic', 'claude-sonnet-4', '3', '15'), ('openai', 'text-embedding-3-small', '0.02', '0')]:
    if not ModelPrice.objects.unscoped().filter(provider=provider, model_match=model).exists():
        ModelPrice.objects.create(provider=provider, match_kind='prefix', model_match=model, input_mtok=i, output_mtok=o)
"""], cwd=ROOT, env=env, check=True)

    print(f"building {args.events:,} events …", flush=True)
    batches = make_batches(args.events, args.batch)
    port = free_port()
    procs = [
        subprocess.Popen([PY, "-m", "celery", "-A", "llmobserve_site", "worker", "-c", "1", f"--loglevel={os.environ.get('BENCH_WORKER_LOGLEVEL', 'WARNING')}",
                          "--without-gossip", "--without-mingle", "--without-heartbeat"], cwd=ROOT, env=env),
        subprocess.Popen([str(Path(PY).parent / "gunicorn"), "llmobserve_site.wsgi:application", "-w", "2",
                          "-b", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=ROOT, env=env),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health")
        time.sleep(2)  # let the worker connect to the broker
        queue = list(enumerate(batches))
        lock = threading.Lock()
        errors: list[str] = []
        post_times: list[float] = []

        def client() -> None:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {ingest_key}", "Content-Type": "application/json",
                       "Content-Encoding": "gzip"}
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                t = time.perf_counter()
                r = session.post(f"{base}/v1/events", data=body, headers=headers, timeout=60)
                post_times.append(time.perf_counter() - t)
                if r.status_code != 202 or r.json()["accepted"] != args.batch:
                    errors.append(f"{r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        posted = time.perf_counter() - start
        if errors:
            raise SystemExit(f"{len(errors)} failed posts, first: {errors[0]}")
        session = requests.Session()
        while True:
            s = session.get(f"{base}/v1/stats/summary", params={"window": "24h"},
                            headers={"Authorization": f"Bearer {read_key}"}, timeout=10).json()
            if s["calls"] >= args.events:
                break
            time.sleep(0.05)
        total = time.perf_counter() - start
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    # PostgreSQL's own COPY of the same rows into an indexed copy of the events table.
    with psycopg.connect(f"{PG}/{args.db}", autocommit=True) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ingestion_traceevent' "
            "AND column_name <> 'id' ORDER BY ordinal_position")]
        col_list = ", ".join(cols)
        from psycopg.types.json import Jsonb

        rows = [tuple(Jsonb(v) if isinstance(v, dict) else v for v in row)
                for row in conn.execute(f"SELECT {col_list} FROM ingestion_traceevent")]
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE ingestion_traceevent INCLUDING ALL)")
        conn.execute("TRUNCATE bench_copy")
        t = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(f"COPY bench_copy ({col_list}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        copy_secs = time.perf_counter() - t
        conn.execute("DROP TABLE bench_copy")
        priced = conn.execute("SELECT count(*) FILTER (WHERE cost_pico IS NOT NULL), count(*) "
                              "FROM ingestion_traceevent").fetchone()
    if not args.keep:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")

    rate = args.events / total
    copy_rate = len(rows) / copy_secs
    post_times.sort()
    print(f"events: {args.events:,} in {len(batches)} gzip batches of {args.batch}, {args.threads} client threads")
    print(f"stored: {priced[1]:,} events, {priced[0]:,} priced")
    print(f"POSTs done in {posted:.2f} s ({args.events / posted:,.0f} events/s accepted); "
          f"POST latency p50 {post_times[len(post_times) // 2] * 1000:.0f} ms, "
          f"p95 {post_times[int(len(post_times) * 0.95)] * 1000:.0f} ms")
    print(f"end to end (first POST → all priced and counted in /v1/stats/summary): {total:.2f} s = {rate:,.0f} events/s")
    print(f"PostgreSQL COPY of the same rows into an indexed table: {copy_secs:.2f} s = {copy_rate:,.0f} rows/s")
    print(f"end-to-end rate / COPY rate = {rate / copy_rate:.1%}")


if __name__ == "__main__":
    main()
