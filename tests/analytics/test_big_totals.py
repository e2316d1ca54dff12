"""Issue 12: totals past 2**63 pico-USD (≈ $9.2M) read exactly on every page and endpoint, on SQLite (whose
SUM() raises "integer overflow" there) as on PostgreSQL. Money stays integer pico-USD end to end."""

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from ingestion.money import pico_to_usd

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc)
PER_EVENT = "999999.999999999999"  # just under the per-event cap of $1,000,000 on client-reported costs
PER_EVENT_PICO = 999_999_999_999_999_999
COUNT = 12
TOTAL_PICO = COUNT * PER_EVENT_PICO
assert TOTAL_PICO > 2**63


@pytest.fixture
def fortune(org, ingest_key, post_events):
    """12 events at the maximum, each in its own hour and rollup key (no stored row exceeds 64 bits; only sums
    across rows do), one provider for all so grouped sums overflow too."""
    events = [{"event_id": f"big-{i}", "run_id": f"run-{i}", "span_type": "api", "provider": "pinecone",
               "model": f"index-{i}", "section_path": f"agent:a{i}/tool:query", "customer_id": f"cust-{i}",
               "cost_usd": PER_EVENT, "input_tokens": 1_000_000_000, "output_tokens": 1_000_000_000,
               "timestamp": (NOW - timedelta(hours=1 + 9 * i, minutes=5)).isoformat()} for i in range(COUNT)]
    response = post_events(ingest_key, {"events": events})
    assert response.json()["accepted"] == COUNT, response.content
    return events


def test_read_api_totals_above_int64_are_exact(api, read_key, fortune):
    client = api(read_key)
    summary = client.get("/v1/stats/summary", window="7d")
    assert summary.status_code == 200, summary.content
    assert summary.json()["cost_usd"] == "11999999.999999999988" == pico_to_usd(TOTAL_PICO)
    assert summary.json()["calls"] == COUNT
    assert summary.json()["avg_cost_usd"] == PER_EVENT

    for window in ("7d", "30d"):  # 30d reads the daily rollups
        [provider] = client.get("/v1/stats/breakdown", by="provider", window=window).json()["results"]
        assert (provider["key"], provider["cost_usd"], provider["calls"]) == ("pinecone", pico_to_usd(TOTAL_PICO), COUNT)
    customers = client.get("/v1/stats/breakdown", by="customer", window="7d").json()["results"]
    assert sorted(r["key"] for r in customers) == sorted(f"cust-{i}" for i in range(COUNT))
    assert {r["cost_usd"] for r in customers} == {PER_EVENT}

    per_day: dict[str, int] = defaultdict(int)
    for e in fortune:
        per_day[e["timestamp"][:10]] += PER_EVENT_PICO
    days = client.get("/v1/stats/timeseries", window="7d", interval="day").json()["buckets"]
    assert {b["t"]: b["values"]["pinecone"] for b in days if b["values"]} == {d: pico_to_usd(c) for d, c in per_day.items()}
    hours = client.get("/v1/stats/timeseries", window="7d", interval="hour", by="model").json()["buckets"]
    assert sum(len(b["values"]) for b in hours) == COUNT

    runs = client.get("/v1/runs", window="7d").json()["results"]
    assert len(runs) == COUNT and {r["cost_usd"] for r in runs} == {PER_EVENT}


@pytest.mark.parametrize("window", ["7d", "30d"])
def test_dashboard_pages_show_totals_above_int64(member_client, org, fortune, window):
    page = member_client.get(f"/o/{org.slug}/", {"window": window})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="overview-total-cost" title="$11999999.999999999988"' in html
    assert "$12,000,000.00" in html
    customers = member_client.get(f"/o/{org.slug}/customers/", {"window": window})
    assert customers.status_code == 200 and customers.content.decode().count('data-testid="customer-row"') == COUNT
    detail = member_client.get(f"/o/{org.slug}/customers/cust-0/", {"window": window})
    assert detail.status_code == 200 and f'title="${PER_EVENT} exactly"' in detail.content.decode()
    assert member_client.get(f"/o/{org.slug}/runs/", {"window": window}).status_code == 200
    assert member_client.get(f"/o/{org.slug}/export/", {"window": window}).status_code == 200
