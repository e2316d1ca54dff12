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
