"""The read API over rollups and run summaries: exact shapes of DESIGN §4b, tenant-scoped."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc)
GPT4O = 1000 * 2_500_000 + 200 * 10_000_000  # pico-USD of the default event below ($0.0045)


def ev(**fields):
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
            "timestamp": (NOW - timedelta(minutes=10)).isoformat()}
    base.update(fields)
    return base


@pytest.fixture
def history(org, ingest_key, post_events, prices):
    events = [
        ev(event_id="r1a", run_id="run-1", section_path="agent:researcher/tool:search", customer_id="acme",
           latency_ms=200),
        ev(event_id="r1b", run_id="run-1", section_path="agent:researcher", customer_id="acme",
           timestamp=(NOW - timedelta(minutes=9)).isoformat()),
        ev(event_id="r2a", run_id="run-2", section_path="agent:writer", status="error", http_status=500,
           timestamp=(NOW - timedelta(minutes=8)).isoformat()),
        ev(event_id="r3a", run_id="run-3", model="gpt-4o-mini", input_tokens=1000, output_tokens=1000,
           timestamp=(NOW - timedelta(minutes=7)).isoformat()),
        ev(event_id="r4a", run_id="run-4", model="unknown-model", timestamp=(NOW - timedelta(minutes=6)).isoformat()),
        # Two days ago: inside 7d, outside 24h; the previous 24h period for the summary.
        ev(event_id="old", run_id="run-old", timestamp=(NOW - timedelta(hours=30)).isoformat()),
    ]
    response = post_events(ingest_key, events)
    assert response.json()["accepted"] == 6
    return events


def test_summary_is_exact_and_compares_with_previous_period(api, read_key, history):
    body = api(read_key).get("/v1/stats/summary", window="24h").json()
    # 3 gpt-4o calls ($0.0045 each) + 1 gpt-4o-mini call ($0.00075) + 1 unpriced call.
    assert body == {"cost_usd": "0.01425", "calls": 5, "avg_cost_usd": "0.00285", "previous_cost_usd": "0.0045",
                    "change_pct": 216.7, "unpriced_calls": 1}


def test_money_is_plain_decimal_never_exponent(api, read_key, org, ingest_key, post_events, prices):
    post_events(ingest_key, [ev(event_id="tiny", model="gpt-4o-mini", input_tokens=1, output_tokens=0)])
    assert api(read_key).get("/v1/stats/summary").json()["cost_usd"] == "0.00000015"


def test_breakdown_by_agent_has_untracked_row(api, read_key, history):
    rows = api(read_key).get("/v1/stats/breakdown", by="agent").json()["results"]
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {"agent:researcher", "agent:writer", None}
    assert by_key["agent:researcher"]["label"] == "researcher"
    assert by_key["agent:researcher"]["cost_usd"] == "0.009" and by_key["agent:researcher"]["calls"] == 2
    assert by_key[None]["label"] == "Untracked" and by_key[None]["calls"] == 2
    assert rows[0]["key"] == "agent:researcher"  # ordered by cost
    assert abs(sum(r["share"] for r in rows) - 1) < 0.001


def test_breakdown_by_section_customer_provider_model(api, read_key, history):
    client = api(read_key)
    sections = {r["key"]: r["label"] for r in client.get("/v1/stats/breakdown", by="section").json()["results"]}
    assert sections["agent:researcher/tool:search"] == "agent:researcher/tool:search" and sections[None] == "Untracked"
    customers = {r["key"]: r for r in client.get("/v1/stats/breakdown", by="customer").json()["results"]}
    assert customers["acme"]["calls"] == 2 and customers[None]["label"] == "(no customer)"
    providers = client.get("/v1/stats/breakdown", by="provider").json()["results"]
    assert [(r["key"], r["calls"]) for r in providers] == [("openai", 5)]
    models = {r["key"]: r["cost_usd"] for r in client.get("/v1/stats/breakdown", by="model").json()["results"]}
    assert models["unknown-model"] == "0" and models["gpt-4o-mini"] == "0.00075"


def test_timeseries_has_every_bucket(api, read_key, history):
    buckets = api(read_key).get("/v1/stats/timeseries", window="7d", interval="day").json()["buckets"]
    assert len(buckets) in (8, 9)
    assert buckets[-1]["t"] == NOW.strftime("%Y-%m-%d")
    days = {b["t"]: b["values"] for b in buckets}
    assert days[(NOW - timedelta(hours=30)).strftime("%Y-%m-%d")].get("openai")
    assert any(b["values"] == {} for b in buckets)
    hourly = api(read_key).get("/v1/stats/timeseries", window="24h", interval="hour", by="agent").json()["buckets"]
    assert len(hourly) == 25 and hourly[0]["t"].endswith(":00:00Z")


def test_runs_list_filters_and_paginates(api, read_key, history):
    client = api(read_key)
    runs = client.get("/v1/runs").json()
    assert [r["run_id"] for r in runs["results"]] == ["run-4", "run-3", "run-2", "run-1"] and runs["next"] is None
    run1 = runs["results"][3]
    assert run1["calls"] == 2 and run1["cost_usd"] == "0.009" and run1["errors"] == 0
    assert runs["results"][0]["cost_usd"] is None and runs["results"][0]["unpriced_calls"] == 1
    assert [r["run_id"] for r in client.get("/v1/runs", customer_id="acme").json()["results"]] == ["run-1"]
    assert [r["run_id"] for r in client.get("/v1/runs", section="agent:res").json()["results"]] == ["run-1"]
    assert [r["run_id"] for r in client.get("/v1/runs", status="error").json()["results"]] == ["run-2"]
    assert [r["run_id"] for r in client.get("/v1/runs", status="ok").json()["results"]] == ["run-4", "run-3", "run-1"]
    assert [r["run_id"] for r in client.get("/v1/runs", model="gpt-4o-mini").json()["results"]] == ["run-3"]
    assert len(client.get("/v1/runs", window="7d").json()["results"]) == 5
    page = client.get("/v1/runs", limit=3).json()
    assert len(page["results"]) == 3 and page["next"].startswith("http://testserver/v1/runs?")
    cursor = page["next"].split("cursor=")[1].split("&")[0]
    rest = client.get("/v1/runs", limit=3, cursor=cursor).json()
    assert [r["run_id"] for r in rest["results"]] == ["run-1"] and rest["next"] is None


def test_run_detail_has_events_and_section_tree(api, read_key, history):
    body = api(read_key).get("/v1/runs/run-1").json()
    assert [e["event_id"] for e in body["events"]] == ["r1a", "r1b"]
    assert body["events"][0]["cost_usd"] == "0.0045" and body["events"][0]["section"] == "tool:search"
    assert body["sections"] == [{
        "path": "agent:researcher", "name": "agent:researcher", "cost_usd": "0.009", "calls": 2,
        "children": [{"path": "agent:researcher/tool:search", "name": "tool:search", "cost_usd": "0.0045",
                      "calls": 1, "children": []}],
    }]
    assert body["started_at"] < body["ended_at"]
    untracked = api(read_key).get("/v1/runs/run-3").json()["sections"]
    assert untracked[0]["path"] == "" and untracked[0]["name"] == "Untracked"


def test_export_streams_csv_and_json(api, read_key, history):
    response = api(read_key).get("/v1/export", format="csv", window="7d")
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 6 and list(rows[0])[0] == "event_id" and list(rows[0])[-1] == "cost_usd"
    assert rows[0]["event_id"] == "old" and rows[0]["cost_usd"] == "0.0045"
    response = api(read_key).get("/v1/export", format="json", section="agent:researcher")
    events = json.loads(b"".join(response.streaming_content))
    assert [e["event_id"] for e in events] == ["r1a", "r1b"]


def test_ingest_key_gets_403_and_missing_key_401(api, ingest_key, history):
    response = api(ingest_key).get("/v1/runs")
    assert response.status_code == 403 and "read" in response.json()["detail"]
    assert api(None).get("/v1/stats/summary").status_code == 401


def test_bad_parameters_get_400(api, read_key):
    client = api(read_key)
    assert client.get("/v1/stats/summary", window="1y").status_code == 400
    assert client.get("/v1/stats/breakdown", by="color").status_code == 400
    assert client.get("/v1/runs", since="yesterday").status_code == 400
    assert client.get("/v1/runs", since="2026-01-02", until="2026-01-01").status_code == 400


def test_custom_window_rounds_out_to_hours(api, read_key, history):
    since = (NOW - timedelta(hours=31)).isoformat()
    until = (NOW - timedelta(hours=29)).isoformat()
    runs = api(read_key).get("/v1/runs", since=since, until=until).json()["results"]
    assert [r["run_id"] for r in runs] == ["run-old"]


def test_other_tenants_see_nothing(api, other_read_key, history):
    client = api(other_read_key)
    assert client.get("/v1/runs/run-1").status_code == 404
    assert client.get("/v1/runs").json()["results"] == []
    assert client.get("/v1/stats/breakdown", by="agent").json()["results"] == []
    assert client.get("/v1/stats/summary").json()["calls"] == 0
    assert b"".join(client.get("/v1/export", format="json").streaming_content) == b"[]"


def test_inactive_org_gets_402_when_billing_is_on(api, read_key, settings):
    settings.LLMOBSERVE_BILLING_ENABLED = True
    response = api(read_key).get("/v1/stats/summary")
    assert response.status_code == 402 and "subscription" in response.json()["detail"]


def test_schema_and_docs_are_served_locally(client):
    schema = client.get("/v1/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200 and "/v1/events" in schema.content.decode()
    for path in ("/v1/stats/latency", "/v1/stats/errors", "latency_p95"):
        assert path in schema.content.decode()
    docs = client.get("/v1/docs").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


def test_long_windows_combine_daily_and_hourly_rollups_exactly(api, read_key, ingest_key, post_events, prices):
    """Whole days are read from the daily rollups, the partial edge days from the hourly ones."""
    from analytics.windows import Window

    window = Window.named("7d")
    hours_back = [1, 5, 23, 30, 47, 70, 100, 130, 150, 167, 168, 200]  # inside and outside, edges included
    events = [ev(event_id=f"h{h}", timestamp=(NOW - timedelta(hours=h, minutes=1)).isoformat()) for h in hours_back]
    post_events(ingest_key, events)
    inside = [e for e in events if datetime.fromisoformat(e["timestamp"]) >= window.start]
    summary = api(read_key).get("/v1/stats/summary", window="7d").json()
    assert summary["calls"] == len(inside)
    assert summary["cost_usd"] == f"{len(inside) * GPT4O / 10**12:.4f}".rstrip("0")
    days = api(read_key).get("/v1/stats/timeseries", window="7d").json()["buckets"]
    per_day = {}
    for e in inside:
        day = e["timestamp"][:10]
        per_day[day] = per_day.get(day, 0) + GPT4O
    assert {b["t"]: b["values"].get("openai") for b in days if b["values"]} == {
        d: f"{c / 10**12:.4f}".rstrip("0") for d, c in per_day.items()}
    since = (NOW - timedelta(hours=150)).isoformat()
    until = (NOW - timedelta(hours=4)).isoformat()
    custom = api(read_key).get("/v1/stats/breakdown", by="provider", since=since, until=until).json()["results"]
    start = (NOW - timedelta(hours=150)).replace(minute=0, second=0, microsecond=0)
    end = (NOW - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    expected = sum(1 for e in events if start <= datetime.fromisoformat(e["timestamp"]) < end)
    assert custom[0]["calls"] == expected
