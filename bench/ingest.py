"""Ingest throughput, end to end, on PostgreSQL + Redis, against PostgreSQL's own floor.

Starts a fresh PostgreSQL database, Celery workers and gunicorn, posts 120,000 events in 1,000-event gzip
batches from 4 client threads, and measures events/s from the first POST until every event is priced and
counted in /v1/stats/summary, with the CPU each process used (from /proc) and which one saturated. Then it
times PostgreSQL's COPY of the same rows into the lean table (primary key (org, event_id) + (org, timestamp) +
(org, run_id): the honest floor), into a copy of our own events table with its indexes, and into a bare heap.

    .venv/bin/python bench/ingest.py [--events 120000] [--threads 4] [--customers 50 --agents 5 --models 3]
                                     [--workers 1 --concurrency 2 --web 2 | --curve] [--keep]

The default point is the Procfile's: one Celery worker with -c 2 (two processes, each draining its own group
of pending batches: a batch another process holds is skipped, not waited for) and gunicorn -w 2.
`--curve` runs workers 1/2 × -c 1/2 × gunicorn -w 1/2/4 on one database (emptied between points).
Redis: BENCH_REDIS_URL (default db 9). The database: --db (default llmo_ingestfast_bench).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
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
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PG = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
STALL_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BASE_MODELS = [("openai", "gpt-4o-mini-2024-07-18"), ("openai", "gpt-4o-2024-08-06"),
               ("anthropic", "claude-sonnet-4-20250514"), ("openai", "text-embedding-3-small")]


def dimensions(agents: int, models: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Section paths (each agent, its two tools, and untracked calls) and (provider, model) names: beyond the
    four base models, variants that the same prefix prices (`gpt-4o-mini-2024-07-18-b5`)."""
    paths = [""] + [p for a in range(agents) for p in (f"agent:a{a}", f"agent:a{a}/tool:search",
                                                       f"agent:a{a}/step:write")]
    names = [(prov, model if i < len(BASE_MODELS) else f"{model}-b{i}")
             for i in range(models) for prov, model in [BASE_MODELS[i % len(BASE_MODELS)]]]
    return paths, names


