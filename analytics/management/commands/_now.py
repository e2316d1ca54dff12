"""`--now` for the commands that judge or build history as of a moment (`load_demo`, `run_insights`)."""

from __future__ import annotations

from datetime import datetime, timezone

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

NOW_HELP = "Judge as of this moment, ISO 8601 with a timezone (e.g. 2026-11-29T23:40:00Z); default: the current time."


def now_arg(text: str | None) -> datetime | None:
    """An ISO 8601 datetime with a timezone (Z or an offset) as UTC, or None when not given."""
    if not text:
        return None
    try:
        when = parse_datetime(text.strip())
    except ValueError:  # well-formed but impossible (month 13, 25 o'clock)
        when = None
    if when is None or when.tzinfo is None:
        raise CommandError("--now must be an ISO 8601 datetime with a timezone, e.g. 2026-11-29T23:40:00Z")
    return when.astimezone(timezone.utc)
