"""Time windows aligned to UTC hours (rollups are hourly) and money formatting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


NAMED_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_WINDOW = "24h"
# Custom windows live in these years: events are never older than 2000 (ingestion refuses them), and the bounds
# keep every derived datetime (the previous period, hour rounding) far from datetime's own limits (years 1, 9999).
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)


class WindowError(ValueError):
    pass


def floor_hour(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    floored = floor_hour(value)
    return floored if floored == value.astimezone(timezone.utc) else floored + timedelta(hours=1)


@dataclass(frozen=True)
class Window:
    """[start, end): start on an hour boundary; end is now (named) or an hour boundary (custom)."""

    start: datetime
    end: datetime
    name: str = "custom"

    @property
    def previous(self) -> Window:
        return Window(start=self.start - (self.end - self.start), end=self.start, name=f"previous {self.name}")

    @property
    def hours(self) -> int:
        return max(1, int((ceil_hour(self.end) - self.start).total_seconds() // 3600))

    @classmethod
    def named(cls, name: str, *, now: datetime | None = None) -> Window:
        if name not in NAMED_WINDOWS:
            raise WindowError(f"window must be one of {', '.join(NAMED_WINDOWS)}")
        now = now or datetime.now(timezone.utc)
        return cls(start=floor_hour(now) - NAMED_WINDOWS[name], end=now, name=name)

    @classmethod
    def custom(cls, since: datetime, until: datetime | None = None, *, now: datetime | None = None) -> Window:
        now = now or datetime.now(timezone.utc)
        until = until or now
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        if until.tzinfo is None:
            until = until.replace(tzinfo=timezone.utc)
        for name, value in (("since", since), ("until", until)):
            if not EARLIEST <= value < LATEST:
                last = LATEST - timedelta(days=1)
                raise WindowError(f"{name} must be between {EARLIEST:%Y-%m-%d} and {last:%Y-%m-%d}")
        if until <= since:
            raise WindowError("until must be after since")
        if until - since > timedelta(days=400):
            raise WindowError("a custom window spans at most 400 days")
        return cls(start=floor_hour(since), end=ceil_hour(until), name="custom")


def window_from_params(params, *, now: datetime | None = None) -> Window:
    """`window=24h|7d|30d` or `since=&until=` (ISO 8601). Raises WindowError with a clear message."""
    from django.utils.dateparse import parse_date, parse_datetime

    def parse(name: str) -> datetime | None:
        raw = (params.get(name) or "").strip()
        if not raw:
            return None
        try:
            value = parse_datetime(raw.replace(" ", "+")) if "T" in raw or ":" in raw else None
            if value is None:
                day = parse_date(raw)
                if day is None:
                    raise WindowError(f"{name} must be an ISO 8601 date or datetime, e.g. 2025-06-01 or "
                                      "2025-06-01T12:00:00Z")
                value = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            # An offset far from UTC can push year 1 or 9999 out of range: normalise here, where it is caught.
            return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
        except WindowError:
            raise
        except (ValueError, OverflowError) as exc:  # well-formed but impossible: 2025-02-30, hour 25, offset +99:00
            raise WindowError(f"{name} is not a valid date or time: {exc}") from None

    since, until = parse("since"), parse("until")
    if since is not None:
        return Window.custom(since, until, now=now)
    if until is not None:
        raise WindowError("until needs since")
    return Window.named(params.get("window") or DEFAULT_WINDOW, now=now)
