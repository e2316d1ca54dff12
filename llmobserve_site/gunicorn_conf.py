"""gunicorn settings the Procfile loads (`--config python:llmobserve_site.gunicorn_conf`).

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics to files in that directory and /metrics
sums them. When a worker exits, its live gauges must stop counting (its counters stay: they are totals).
"""

import os


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
