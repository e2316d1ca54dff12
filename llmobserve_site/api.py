"""Site-wide API plumbing: the DRF exception handler and /health."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from ingestion.selectors import batches_backlog

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, plus: a 429 always carries Retry-After (DRF omits it when the wait is unknown)."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.Throttled):
        response["Retry-After"] = str(int(exc.wait or 1))
    return response


def _broker_status() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager"
    try:
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1).ping()
        return "ok"
    except Exception:  # any failure means the broker is unusable right now
        return "down"


@require_GET
def health(request):
    batches = None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
        batches = batches_backlog()
    except Exception:
        logger.exception("health: database check failed")
        database = "down"
    broker = _broker_status()
    ok = database == "ok" and broker != "down"
    # `batches`: unprocessed raw batches; a quarantined one needs an operator (admin → Raw batches → retry).
    body = {"status": "ok" if ok else "degraded", "database": database, "broker": broker, "batches": batches}
    return JsonResponse(body, status=200 if database == "ok" else 503)