def make_batches(n_events: int, batch_size: int, *, seed: int = 1, calls_per_run: int = 8, customers: int = 50,
                 agents: int = 5, models: int = 3) -> list[bytes]:
    """Realistic runs: each run is one end customer's request, its calls seconds apart, spread over 20 hours;
    `customers × agents × models` (× 3 sections per agent) drive the rollup keys per hour."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    paths, names = dimensions(agents, models)
    roots = [p for p in paths if "/" not in p]
    events = []
    for i in range(n_events):
        run = i // calls_per_run
        if i % calls_per_run == 0:
            run_start = now - timedelta(seconds=rng.randint(60, 20 * 3600))
            customer = f"cust-{rng.randint(1, customers)}"
            root = rng.choice(roots)
        path = rng.choice([p for p in paths if p.startswith(root)] if root else [""])
        provider, model = rng.choice(names)
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


# --- CPU per process, from /proc ------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except FileNotFoundError:
            pass
    return out


class CpuSampler(threading.Thread):
    """Samples, every 0.2 s, the CPU time of each process of a role: gunicorn (master + workers), each Celery
    worker process (+ its pool children) and the PostgreSQL backends connected to the bench database.
    A process seen after the start counts from zero (new backends and pool children); one present at the
    start counts from its time then."""

    def __init__(self, roles: dict[str, list[int]], db: str):
        super().__init__(daemon=True)
        self.roles, self.db = roles, db
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.role_of: dict[int, str] = {}
        self.stop = threading.Event()
        self.pg = psycopg.connect(f"{PG}/postgres", autocommit=True)
        self.machine = machine_ticks()
        self._sample(initial=True)

    def _pids(self) -> dict[int, str]:
        found = {}
        for role, roots in self.roles.items():
            for i, root in enumerate(roots):
                name = role if len(roots) == 1 else f"{role} {i + 1}"
                for pid in [root, *children(root)]:
                    found[pid] = name
        for (pid,) in self.pg.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.db]):
            found[pid] = "postgres"
        return found

    def _sample(self, initial: bool = False) -> None:
        for pid, role in self._pids().items():
            ticks = cpu_ticks(pid)
            if ticks is None:
                continue
            if pid not in self.first:
                self.first[pid] = ticks if initial else 0
            self.last[pid] = ticks
            self.role_of[pid] = role

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def finish(self) -> dict[str, tuple[float, float]]:
        """role -> (CPU seconds, the busiest process's CPU seconds)."""
        self.stop.set()
        self.join()
        self._sample()
        self.pg.close()
        busy, total = machine_ticks()
        self.machine_busy = (busy - self.machine[0]) / max(total - self.machine[1], 1)
        out: dict[str, list[float]] = {}
        for pid, role in self.role_of.items():
            secs = (self.last[pid] - self.first[pid]) / TICK
            total, busiest = out.get(role, [0.0, 0.0])
            out[role] = [total + secs, max(busiest, secs)]
        return {role: (t, b) for role, (t, b) in out.items()}


# --- one point of the curve ---------------------------------------------------------------

def bench_env(db: str) -> dict:
    return {**os.environ, "DATABASE_URL": f"{PG}/{db}", "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING",
            "LLMOBSERVE_INGEST_RATE": "1000000", "LLMOBSERVE_READ_RATE": "1000000"}


def database_prepare(db: str, *, fresh: bool = False) -> tuple[str, str]:
    """A fresh database with the bench org, its keys and a minimal price table: (ingest key, read key).

    The migrated schema is kept as the template `<db>_tpl` (migrating from nothing takes minutes on a loaded
    machine); a later run clones it and applies only newer migrations. `fresh` rebuilds the template."""
    tpl = f"{db}_tpl"
    env = bench_env(db)
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        if fresh:
            conn.execute(f"DROP DATABASE IF EXISTS {tpl} WITH (FORCE)")
        has_tpl = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [tpl]).fetchone()
        if not has_tpl:
            conn.execute(f"CREATE DATABASE {tpl}")
    if not has_tpl:
        print(f"migrating the template database {tpl} …", flush=True)
        manage(bench_env(tpl), "migrate", "--noinput")
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE {tpl}")
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
    return ingest_key, read_key


