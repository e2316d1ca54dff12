"""Demo history that makes every detector fire once, next to a steady agent that stays quiet.

`load_demo` calls `insight_demo_events(now=…)`, posts the events into the demo org through the
normal ingestion path, then `demo_cap_set(org=…)` (a cap the month-to-date spend sits at 85 %
of, so the 80 % spending-cap warning fires; with more than a few days of the month left, the month-end
projection crosses that cap too, so `spend_forecast` fires as well) and finally `insights_run(org=…)`.

Each pattern has a section of its own, which the steady history of `analytics.demo` never writes to:
what fires cannot depend on how that random history falls around `now` (the time of day, the
weekday). Every call sits 1–20 h into its day (day 0 = the last 24 h before `now`), except one
steady call a minute before `now`, so the month-to-date spend (the cap) is never empty, even just
after midnight on the 1st of a month.

All of it is priced by the standard OpenAI rows (gpt-4o at $2.50/$10 per 1M tokens, gpt-4o-mini
at $0.15/$0.60). Per section, with "day 0" = the last 24 h and days 1–7 = the baseline:

- agent:support/step:answer — 8 identical gpt-4o-mini calls a day: the steady agent, no insight.
- agent:researcher/tool:web_search — 4 gpt-4o calls ($0.01 each) a day, then 80 extra calls for
  customer acme in the last 24 h: section_spike (+$0.80, 21×), naming acme and gpt-4o.
- agent:writer/step:rewrite — 20 gpt-4o calls a day at 1,500 input tokens, 6,000 in the last 24 h:
  token_bloat (4×, ≈ $0.23 on the extra tokens; +$0.23 stays under the $0.50 spike minimum).
- agent:planner/tool:lookup — 2 runs a day, each calling /v1/chat/completions 6 times (a 500
  error, then 5 retries): retry_loop (p95 = 6 calls per run).
- agent:summarizer/step:summarize — 3 runs a day on gpt-4o-mini and 3 on gpt-4o, all ok:
  model_inefficiency (gpt-4o where gpt-4o-mini succeeds, ≈ $0.18 a week).
- agent:triage/step:classify — 10 gpt-4o-mini calls a day at 400 ms, one of them rate limited (429) every
  other day; in the last 24 h 12 calls: 6 ok at 1,500 ms, 4 rate limited (429) and 2 errors (500):
  error_spike (50% vs ≈ 6% of calls, naming rate_limited and HTTP 429/500) and latency_regression
  (p95 1,500 ms vs 400 ms). Too few calls to move the provider's rate or p95.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from accounts.models import Organization
from ingestion.money import PICO_PER_USD

from .detectors import CAP_WARNING_PCT, spend_cap_status
from .services import alert_settings_update

ENDPOINT = "/v1/chat/completions"
CUSTOMERS = ("acme", "globex", "initech")
DAYS = 8  # day 0 (the last 24 h) and a 7-day baseline


def _at(now: datetime, day: int, slot: int, slots: int) -> datetime:
    """Spread `slots` calls over hours 1–20 of a day (day 0 = the last 24 h), never on a window edge."""
    hours = 1 + 19 * (slot + 0.5) / slots
    return now - timedelta(days=day, hours=hours)


def insight_demo_events(*, now: datetime) -> list[dict[str, Any]]:
    """Wire-format events (DESIGN §4) for the last 8 days before `now`."""
    events: list[dict[str, Any]] = []

    def add(*, run_id: str, section: str, model: str, at: datetime, input_tokens: int, output_tokens: int,
            customer: str, status: str = "ok", http_status: int = 200, latency_ms: float = 900.0) -> None:
        events.append({
            "event_id": f"demo-ins-{len(events):05d}", "run_id": run_id, "section_path": section,
            "span_type": "llm", "provider": "openai", "model": model, "endpoint": ENDPOINT,
            "input_tokens": input_tokens, "output_tokens": output_tokens, "status": status,
            "http_status": http_status, "latency_ms": latency_ms, "customer_id": customer,
            "timestamp": at.isoformat(),
        })

    for day in range(DAYS):
        for i in range(8):  # steady (the day's first call a minute before `now`: some spend this month)
            at = now - timedelta(minutes=1) if day == 0 and i == 0 else _at(now, day, i, 8)
            add(run_id=f"demo-support-{day}-{i}", section="agent:support/step:answer", model="gpt-4o-mini",
                at=at, input_tokens=800, output_tokens=200, customer=CUSTOMERS[i % 3])
        for i in range(4):  # spike: the usual load…
            add(run_id=f"demo-research-{day}-{i}", section="agent:researcher/tool:web_search", model="gpt-4o",
                at=_at(now, day, i, 4), input_tokens=2000, output_tokens=500, customer=CUSTOMERS[(i + 1) % 3])
        for i in range(20):  # bloat
            add(run_id=f"demo-rewrite-{day}-{i}", section="agent:writer/step:rewrite", model="gpt-4o",
                at=_at(now, day, i, 20), input_tokens=6000 if day == 0 else 1500, output_tokens=300,
                customer=CUSTOMERS[i % 3])
        for i in range(2):  # retry loop: a failure, then five retries in the same run
            start = _at(now, day, i, 2)
            for call in range(6):
                failed = call == 0
                add(run_id=f"demo-plan-{day}-{i}", section="agent:planner/tool:lookup", model="gpt-4o",
                    at=start + timedelta(seconds=3 * call), input_tokens=1500, output_tokens=0 if failed else 200,
                    customer=CUSTOMERS[(day + i) % 3], status="error" if failed else "ok",
                    http_status=500 if failed else 200)
        for i in range(6):  # model choice: the same work on two models
            add(run_id=f"demo-summary-{day}-{i}", section="agent:summarizer/step:summarize",
                model="gpt-4o" if i % 2 else "gpt-4o-mini", at=_at(now, day, i, 6), input_tokens=2000,
                output_tokens=400, customer=CUSTOMERS[i % 3])
        triage = 12 if day == 0 else 10  # errors and latency: the last 24 h fail and slow down
        for i in range(triage):
            if day == 0:
                status, http, latency = (("ok", 200, 1500.0) if i < 6 else ("rate_limited", 429, 300.0) if i < 10
                                         else ("error", 500, 600.0))
            else:
                status, http, latency = ("rate_limited", 429, 300.0) if i == 0 and day % 2 else ("ok", 200, 400.0)
            add(run_id=f"demo-triage-{day}-{i}", section="agent:triage/step:classify", model="gpt-4o-mini",
                at=_at(now, day, i, triage), input_tokens=300, output_tokens=20, customer=CUSTOMERS[i % 3],
                status=status, http_status=http, latency_ms=latency)
    for i in range(80):  # … and the spike: 80 extra calls for one customer in the last 24 h
        add(run_id=f"demo-research-spike-{i}", section="agent:researcher/tool:web_search", model="gpt-4o",
            at=_at(now, 0, i, 80), input_tokens=2000, output_tokens=500, customer="acme")
    return events


def demo_cap_set(*, org: Organization, now: datetime | None = None, used_pct: int = 85) -> Decimal | None:
    """Set a monthly cap that the month-to-date spend is `used_pct` % of (the 80 % warning fires)."""
    mtd = spend_cap_status(org=org, now=now).month_to_date_pico
    if mtd <= 0:
        return None
    exact = Decimal(mtd) * 100 / used_pct / PICO_PER_USD
    cap = exact.quantize(Decimal("0.01"))
    if not cap or not CAP_WARNING_PCT * cap <= Decimal(mtd) * 100 / PICO_PER_USD < 100 * cap:
        # A few minutes into a month the spend is sub-cent: a cap in cents would be $0 or already passed.
        cap = exact.quantize(Decimal("0.000001"))
    alert_settings_update(org=org, spend_cap_usd=cap, now=now)
    return cap
