"""A realistic, deterministic 30-day history for the demo organisation, as v1 wire-format events.

Several agents with nested tools and steps, an Untracked share, OpenAI / Anthropic / Google models
(prompt caching, reasoning tokens, embeddings), a vector-DB span with a client-reported cost, 24
customers with a long tail, failures followed by retries, a self-hosted model nobody has a price
for (unpriced, never $0), and a web-search spike in the last day for the insights detectors.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

CUSTOMERS = [
    "acme-corp", "globex", "initech", "umbrella", "hooli", "stark-industries", "wayne-enterprises", "wonka",
    "soylent", "tyrell", "cyberdyne", "aperture", "black-mesa", "massive-dynamic", "oscorp", "pied-piper",
    "vandelay", "dunder-mifflin", "gringotts", "monsters-inc", "nakatomi", "prestige-worldwide", "sterling-cooper",
    "duff-beer",
]
LATENCY_MS = {  # (mean, spread) per model
    "gpt-4o": (1800, 900), "gpt-4o-mini": (700, 350), "claude-sonnet-4-5": (2600, 1200),
    "claude-haiku-4-5": (800, 400), "gemini-2.5-flash": (600, 300), "gemini-2.5-pro": (5200, 2500),
    "text-embedding-3-small": (120, 60), "llama-3.1-70b-internal": (1400, 600),
}
ENDPOINTS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
             "google": "/v1beta/models/generateContent", "self-hosted": "/v1/chat/completions"}


class _Run:
    def __init__(self, rng: random.Random, start: datetime, run_id: str, customer: str | None, out: list, seq):
        self.rng, self.t, self.run_id, self.customer, self.out, self.seq = rng, start, run_id, customer, out, seq

    def call(self, path: str, provider: str, model: str, *, inp: tuple[int, int], out: tuple[int, int],
             cached: float = 0.0, cache_write: float = 0.0, reasoning: tuple[int, int] | None = None,
             span_type: str = "llm", endpoint: str | None = None, fail_rate: float = 0.02, **extra) -> None:
        rng = self.rng
        input_tokens = rng.randint(*inp)
        output_tokens = rng.randint(*out) if out[1] else 0
        reasoning_tokens = rng.randint(*reasoning) if reasoning else 0
        mean, spread = LATENCY_MS.get(model, (900, 400))
        attempts = 1
        if rng.random() < fail_rate:
            attempts = rng.choice((2, 2, 3))
        for attempt in range(attempts):
            failed = attempt < attempts - 1
            status = rng.choice(("rate_limited", "error", "timeout")) if failed else "ok"
            latency = max(40.0, rng.gauss(mean, spread)) if not failed else rng.uniform(80, 600)
            event: dict[str, Any] = {
                "event_id": f"demo-{next(self.seq):06d}", "run_id": self.run_id, "section_path": path,
                "span_type": span_type, "provider": provider, "model": model,
                "endpoint": endpoint or ENDPOINTS.get(provider, "/v1/chat/completions"),
                "input_tokens": input_tokens if not failed else 0,
                "output_tokens": output_tokens + reasoning_tokens if not failed else 0,
                "latency_ms": round(latency, 1), "status": status,
                "http_status": {"ok": 200, "rate_limited": 429, "error": 500, "timeout": None}[status],
                "timestamp": self.t.isoformat().replace("+00:00", "Z"),
                "stream": span_type == "llm" and rng.random() < 0.3,
            }
            if not failed:
                if cached:
                    event["cached_input_tokens"] = int(input_tokens * rng.uniform(cached * 0.5, cached))
                if cache_write and rng.random() < 0.3:
                    event["cache_write_tokens"] = int(input_tokens * cache_write)
                if reasoning_tokens:
                    event["reasoning_tokens"] = reasoning_tokens
            if self.customer:
                event["customer_id"] = self.customer
            event.update(extra)
            self.out.append(event)
            self.t += timedelta(milliseconds=latency + rng.uniform(5, 120))


def _researcher(run: _Run, spike: bool) -> None:
    rng = run.rng
    run.call("agent:researcher", "anthropic", "claude-sonnet-4-5", inp=(1500, 4000), out=(200, 600),
             cached=0.6, cache_write=0.3)
    for _ in range(rng.randint(1, 3) * (3 if spike else 1)):
        run.call("agent:researcher/tool:web_search", "openai", "gpt-4o-mini", inp=(2000, 9000), out=(100, 400),
                 cached=0.3)
    run.call("agent:researcher/tool:retrieve", "openai", "text-embedding-3-small", inp=(200, 1200), out=(0, 0),
             span_type="embedding", endpoint="/v1/embeddings")
    run.call("agent:researcher/tool:summarize", "openai", "gpt-4o", inp=(3000, 12000), out=(300, 1200), cached=0.2)


def _writer(run: _Run, spike: bool) -> None:
    rng = run.rng
    run.call("agent:writer/step:outline", "openai", "gpt-4o", inp=(800, 2500), out=(200, 700))
    for _ in range(rng.randint(1, 2)):
        run.call("agent:writer/step:draft", "anthropic", "claude-sonnet-4-5", inp=(4000, 16000), out=(800, 2500),
                 cached=0.7, cache_write=0.2)
    if rng.random() < 0.6:
        run.call("agent:writer/tool:fact_check", "google", "gemini-2.5-flash", inp=(2000, 6000), out=(100, 300),
                 reasoning=(50, 400))


def _support(run: _Run, spike: bool) -> None:
    rng = run.rng
    run.call("agent:support/tool:classify", "google", "gemini-2.5-flash", inp=(300, 900), out=(5, 40))
    run.call("agent:support/tool:kb_lookup", "pinecone", "serverless-query", inp=(0, 0), out=(0, 0),
             span_type="vector_db", endpoint="/query", cost_usd=f"{rng.uniform(0.00002, 0.0002):.6f}",
             metadata={"read_units": rng.randint(2, 12)})
    if rng.random() < 0.12:
        run.call("agent:support/step:escalate", "google", "gemini-2.5-pro", inp=(3000, 9000), out=(400, 1200),
                 reasoning=(500, 3000))
    else:
        run.call("agent:support/step:answer", "anthropic", "claude-haiku-4-5", inp=(1200, 4000), out=(150, 500),
                 cached=0.5)


def _analyst(run: _Run, spike: bool) -> None:
    # A self-hosted model: no public price, so these calls are "unpriced", never $0.
    run.call("agent:analyst/tool:sql", "self-hosted", "llama-3.1-70b-internal", inp=(1500, 5000), out=(100, 600))
    run.call("agent:analyst", "openai", "gpt-4o-mini", inp=(1000, 3000), out=(100, 400))


def _untracked(run: _Run, spike: bool) -> None:
    rng = run.rng
    model = rng.choice(("gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "claude-haiku-4-5"))
    provider = "anthropic" if model.startswith("claude") else "openai"
    for _ in range(rng.choice((1, 1, 2))):
        run.call("", provider, model, inp=(500, 5000), out=(50, 600))


KINDS = [(_researcher, 0.27), (_writer, 0.18), (_support, 0.30), (_analyst, 0.05), (_untracked, 0.20)]


def demo_events(*, now: datetime, seed: int = 7, days: int = 30, runs_per_day: int = 42) -> list[dict[str, Any]]:
    """Wire-format event dicts over the `days` before `now`, oldest first; same seed + now = same events."""
    rng = random.Random(seed)
    now = now.astimezone(timezone.utc)
    seq = iter(range(1, 10**7))
    weights = [1 / (i + 1) ** 1.1 for i in range(len(CUSTOMERS))]
    out: list[dict[str, Any]] = []
    start_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = start_day
    n_run = 0
    while day < now:
        growth = 0.7 + 0.6 * (day - start_day).days / max(days, 1)  # usage grows over the month
        weekday = 0.6 if day.weekday() >= 5 else 1.0
        count = max(1, int(runs_per_day * growth * weekday * rng.uniform(0.85, 1.15)))
        for _ in range(count):
            # business hours peak (UTC 8-20)
            hour = rng.choices(range(24), weights=[1 if h < 7 or h > 21 else 4 for h in range(24)])[0]
            start = day + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            if start >= now - timedelta(minutes=2) or start < now - timedelta(days=days):
                continue
            kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
            customer = None if rng.random() < 0.1 else rng.choices(CUSTOMERS, weights=weights)[0]
            n_run += 1
            run = _Run(rng, start, f"run_{seed}_{n_run:05d}_{rng.getrandbits(24):06x}", customer, out, seq)
            # The web-search spike covers the 24 h before `now`, whatever the time of day (not "today").
            kind(run, now - start <= timedelta(days=1) and kind is _researcher)
        day += timedelta(days=1)
    cutoff = now + timedelta(minutes=30)
    out = [e for e in out if e["timestamp"] <= cutoff.isoformat().replace("+00:00", "Z")]
    out.sort(key=lambda e: e["timestamp"])
    return out
