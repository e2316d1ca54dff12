"""What a `batch_process` task that finds nothing to do costs: a real Celery worker (-c 2, as the Procfile's) on
Redis and a fresh PostgreSQL bench database; N tasks for a batch id that does not exist (the case of every task
whose batch an earlier group already drained), CPU of the worker's processes and of PostgreSQL from /proc.

A backed-up queue drains a group of batches per task, so most tasks find their batch processed: one task is
queued per request, and a group holds up to 15,000 spans (OTLP) or 20,000 events. bench/otlp.py queues 235
tasks for ~8 groups of 512-span exports, bench/ingest.py 120 for 6 groups of 1,000-event batches.

    .venv/bin/python bench/drain_task_cost.py [--tasks 1000] [--db llmo_drain_cost]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup and CPU reading

REDIS_DB = "13"


def tree_cpu(pid: int) -> int:
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sum(bench.cpu_ticks(int(p)) or 0 for p in [pid, *kids])


def postgres_cpu() -> int:
    pids = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()
    return sum(bench.cpu_ticks(int(p)) or 0 for p in pids)


def queued() -> int:
    return int(subprocess.run(["redis-cli", "-n", REDIS_DB, "llen", "celery"], capture_output=True,
                              text=True).stdout or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--db", default="llmo_drain_cost")
    args = parser.parse_args()
    bench.database_prepare(args.db)
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    env = {**bench.bench_env(args.db), "REDIS_URL": redis_url}
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], capture_output=True, check=True)
    worker = subprocess.Popen([str(Path(bench.PY).parent / "celery"), "-A", "llmobserve_site", "worker", "-c", "2",
                               "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              cwd=bench.ROOT, env=env)
    try:
        os.environ.update({"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": redis_url,
                           "DJANGO_SETTINGS_MODULE": "llmobserve_site.settings"})
        sys.path.insert(0, str(bench.ROOT))
        import django

        django.setup()
        from accounts.tasking import enqueue

        time.sleep(8)  # the worker is up and connected
        for _ in range(50):  # warm-up
            enqueue("ingestion.tasks.batch_process", 0)
        while queued():
            time.sleep(0.2)
        time.sleep(2)
        worker_before, pg_before = tree_cpu(worker.pid), postgres_cpu()
        for _ in range(args.tasks):
            enqueue("ingestion.tasks.batch_process", 0)
        while queued():
            time.sleep(0.2)
        time.sleep(2)  # the last tasks finish
        worker_ms = (tree_cpu(worker.pid) - worker_before) / bench.TICK / args.tasks * 1e3
        pg_ms = (postgres_cpu() - pg_before) / bench.TICK / args.tasks * 1e3
        print(f"{args.tasks:,} batch_process tasks with nothing to do: worker {worker_ms:.2f} ms of CPU each, "
              f"PostgreSQL {pg_ms:.2f} ms; load average {os.getloadavg()[0]:.2f}")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
        bench.database_drop(args.db)


if __name__ == "__main__":
    main()
