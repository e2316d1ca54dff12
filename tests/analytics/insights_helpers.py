"""Histories for the insight tests, posted through the real ingestion path with past timestamps."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

# A fixed moment in the past: the detectors judge by event timestamps, so back-filled history counts.
NOW = datetime(2026, 3, 18, 12, 30, tzinfo=timezone.utc)
_ids = itertools.count()

# Prices of the `prices` fixture, pico-USD per token.
GPT4O_IN, GPT4O_OUT = 2_500_000, 10_000_000
MINI_IN, MINI_OUT = 150_000, 600_000


def ev(*, section: str, at: datetime, model: str = "gpt-4o", run_id: str | None = None, input_tokens: int = 1000,
       output_tokens: int = 200, customer: str | None = None, status: str = "ok",
       endpoint: str = "/v1/chat/completions") -> dict:
    n = next(_ids)
    event = {"event_id": f"t-{n}", "run_id": run_id or f"run-{n}", "section_path": section, "provider": "openai",
             "model": model, "endpoint": endpoint, "input_tokens": input_tokens, "output_tokens": output_tokens,
             "status": status, "timestamp": at.isoformat()}
    if customer:
        event["customer_id"] = customer
    return event


def at(day: int, hour: float = 3, now: datetime = NOW) -> datetime:
    """`day` days before `now` (0 = inside the last 24 h), `hour` hours further back (keep 1 ≤ hour ≤ 20)."""
    return now - timedelta(days=day, hours=hour)


def daily(section: str, per_day: int, days=range(0, 8), now: datetime = NOW, **fields) -> list[dict]:
    """`per_day` identical calls on each day: a steady section."""
    return [ev(section=section, at=at(day, 1 + 19 * (i + 0.5) / per_day, now=now), **fields)
            for day in days for i in range(per_day)]


def post_all(post_events, key: str, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):
        response = post_events(key, events[start:start + 1000])
        assert response.status_code == 202, response.content
        assert response.json()["rejected"] == []


@pytest.fixture(autouse=True)
def raise_detector_errors(settings):
    """A broken detector fails the test instead of being logged and skipped (production behaviour)."""
    settings.LLMOBSERVE_INSIGHTS_RAISE = True
