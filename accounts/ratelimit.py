"""Rate limits as sliding-window counters in the shared cache (Redis when REDIS_URL is set), for every app.

`window_hit(name, limit=…)` counts one hit of `name` and says whether it is within `limit` hits per `period`
seconds. The estimate over the last `period` seconds is the current window's count plus the previous window's,
weighted by the share of it those seconds still cover (the approximation Cloudflare's limiter and Redis's
documentation use). A hit over the limit is not counted, so a client that keeps retrying while throttled is let
in again as soon as the estimate allows.

Two small integers per name and one round trip to Redis a hit, whatever the rate. DRF's `SimpleRateThrottle`,
used before, keeps the time of every hit of the last minute in one cached list that it reads and writes whole on
every request: 239 µs of CPU a check for a key at 1,000 requests a minute, 127 µs now (bench/cache_ops.py).

While Redis fails, the cache (`llmobserve_site.failopen`) counts per process at the same rate.
"""

from __future__ import annotations

import math
import time

from django.core.cache import cache


def _counts(key: str, previous_key: str, timeout: int) -> tuple[int, int]:
    """(the current window's hits, this one included; the previous window's hits)."""
    pipelined = getattr(cache, "window_counts", None)  # FailOpenRedisCache: one round trip
    counts = pipelined(key, previous_key, timeout) if pipelined is not None else None
    if counts is not None:
        return counts
    cache.add(key, 0, timeout)
    try:
        current = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)
        current = 1
    return current, int(cache.get(previous_key) or 0)


def window_hit(name: str, *, limit: int, period: int = 60, now: float | None = None) -> int | None:
    """Count one hit of `name`: None when it is within `limit` hits per `period` seconds, else the whole seconds
    (≥ 1) until a hit would be (the refused hit is not counted)."""
    now = time.time() if now is None else now
    window = int(now // period)
    elapsed = now - window * period
    key = f"ratelimit:{name}:{window}"
    current, previous = _counts(key, f"ratelimit:{name}:{window - 1}", 2 * period)
    if previous * (period - elapsed) / period + current <= limit:
        return None
    try:
        cache.decr(key)
    except ValueError:  # expired meanwhile: nothing to take back
        pass
    return max(1, math.ceil(_seconds_until_allowed(current - 1, previous, limit, period, elapsed)))


def _seconds_until_allowed(current: int, previous: int, limit: int, period: int, elapsed: float) -> float:
    """When one more hit fits: later in this window, as the previous window's weight falls, or in the next one,
    where this window's `current` hits are the previous ones."""
    if limit < 1:
        return period - elapsed
    room = limit - current - 1  # what the previous window's weighted hits may still amount to
    if room >= 0:
        # previous × (period − e) / period ≤ room  ⇔  e ≥ period × (1 − room / previous)
        return max(0.0, period * (1 - room / previous) - elapsed) if previous else 0.0
    return period - elapsed + period * (1 - (limit - 1) / current)
