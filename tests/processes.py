"""Real processes for fault tests: a private redis-server, the collector under gunicorn, a Celery worker.

Nothing here is a mock. Each process runs the project's own code with the environment a deployment
would give it (REDIS_URL, DATABASE_URL), so what the tests kill, freeze or restart is the real thing.
The shared PostgreSQL and Redis of the machine are never touched: Redis is a private server on a free
port, and the database is the test database of this pytest run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of this run's PostgreSQL test database ("" on SQLite)."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        return ""
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def require_postgres_and_redis_server() -> None:
    """Skip (with the reason) where these tests cannot run; under CI's PostgreSQL run, fail instead."""
    missing = []
    if not database_url():
        missing.append("a PostgreSQL DATABASE_URL (a server process shares the test database; SQLite's file "
                       "locking makes that flaky, and production runs PostgreSQL)")
    if not REDIS_SERVER:
        missing.append("the redis-server binary (the test starts, kills and restarts its own Redis)")
    if not missing:
        return
    if os.environ.get("LLMOBSERVE_CI") and database_url():
        pytest.fail("CI's PostgreSQL + Redis run must run the fault tests; missing: " + "; ".join(missing))
    pytest.skip("needs " + " and ".join(missing))


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}: {output_of(proc)[-4000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what}: not ready after {timeout} s")


def python_output(code: str) -> str:
    """The standard output of `code` run by a fresh interpreter in the project, as a server process starts (the
    project's settings, this environment)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmobserve_site.settings"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True).stdout


def output_of(proc: subprocess.Popen) -> str:
    """What a finished (or killed) process printed, for assertion messages."""
    log = getattr(proc, "log_path", None)
    if log and Path(log).exists():
        return Path(log).read_text(errors="replace")
    return ""


def _spawn(args: list[str], *, env: dict | None = None, name: str) -> subprocess.Popen:
    log = tempfile.NamedTemporaryFile(prefix=f"llmo-{name}-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    log.close()
    return proc


def _stop(proc: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # the whole session: gunicorn's and Celery's children too
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence: a kill loses everything in it."""

    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.proc = _spawn([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"], name="redis")
        _wait(self._pong, 10, "redis-server", self.proc)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server and all its data are gone; clients get connection refused."""
        _stop(self.proc, signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing ever answers (a hung server)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        _stop(self.proc, signal.SIGKILL)


def app_env(redis_url: str, **extra: str) -> dict:
    """The environment a deployment gives web, worker and beat: this run's database, the private Redis."""
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url, "DJANGO_DEBUG": "0",
           **extra}
    for name in ("PYTEST_VERSION", "PYTEST_CURRENT_TEST", "DJANGO_ALLOW_ASYNC_UNSAFE", "LLMOBSERVE_TEST_DB_NAME"):
        env.pop(name, None)
    return env


class WebServer:
    """The collector under gunicorn (one worker process, a few threads, by default), as the Procfile runs it."""

    def __init__(self, env: dict, *, workers: int = 1, threads: int = 4):
        self.env = env
        self.workers, self.threads = workers, threads
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()
        # A fresh connection per request: reusing one races gunicorn closing it after its 2 s keep-alive.
        self.http.headers["Connection"] = "close"

    def start(self) -> None:
        self.proc = _spawn([sys.executable, "-m", "gunicorn", "llmobserve_site.wsgi:application", "--bind",
                            f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--threads", str(self.threads),
                            "--timeout", "60", "--config", "python:llmobserve_site.gunicorn_conf",
                            "--no-control-socket"],  # its default path is shared by every gunicorn of the machine
                           env=self.env, name="web")
        _wait(self._up, 60, "gunicorn", self.proc)

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.base}/health", timeout=5).status_code in (200, 503)
        except requests.RequestException:
            return False

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # gunicorn's quick shutdown: no request of the test is in flight

    def get(self, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 30)
        return self.http.get(self.base + path, headers=headers, **kwargs)

    def post(self, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 30)
        return self.http.post(self.base + path, headers=headers, **kwargs)


class Worker:
    """`celery -A llmobserve_site worker`, one process (solo pool), as a deployment runs it."""

    def __init__(self, env: dict):
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = _spawn([sys.executable, "-m", "celery", "-A", "llmobserve_site", "worker", "--pool=solo",
                            "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
                            "--loglevel=INFO"], env=self.env, name="worker")

    def log_count(self, text: str) -> int:
        return output_of(self.proc).count(text) if self.proc else 0

    def wait_ready(self, timeout: float = 60) -> None:
        _wait(lambda: self.log_count(" ready.") > 0, timeout, "celery worker", self.proc)

    def wait_received(self, count: int, timeout: float = 30) -> None:
        _wait(lambda: self.log_count("] received") >= count, timeout, "celery worker", self.proc, interval=0.005)

    def wait_idle(self, timeout: float = 30) -> None:
        """Every task received so far has finished (the worker may still receive more)."""
        _wait(lambda: self.log_count("] received") <= self.log_count("] succeeded"), timeout, "celery worker",
              self.proc, interval=0.01)

    def sigkill(self) -> None:
        _stop(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.proc)

    def output(self) -> str:
        return output_of(self.proc) if self.proc else ""


class Beat:
    """Publishes a task to the broker the way `celery beat` does for its schedule (`app.send_task`)."""

    def __init__(self, broker_url: str):
        from celery import Celery

        # Not the current app: the project's tasks in this process must stay bound to the project's app.
        self.app = Celery("fault-test-beat", broker=broker_url, set_as_current=False)

    def send(self, task: str) -> None:
        self.app.send_task(task)

    def close(self) -> None:
        self.app.close()
