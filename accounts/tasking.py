"""The house way to declare and to queue background work, for every app.

`house_task` is Celery's `shared_task` with our rules: every task is idempotent, so it is
acknowledged late and re-delivered when its worker dies; transient failures (the database or the
broker unreachable, a network error) are retried automatically with exponential backoff and jitter,
a bounded number of times; anything else is a bug or bad data and is not retried blindly.

`enqueue_on_commit` queues a task *by name* once the current transaction commits, so a service
never imports its app's `tasks` module (no import cycles) and a task never sees uncommitted rows.
A broker outage is logged, never raised: durable state (a pending batch, an unsent delivery) is
picked up later by the beat-scheduled sweepers.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import kombu.exceptions
import psycopg
import redis.exceptions
from celery import current_app, shared_task
from django.db import InterfaceError, OperationalError, transaction

logger = logging.getLogger(__name__)

# Worth another try later: the work itself is fine, something it needs is briefly unavailable.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,  # connection lost, server restarting, lock or statement timeout
    InterfaceError,  # connection already closed
    psycopg.OperationalError,  # the same, raised by a raw psycopg call (COPY) that Django does not wrap
    psycopg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,  # broker unreachable when a task queues another
    ConnectionError,
    TimeoutError,
)
MAX_RETRIES = 5
RETRY_BACKOFF_MAX = 600  # seconds: 1, 2, 4, 8, 16 s … (with full jitter), never more than 10 minutes


def house_task(*, name: str, max_retries: int = MAX_RETRIES,
               autoretry_for: tuple[type[BaseException], ...] = TRANSIENT_ERRORS, **options: Any) -> Callable:
    """Declare a task: `@house_task(name="app.tasks.thing")`. The explicit name is what callers queue by."""
    return shared_task(name=name, acks_late=True, reject_on_worker_lost=True, autoretry_for=autoretry_for,
                       retry_backoff=True, retry_backoff_max=RETRY_BACKOFF_MAX, retry_jitter=True,
                       max_retries=max_retries, **options)


def enqueue(name: str, *args: Any, **kwargs: Any) -> bool:
    """Queue the task called `name` now; False (logged) when the broker cannot take it."""
    try:
        if name not in current_app.tasks:  # a web process imports the apps' tasks modules on first use
            current_app.loader.import_default_modules()
        current_app.tasks[name].apply_async(args=args, kwargs=kwargs)
    except Exception:  # noqa: BLE001 - a dead broker (or an eager failure) must not fail the caller
        logger.exception("could not queue %s%r; its sweeper or beat job will pick the work up", name, args)
        return False
    return True


def enqueue_on_commit(name: str, *args: Any, **kwargs: Any) -> None:
    """Queue the task called `name` after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: enqueue(name, *args, **kwargs))


# --- drains: one queued task per kind of pending work, not one per request -----------------------
#
# A drain task takes all the pending work of its key (an org's pending batches, say), group by group. Queuing one
# per request wastes the worker: a backed-up queue then holds many tasks whose work an earlier one already took,
# each costing Celery's receive, hand-over and ack (~5 ms of CPU: bench/drain_task_cost.py). So a request queues
# a drain only if none is waiting: a flag in the broker's Redis, set (NX) by the request *after* its commit and
# cleared by the task *before* it reads its work. Set → a waiting task will read this request's work. Not set →
# this request queues one. Any Redis error, or no Redis broker (eager tasks), means: queue the task.

DRAIN_FLAG_TTL = 30  # seconds: a flag whose task is lost (or stuck behind a long queue) expires; nothing waits on it
DRAIN_FLAGS_REST = 5.0  # seconds without flags after a Redis error: a hung Redis costs one timeout, not one a request
_drain_clients: dict[str, Any] = {}
_drain_flags_failed_at = [-DRAIN_FLAGS_REST]


def _drain_flags():
    """The broker's Redis client for drain flags, or None when drains are not debounced (no Redis broker, eager
    tasks, or a Redis error less than DRAIN_FLAGS_REST ago)."""
    url = current_app.conf.broker_url or ""
    if current_app.conf.task_always_eager or not url.startswith(("redis://", "rediss://")):
        return None
    if time.monotonic() - _drain_flags_failed_at[0] < DRAIN_FLAGS_REST:
        return None
    client = _drain_clients.get(url)
    if client is None:  # redis-py's pool re-creates its connections in a forked child
        client = _drain_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    return client


def drains_debounced() -> bool:
    """True when `enqueue_drain` may skip a task (so a drain must queue its own successor when work remains)."""
    return _drain_flags() is not None


def _drain_flag(key: str) -> str:
    return f"llmobserve:drain:{key}"


def enqueue_drain(name: str, *args: Any, drain_key: str, **kwargs: Any) -> bool:
    """Queue the drain task `name` unless one for `drain_key` is queued and has not started; False (logged) when
    the broker cannot take it. Call it after the work it announces is committed."""
    flags = _drain_flags()
    if flags is not None:
        try:
            if not flags.set(_drain_flag(drain_key), 1, nx=True, ex=DRAIN_FLAG_TTL):
                return True  # the waiting task reads this work when it starts
        except redis.exceptions.RedisError:
            _drain_flags_failed_at[0] = time.monotonic()
            flags = None  # unknown: queue the task
    if enqueue(name, *args, **kwargs):
        return True
    if flags is not None:  # no task is queued after all: the next request must queue one
        try:
            flags.delete(_drain_flag(drain_key))
        except redis.exceptions.RedisError:
            pass  # it expires; the sweeper processes the work meanwhile
    return False


def enqueue_drain_on_commit(name: str, *args: Any, drain_key: str, **kwargs: Any) -> None:
    transaction.on_commit(lambda: enqueue_drain(name, *args, drain_key=drain_key, **kwargs))


def drain_started(drain_key: str) -> None:
    """A drain task starting, before it reads its work: work committed from now on queues a task of its own."""
    flags = _drain_flags()
    if flags is None:
        return
    try:
        flags.delete(_drain_flag(drain_key))
    except redis.exceptions.RedisError:
        _drain_flags_failed_at[0] = time.monotonic()
        logger.warning("drain flag %s not cleared; it expires in %s s", drain_key, DRAIN_FLAG_TTL, exc_info=True)
