"""/v1/stats/latency, /v1/stats/errors and /v1/stats/timeseries?metric=: latency percentiles and error
analysis read from the rollups' histograms and error counts, tenant-scoped, accurate to 2%."""

import math
import random
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

pytestmark = pytest.mark.django_db

# An awkward instant: 23:40 UTC on a month's last day (windows cross the day and the month).
NOW = datetime(2026, 10, 31, 23, 40, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def ev(i, **fields):
    base = {"event_id": f"e{i}", "run_id": f"run-{i % 7}", "provider": "openai", "model": "gpt-4o",
            "input_tokens": 1000, "output_tokens": 200, "timestamp": (NOW - timedelta(minutes=10)).isoformat()}
    base.update(fields)
    return base


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@pytest.fixture
def mixed(org, ingest_key, post_events, prices):
    events = [
        # gpt-4o: latencies 100..1000 ms; two streams with a time to first token
        *[ev(i, latency_ms=100.0 * (i + 1), section_path="agent:a/tool:x") for i in range(10)],
        ev(10, latency_ms=900, stream=True, ttft_ms=120, section_path="agent:a"),
        ev(11, latency_ms=800, stream=True, ttft_ms=80, section_path="agent:a"),
        # gpt-4o-mini: failing calls, untracked
        ev(12, model="gpt-4o-mini", status="rate_limited", http_status=429, latency_ms=50),
        ev(13, model="gpt-4o-mini", status="rate_limited", http_status=429),
        ev(14, model="gpt-4o-mini", status="error", http_status=500, latency_ms=30000),
        ev(15, model="gpt-4o-mini", status="timeout"),
        ev(16, model="gpt-4o-mini", status="cancelled", input_tokens=0, output_tokens=0),
        ev(17, model="gpt-4o-mini"),
    ]
    assert post_events(ingest_key, events).json()["accepted"] == len(events)
    return events


def test_latency_by_model_has_percentiles_max_mean_and_ttft(api, read_key, mixed):
    body = api(read_key).get("/v1/stats/latency", window="24h", by="model").json()
    assert body["by"] == "model"
    rows = {r["key"]: r for r in body["results"]}
    gpt = rows["gpt-4o"]
    assert gpt["label"] == "gpt-4o" and gpt["calls"] == 12
    lat = [100.0 * (i + 1) for i in range(10)] + [900, 800]
    for p in (50, 90, 95, 99):
        assert gpt["latency_ms"][f"p{p}"] == pytest.approx(nearest_rank(lat, p), rel=0.02)
    assert gpt["latency_ms"]["max"] == 1000
    assert gpt["latency_ms"]["mean"] == pytest.approx(sum(lat) / len(lat), abs=0.01)
    assert gpt["ttft_ms"]["calls"] == 2
    assert gpt["ttft_ms"]["p50"] == pytest.approx(80, rel=0.02)
    assert gpt["ttft_ms"]["p99"] == 120  # the top of the distribution: clamped to the exact maximum
    mini = rows["gpt-4o-mini"]
    assert mini["calls"] == 6 and mini["ttft_ms"] is None
    assert mini["latency_ms"]["max"] == 30000 and mini["latency_ms"]["mean"] == pytest.approx(15025)  # 2 with latency


def test_latency_by_section_has_an_untracked_row(api, read_key, mixed):
    rows = {r["key"]: r for r in api(read_key).get("/v1/stats/latency", by="section").json()["results"]}
    assert set(rows) == {"agent:a/tool:x", "agent:a", None}
    assert rows[None]["label"] == "Untracked" and rows[None]["calls"] == 6


def test_errors_by_model_counts_statuses_http_codes_and_failed_cost(api, read_key, mixed):
    body = api(read_key).get("/v1/stats/errors", window="24h", by="model").json()
    rows = {r["key"]: r for r in body["results"]}
    assert body["results"][0]["key"] == "gpt-4o-mini"  # the most failing first
    mini = rows["gpt-4o-mini"]
    assert mini["calls"] == 6 and mini["errors"] == 5 and mini["error_rate"] == pytest.approx(5 / 6, abs=1e-4)
    assert mini["by_status"] == {"error": 1, "rate_limited": 2, "timeout": 1, "cancelled": 1}
    assert mini["by_http_status"] == {"429": 2, "500": 1}
    # gpt-4o-mini at $0.15 / $0.60 per 1M: four failed calls billed 1000 in + 200 out, one with no tokens
    assert mini["cost_of_failed_calls_usd"] == "0.00108"
    gpt = rows["gpt-4o"]
    assert gpt["errors"] == 0 and gpt["error_rate"] == 0 and gpt["by_http_status"] == {}
    assert gpt["cost_of_failed_calls_usd"] == "0"


@pytest.fixture
def endpoints(org, ingest_key, post_events, prices):
    chat, emb = "/v1/chat/completions", "/v1/embeddings"
    events = [
        ev(0, endpoint=chat, latency_ms=100),
        ev(1, endpoint=chat, latency_ms=300, status="rate_limited", http_status=429),
        ev(2, endpoint=chat, latency_ms=500, status="rate_limited", http_status=429),
        ev(3, endpoint=emb, model="text-embedding-3-small", latency_ms=40),
        ev(4, endpoint=emb, model="text-embedding-3-small", latency_ms=60),
        # the same path at another provider: its own row, the same key
        ev(5, provider="azure", endpoint=chat, latency_ms=700, status="error", http_status=500),
        ev(6, provider="anthropic", model="claude-sonnet-4", endpoint="/v1/messages", latency_ms=900,
           stream=True, ttft_ms=150),
        # no endpoint: one row whatever the provider
        ev(7, status="timeout", latency_ms=60000),
        ev(8, provider="anthropic", model="claude-sonnet-4"),
    ]
    assert post_events(ingest_key, events).json()["accepted"] == len(events)
    return events


def test_latency_by_endpoint_groups_provider_and_path_with_a_no_endpoint_row(api, read_key, endpoints):
    body = api(read_key).get("/v1/stats/latency", window="24h", by="endpoint").json()
    assert body["by"] == "endpoint"
    rows = {r["label"]: r for r in body["results"]}
    assert set(rows) == {"openai /v1/chat/completions", "openai /v1/embeddings", "azure /v1/chat/completions",
                         "anthropic /v1/messages", "(no endpoint)"}
    assert [r["label"] for r in body["results"]][:1] == ["openai /v1/chat/completions"]  # the busiest first
    assert {label: (r["key"], r["calls"]) for label, r in rows.items()} == {
        "openai /v1/chat/completions": ("/v1/chat/completions", 3),
        "openai /v1/embeddings": ("/v1/embeddings", 2),
        "azure /v1/chat/completions": ("/v1/chat/completions", 1),
        "anthropic /v1/messages": ("/v1/messages", 1),
        "(no endpoint)": (None, 2),
    }
    chat = rows["openai /v1/chat/completions"]["latency_ms"]
    assert chat["p50"] == pytest.approx(300, rel=0.02) and chat["max"] == 500 and chat["mean"] == 300
    assert rows["anthropic /v1/messages"]["ttft_ms"]["calls"] == 1
    assert rows["(no endpoint)"]["latency_ms"]["max"] == 60000 and rows["(no endpoint)"]["ttft_ms"] is None


def test_errors_by_endpoint_counts_statuses_and_http_codes(api, read_key, endpoints):
    results = api(read_key).get("/v1/stats/errors", window="24h", by="endpoint").json()["results"]
    assert [(r["label"], r["errors"]) for r in results[:3]] == [
        ("openai /v1/chat/completions", 2), ("azure /v1/chat/completions", 1), ("(no endpoint)", 1)]
    rows = {r["label"]: r for r in results}
    chat = rows["openai /v1/chat/completions"]
    assert chat["calls"] == 3 and chat["error_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert chat["by_status"] == {"error": 0, "rate_limited": 2, "timeout": 0, "cancelled": 0}
    assert chat["by_http_status"] == {"429": 2}
    # two failed gpt-4o calls of 1000 in + 200 out at $2.50 / $10 per 1M
    assert chat["cost_of_failed_calls_usd"] == "0.009"
    assert rows["azure /v1/chat/completions"]["by_http_status"] == {"500": 1}
    none = rows["(no endpoint)"]
    assert none["key"] is None and none["calls"] == 2 and none["by_status"]["timeout"] == 1
    assert rows["openai /v1/embeddings"]["errors"] == 0


def test_endpoint_does_not_change_the_timeseries_dimensions(api, read_key, endpoints):
    client = api(read_key)
    assert client.get("/v1/stats/timeseries", metric="calls", by="endpoint").status_code == 400
    assert client.get("/v1/stats/breakdown", by="endpoint").status_code == 400  # cost has no endpoint grain read


def test_timeseries_metrics_come_from_the_same_rollups(api, read_key, mixed):
    client = api(read_key)
    calls = client.get("/v1/stats/timeseries", window="24h", interval="hour", metric="calls").json()
    assert calls["metric"] == "calls" and len(calls["buckets"]) == 25  # 23:00 yesterday … 23:00 today
    assert calls["buckets"][-1]["values"] == {"openai": 18}
    rate = client.get("/v1/stats/timeseries", window="24h", interval="hour", metric="error_rate", by="model").json()
    assert rate["buckets"][-1]["values"]["gpt-4o-mini"] == pytest.approx(5 / 6, abs=1e-4)
    p95 = client.get("/v1/stats/timeseries", window="7d", metric="latency_p95", by="model").json()["buckets"]
    assert p95[-1]["values"]["gpt-4o"] == pytest.approx(1000, rel=0.02)
    assert all(b["values"] == {} for b in p95[:-1])
    cost = client.get("/v1/stats/timeseries", window="24h", interval="hour").json()
    assert cost["metric"] == "cost" and cost["buckets"][-1]["values"]["openai"]


def test_bad_parameters_are_400s(api, read_key, mixed):
    client = api(read_key)
    assert client.get("/v1/stats/latency", by="colour").status_code == 400
    assert client.get("/v1/stats/errors", window="1y").status_code == 400
    assert client.get("/v1/stats/timeseries", metric="latency_p42").status_code == 400


def test_another_org_sees_none_of_it(api, other_read_key, mixed):
    client = api(other_read_key)
    assert client.get("/v1/stats/latency", by="model").json()["results"] == []
    assert client.get("/v1/stats/errors", by="provider").json()["results"] == []
    assert client.get("/v1/stats/errors", by="endpoint").json()["results"] == []
    buckets = client.get("/v1/stats/timeseries", metric="error_rate").json()["buckets"]
    assert all(b["values"] == {} for b in buckets)


# --- accuracy: percentiles from merged histograms vs exact nearest-rank ---------------------------------

DISTRIBUTIONS = {
    "lognormal": lambda r: r.lognormvariate(6, 1.2),
    "exponential": lambda r: 1 + r.expovariate(1 / 800),
    "uniform": lambda r: r.uniform(1, 60_000),
    "bimodal": lambda r: r.gauss(150, 20) if r.random() < 0.8 else r.gauss(9000, 1500),
    "heavy_tail": lambda r: min(1 + r.paretovariate(1.1) * 50, 3_500_000),
}


@pytest.mark.parametrize("n", [10, 1000, 100_000])
def test_percentiles_are_within_two_percent_of_exact_nearest_rank(n, api, read_key, ingest_key, post_events, prices,
                                                                  settings):
    """Latencies of several distributions, spread over three days, sections and models (so the API merges
    many hourly and daily rollup rows), read back through the API within 2% of the exact percentile."""
    settings.LLMOBSERVE_MAX_EVENTS_PER_REQUEST = 20_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    rng = random.Random(n)
    names = list(DISTRIBUTIONS)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    events = []
    for i in range(n):
        name = names[i % len(names)]
        value = max(1.0, DISTRIBUTIONS[name](rng))
        latencies[name].append(value)
        events.append({"event_id": f"a{i}", "run_id": f"r{i % 50}", "provider": "openai", "model": name,
                       "section_path": f"agent:s{i % 3}", "latency_ms": value,
                       "timestamp": (NOW - timedelta(minutes=rng.randrange(3 * 24 * 60))).isoformat()})
    for start in range(0, n, 20_000):
        assert post_events(ingest_key, events[start:start + 20_000]).json()["accepted"] == len(events[start:start + 20_000])

    client = api(read_key)
    rows = {r["key"]: r for r in client.get("/v1/stats/latency", window="7d", by="model").json()["results"]}
    everything = client.get("/v1/stats/latency", window="7d", by="provider").json()["results"][0]
    for key, values, row in [*((name, latencies[name], rows.get(name)) for name in names if latencies[name]),
                             ("all", [v for vs in latencies.values() for v in vs], everything)]:
        assert row["calls"] == len(values), key
        for p in (50, 90, 95, 99):
            exact = nearest_rank(values, p)
            assert abs(row["latency_ms"][f"p{p}"] - exact) <= 0.02 * exact, (key, p, exact, row["latency_ms"])
        assert row["latency_ms"]["max"] == pytest.approx(max(values), abs=0.01)
