"""The insights job past 2**63 pico-USD (≈ $9.2M): SQLite's SUM() raised "integer overflow" in the detectors.
Every money/token SUM there is now exact on SQLite (32-bit halves, analytics/sums.py) and PostgreSQL alike."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from analytics.insights.services import alert_settings_update
from analytics.models import Insight
from ingestion.money import pico_display, pico_to_usd

from .insights_helpers import raise_detector_errors, NOW, at

pytestmark = pytest.mark.django_db
__all__ = ["raise_detector_errors"]  # autouse fixture: a failing detector fails the test

PER_EVENT = "999999.999999999999"  # the per-event cap on client-reported costs
PER_EVENT_PICO = 999_999_999_999_999_999
TOKENS = 1_000_000_000


def _event(i: int, *, when, run_id: str, model: str) -> dict:
    return {"event_id": f"big-{i}", "run_id": run_id, "span_type": "api", "provider": "pinecone", "model": model,
            "endpoint": "/query", "section_path": "agent:big/tool:query", "customer_id": "acme",
            "cost_usd": PER_EVENT, "input_tokens": TOKENS, "output_tokens": TOKENS, "cached_input_tokens": TOKENS,
            "timestamp": when.isoformat()}


@pytest.fixture
def fortune(org, ingest_key, post_events):
    """Two events three days back (the baseline), ten in the last 24 h on one model (five on each calendar day): the 24-h sum, the model's
    sum and the month-to-date sum each exceed 2**63 pico-USD (each event in its own run and hour, so no stored
    row does)."""
    events = [_event(i, when=at(3, 2 + i), run_id=f"base-{i}", model="index-b") for i in range(2)]
    events += [_event(10 + i, when=at(0, (1, 3, 5, 7, 9, 13, 15, 17, 19, 20)[i]), run_id=f"run-{i}", model="index-a") for i in range(10)]
    response = post_events(ingest_key, {"events": events})
    assert response.json()["accepted"] == 12, response.content
    alert_settings_update(org=org, spend_cap_usd="5000000")


def test_run_insights_past_int64_is_exact(org, fortune, api, read_key, member_client):
    out = StringIO()
    call_command("run_insights", "--org", org.slug, "--now", NOW.isoformat(), stdout=out)
    assert "insight(s)" in out.getvalue()
    insights = {i.kind: i for i in Insight.objects.for_org(org)}
    assert {"section_spike", "spend_cap"} <= set(insights)

    cur, base = 10 * PER_EVENT_PICO, 2 * PER_EVENT_PICO
    avg = base // 3  # three days of baseline history
    spike = insights["section_spike"]
    assert spike.evidence["last_24h_usd"] == pico_to_usd(cur) == "9999999.99999999999"
    assert spike.evidence["baseline_total_usd"] == pico_to_usd(base)
    assert spike.evidence["extra_usd"] == pico_to_usd(cur - avg) == spike.evidence["amount_usd"]
    assert f"{pico_display(cur)} in the last 24 h" in spike.title and f"(+{pico_display(cur - avg)})" in spike.title
    assert spike.amount_pico == 2**63 - 1  # the bigint column's maximum; the exact amount is in the evidence
    assert spike.amount_exact_pico == cur - avg and spike.amount_usd == pico_to_usd(cur - avg)
    assert f"\tsection_spike\t{pico_display(cur - avg)}\t" in out.getvalue()

    cap = insights["spend_cap"]
    assert cap.evidence["month_to_date_usd"] == pico_to_usd(12 * PER_EVENT_PICO) == "11999999.999999999988"
    assert cap.evidence["cap_usd"] == "5000000" and "$12,000,000.00 of $5,000,000.00" in cap.title
    assert cap.evidence["top_section"] == "agent:big/tool:query" and cap.evidence["top_model"] == "index-a"
    org.refresh_from_db()
    assert org.over_cap

    api_amounts = {i["kind"]: i["amount_usd"] for i in api(read_key).get("/v1/insights").json()["results"]}
    assert api_amounts["section_spike"] == pico_to_usd(cur - avg)
    assert api_amounts["spend_cap"] == "11999999.999999999988"
    page = member_client.get(f"/o/{org.slug}/insights/").content.decode()
    assert f'title="${pico_to_usd(cur - avg)}">{pico_display(cur - avg)}</span> at stake' in page


def test_retry_loop_and_model_sums_past_int64_do_not_overflow(org, fortune, ingest_key, post_events):
    """Five looping runs on the cheap model beside the per-model SUMs over TraceEvent past 2**63."""
    events = [{**_event(100 + 10 * r + i, when=at(1, 2 + i), run_id=f"loop-{r}", model="index-b"),
               "cost_usd": "1"} for r in range(5) for i in range(5)]
    assert post_events(ingest_key, {"events": events}).json()["accepted"] == 25
    out = StringIO()
    call_command("run_insights", "--org", org.slug, "--now", NOW.isoformat(), stdout=out)
    loop = Insight.objects.for_org(org).get(kind="retry_loop")
    assert loop.evidence["looping_runs"] == 5 and loop.evidence["worst_run_calls"] == 5
    assert loop.evidence["repeat_cost_usd"] == "20"  # four repeats at $1 in each of the five loops
    assert "$20.00 on repeats" in loop.title