def in_process(db: str, run, *, keep: bool = False) -> None:
    """`run(ingest_key)` in this process, Django set up on a fresh bench database `db` (the in-process profiles'
    setup); the database is dropped afterwards unless `keep`."""
    ingest_key, _ = database_prepare(db)
    os.environ.update({k: v for k, v in bench_env(db).items() if k in (
        "DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "LLMOBSERVE_INGEST_RATE", "LLMOBSERVE_READ_RATE")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    try:
        run(ingest_key)
    finally:
        from django.db import connection

        connection.close()
        if not keep:
            database_drop(db)


def database_drop(db: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def database_empty(db: str) -> None:
    """Between points: no events, batches, rollups or runs (the org, keys and prices stay)."""
    with psycopg.connect(f"{PG}/{db}", autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND (tablename LIKE 'ingestion\\_%%rollup' "
            "OR tablename IN ('ingestion_traceevent', 'ingestion_rawbatch', 'ingestion_runsummary', "
            "'ingestion_runfacet'))")]
        conn.execute(f"TRUNCATE {', '.join(tables)}")
        conn.execute("VACUUM ANALYZE")
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)


class Answer(NamedTuple):
    status: int
    body: bytes


def post_all(url: str, bodies: list[bytes], headers: dict, threads: int,
             check: Callable[[Answer], str]) -> tuple[float, list[float]]:
    """POST every body from `threads` keep-alive connections; (start, each POST's seconds). Raises SystemExit if
    `check` finds a problem with any answer. `http.client`, not `requests`: the client shares the machine's 2 cores
    with the measured processes, and `requests` spent ~1 ms of CPU a POST (bench/otlp.py's OTLP phase, which makes
    twice the POSTs of its native phase a unit: 0.26 against 0.15 s of client CPU a phase)."""
    parts = urlsplit(url)
    queue = list(bodies)
    lock = threading.Lock()
    errors: list[str] = []
    post_times: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop(0)
            t = time.perf_counter()
            conn.request("POST", parts.path, body=body, headers=headers)
            r = conn.getresponse()
            answer = Answer(r.status, r.read())
            post_times.append(time.perf_counter() - t)
            problem = check(answer)
            if problem:
                errors.append(problem)
        conn.close()

    start = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"{len(errors)} failed posts, first: {errors[0]}")
    return start, post_times


def point_run(*, db: str, keys: tuple[str, str], batches: list[bytes], events: int, batch: int, threads: int,
              workers: int, concurrency: int, web: int) -> dict:
    """Start `workers` Celery processes (-c concurrency) and gunicorn -w `web`; post every batch; wait until
    /v1/stats/summary counts every event. Returns the rates and the CPU each role used."""
    ingest_key, read_key = keys
    env = bench_env(db)
    port = free_port()
    loglevel = os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")
    worker_procs = [subprocess.Popen(
        [PY, "-m", "celery", "-A", "llmobserve_site", "worker", "-c", str(concurrency), "-n", f"bench{i}@%h",
         f"--loglevel={loglevel}", "--without-gossip", "--without-mingle", "--without-heartbeat"], cwd=ROOT, env=env)
        for i in range(workers)]
    web_proc = subprocess.Popen([str(Path(PY).parent / "gunicorn"), "llmobserve_site.wsgi:application", "-w", str(web),
                                 "-b", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=ROOT, env=env)
    procs = [*worker_procs, web_proc]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health")
        time.sleep(3)  # let the workers connect to the broker and finish importing

        def accepted(r: Answer) -> str:
            ok = r.status == 202 and json.loads(r.body)["accepted"] == batch
            return "" if ok else f"{r.status} {r.body[:200]!r}"

        sampler = CpuSampler({"web": [web_proc.pid], "worker": [p.pid for p in worker_procs]}, db)
        sampler.start()
        start, post_times = post_all(f"{base}/v1/events", batches, {
            "Authorization": f"Bearer {ingest_key}", "Content-Type": "application/json", "Content-Encoding": "gzip"},
            threads, accepted)
        posted = time.perf_counter() - start
        # Watch the rollups' own total with one small query every 50 ms (polling /v1/stats/summary that often spent
        # the measured processes' CPU on the observer: gunicorn and the database), then check the API agrees.
        counted, progress_at = -1, time.monotonic()
        with psycopg.connect(f"{PG}/{db}", autocommit=True) as watch:
            while True:
                calls = watch.execute("SELECT coalesce(sum(calls), 0) FROM ingestion_agentdailyrollup").fetchone()[0]
                if calls >= events:
                    break
                if calls != counted:
                    counted, progress_at = calls, time.monotonic()
                elif time.monotonic() - progress_at > STALL_SECONDS:  # a lost batch fails the bench, not hangs it
                    raise SystemExit(f"stalled: {counted:,} of {events:,} events counted, none more for "
                                     f"{STALL_SECONDS} s")
                time.sleep(0.05)
        total = time.perf_counter() - start
        summary = requests.get(f"{base}/v1/stats/summary", params={"window": "24h"},
                               headers={"Authorization": f"Bearer {read_key}"}, timeout=10).json()
        if summary["calls"] != events:
            raise SystemExit(f"/v1/stats/summary counts {summary['calls']:,} calls, not {events:,}")
        cpu = sampler.finish()
        machine = sampler.machine_busy
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    post_times.sort()
    return {"workers": workers, "concurrency": concurrency, "web": web, "total": total, "posted": posted,
            "rate": events / total, "accepted": events / posted, "cpu": cpu, "machine": machine,
            "p50": post_times[len(post_times) // 2], "p95": post_times[int(len(post_times) * 0.95)]}


def point_print(p: dict, events: int) -> None:
    cpu, wall = p["cpu"], p["total"]
    roles = sorted(cpu, key=lambda r: (r.split()[0] != "web", r))
    per_event = "  ".join(f"{r} {cpu[r][0] / events * 1e6:,.0f} µs" for r in roles)
    busy = "  ".join(f"{r} {cpu[r][0] / wall:.0%}" for r in roles)
    limit = saturation(p)
    print(f"  workers {p['workers']} × -c {p['concurrency']}, web -w {p['web']}: {p['rate']:,.0f} events/s end to end "
          f"({wall:.2f} s; POSTs done in {p['posted']:.2f} s = {p['accepted']:,.0f}/s, p50 {p['p50'] * 1000:.0f} ms, "
          f"p95 {p['p95'] * 1000:.0f} ms)")
    print(f"    CPU per event: {per_event}")
    print(f"    CPU share of one core over the run: {busy}   → limit: {limit}")


def saturation(p: dict) -> str:
    """The process that was busy for (nearly) the whole run, else the machine's cores."""
    cpu, wall = p["cpu"], p["total"]
    busiest = max(((b / wall, r) for r, (_, b) in cpu.items() if r != "postgres"), default=(0.0, "-"))
    pg_total = cpu.get("postgres", (0.0, 0.0))
    pg_one = pg_total[1] / wall
    total = sum(t for t, _ in cpu.values()) / wall
    cores = os.cpu_count() or 1
    if p["machine"] >= 0.9 and total < 0.85 * cores:
        return (f"the machine's {cores} cores, {p['machine']:.0%} busy, this bench's processes {total:.0%}: "
                f"other load — compare CPU per event, not events/s")
    if total >= 0.85 * cores:
        top = max(cpu, key=lambda r: cpu[r][0])
        return f"the machine's {cores} cores ({total:.0%} busy; most CPU: {top})"
    if max(busiest[0], pg_one) >= 0.8:
        return f"{busiest[1]} process ({busiest[0]:.0%} of a core)" if busiest[0] >= pg_one else \
            f"a PostgreSQL backend ({pg_one:.0%} of a core)"
    return f"none saturated ({total:.0%} of {cores} cores): latency-bound"


# --- the floors: PostgreSQL's COPY of the same rows ---------------------------------------

def floors_measure(db: str, repeat: int = 3) -> dict[str, float]:
    """COPY the stored events into (a) our own events table's copy with all its indexes, (b) the lean table:
    primary key (org, event_id) + (org, timestamp) + (org, run_id), (c) a heap with no index. Interleaved,
    `repeat` times; the best of each (rows/s)."""
    with psycopg.connect(f"{PG}/{db}", autocommit=True) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ingestion_traceevent' "
            "AND column_name <> 'id' ORDER BY ordinal_position")]
        col_list = ", ".join(cols)
        # The rows in COPY's own text format, read once: the timed COPY is PostgreSQL's work (parse, heap,
        # indexes, WAL), not a Python client formatting 120,000 tuples.
        with conn.cursor() as cur, cur.copy(f"COPY (SELECT {col_list} FROM ingestion_traceevent) TO STDOUT") as out:
            data = b"".join(bytes(chunk) for chunk in out)
        rows = data.count(b"\n")
        tables = {
            "own": "CREATE TABLE bench_own (LIKE ingestion_traceevent INCLUDING ALL)",
            "lean": "CREATE TABLE bench_lean (LIKE ingestion_traceevent INCLUDING DEFAULTS); "
                    "ALTER TABLE bench_lean DROP id; ALTER TABLE bench_lean ADD PRIMARY KEY (org_id, event_id); "
                    "CREATE INDEX ON bench_lean (org_id, timestamp); CREATE INDEX ON bench_lean (org_id, run_id)",
            "heap": "CREATE TABLE bench_heap (LIKE ingestion_traceevent INCLUDING DEFAULTS); "
                    "ALTER TABLE bench_heap DROP id",
        }
        best: dict[str, float] = {}
        for _ in range(repeat):
            for name, ddl in tables.items():
                conn.execute(f"DROP TABLE IF EXISTS bench_{name}")
                conn.execute(ddl)
                t = time.perf_counter()
                with conn.cursor() as cur, cur.copy(f"COPY bench_{name} ({col_list}) FROM STDIN") as copy:
                    for start in range(0, len(data), 1 << 20):
                        copy.write(data[start:start + (1 << 20)])
                rate = rows / (time.perf_counter() - t)
                best[name] = max(best.get(name, 0.0), rate)
                conn.execute(f"DROP TABLE bench_{name}")
        indexes = [r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'ingestion_traceevent' ORDER BY indexname")]
    return {**best, "rows": rows, "indexes": indexes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="each worker's -c (2: the Procfile's)")
    parser.add_argument("--web", type=int, default=2, help="gunicorn -w")
    parser.add_argument("--curve", action="store_true",
                        help="the scaling curve: workers 1/2 × -c 1/2 × web 1/2/4 (the single point's flags ignored)")
    parser.add_argument("--db", default="llmo_ingestfast_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--fresh", action="store_true", help="migrate the template database again")
    parser.add_argument("--payload-compression", choices=["pglz", "lz4"],
                        help="override the raw batch payload's TOAST compression (A/B of migration 0015)")
    args = parser.parse_args()

    keys = database_prepare(args.db, fresh=args.fresh)
    if args.payload_compression:
        with psycopg.connect(f"{PG}/{args.db}", autocommit=True) as conn:
            conn.execute(f"ALTER TABLE ingestion_rawbatch ALTER COLUMN payload SET COMPRESSION "
                         f"{args.payload_compression}")
    with psycopg.connect(f"{PG}/{args.db}") as conn:
        compression = conn.execute("SELECT coalesce(nullif(attcompression::text, ''), 'default (' || "
                                   "current_setting('default_toast_compression') || ')') FROM pg_attribute "
                                   "WHERE attrelid = 'ingestion_rawbatch'::regclass AND attname = 'payload'"
                                   ).fetchone()[0]
    print(f"raw batch payload compression: {compression}; drained group: "
          f"{os.environ.get('LLMOBSERVE_INGEST_GROUP_EVENTS', 'default')} events")
    print(f"building {args.events:,} events ({args.customers} customers × {args.agents} agents × {args.models} "
          f"models) …", flush=True)
    batches = make_batches(args.events, args.batch, customers=args.customers, agents=args.agents, models=args.models)
    if args.curve:
        points = [(w, c, web) for w in (1, 2) for c in (1, 2) for web in (1, 2, 4)]
    else:
        points = [(args.workers, args.concurrency, args.web)]
    results = []
    try:
        for workers, concurrency, web in points:
            database_empty(args.db)
            results.append(point_run(db=args.db, keys=keys, batches=batches, events=args.events, batch=args.batch,
                                     threads=args.threads, workers=workers, concurrency=concurrency, web=web))
            point_print(results[-1], args.events)
        floors = floors_measure(args.db)
        with psycopg.connect(f"{PG}/{args.db}") as conn:
            priced = conn.execute("SELECT count(*) FILTER (WHERE cost_pico IS NOT NULL), count(*) "
                                  "FROM ingestion_traceevent").fetchone()
            keys_per_hour = conn.execute("SELECT count(*)::float / greatest(count(DISTINCT hour), 1) "
                                         "FROM ingestion_hourlyrollup").fetchone()[0]
    finally:
        if not args.keep:
            database_drop(args.db)

    print(f"\nevents: {args.events:,} in {len(batches)} gzip batches of {args.batch}, {args.threads} client threads; "
          f"{args.customers} customers × {args.agents} agents × {args.models} models "
          f"({keys_per_hour:,.0f} fine rollup keys per hour)")
    print(f"stored: {priced[1]:,} events, {priced[0]:,} priced; load average {os.getloadavg()[0]:.2f}")
    print("events table indexes:\n  " + "\n  ".join(floors["indexes"]))
    print(f"PostgreSQL COPY of the same {floors['rows']:,} rows (best of 3):")
    print(f"  lean table (PK (org, event_id) + (org, timestamp) + (org, run_id)): {floors['lean']:,.0f} rows/s")
    print(f"  our events table, its own indexes:                                  {floors['own']:,.0f} rows/s")
    print(f"  no index at all (heap):                                             {floors['heap']:,.0f} rows/s")
    best = max(results, key=lambda r: r["rate"])
    for label, r in (("this point", results[0]),) if not args.curve else (("best point", best),):
        print(f"{label}: {r['rate']:,.0f} events/s end to end = {r['rate'] / floors['lean']:.1%} of the lean floor, "
              f"{r['rate'] / floors['own']:.1%} of our own table's COPY")
    if args.curve:
        print("curve (events/s; share of the lean floor):")
        for r in results:
            print(f"  workers {r['workers']} × -c {r['concurrency']}, web {r['web']}: {r['rate']:>8,.0f}  "
                  f"{r['rate'] / floors['lean']:.1%}   limit: {saturation(r)}")


if __name__ == "__main__":
    main()
