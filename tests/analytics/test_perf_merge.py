"""The latency and error reads merge the rollups' count maps in the database (`histograms.CountsSum`) and read
dense histograms: the figures equal a merge, in Python, of every rollup row's stored maps, on both databases."""

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from analytics.performance import PerfRow, perf_columns, perf_rows
from analytics.selectors import rollup_grain, rollup_parts
from analytics.windows import Window
from ingestion import histograms
from ingestion.models import ROLLUP_GRAINS

pytestmark = pytest.mark.django_db

# 23:40 UTC on a month's last day: a 7-day window has partial edge days on both sides (hourly + daily parts).
NOW = datetime(2026, 10, 31, 23, 40, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def spread(org, ingest_key, post_events, prices):
    rng = random.Random(15)
    events = []
    for i in range(600):
        status = rng.choice(["ok"] * 6 + ["error", "rate_limited", "timeout"])
        stream = rng.random() < 0.3
        events.append({
            "event_id": f"m{i}", "run_id": f"r{i % 40}", "provider": rng.choice(["openai", "anthropic"]),
            "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]),
            "section_path": rng.choice(["", "agent:a", "agent:a/tool:x", "agent:b"]),
            "endpoint": rng.choice(["", "/v1/chat/completions", "/v1/messages"]),
            "latency_ms": rng.choice([None, 0.4, 3_700_000.0] + [rng.lognormvariate(6, 1.2) for _ in range(8)]),
            "stream": stream, "ttft_ms": rng.lognormvariate(5, 1) if stream else None, "status": status,
            "http_status": rng.choice([429, 500, 503, 400]) if status != "ok" else 200,
            "timestamp": (NOW - timedelta(minutes=rng.randrange(8 * 24 * 60))).isoformat()})
    assert post_events(ingest_key, events).json()["accepted"] == len(events)
    return events


def python_merge(org, window, group, interval):
    """The reference: every rollup row of the window's parts fetched and added in Python, map by map."""
    merged: dict[tuple, PerfRow] = {}
    for model, period, start, end in rollup_parts(window, hourly_only=interval == "hour",
                                                  grain=rollup_grain(group, customer_filter=False)):
        for values in model.objects.for_org(org).filter(**{f"{period}__gte": start, f"{period}__lt": end}).values(
                *group, period, *perf_columns()):
            bucket = values[period]
            if interval == "day":
                bucket = bucket.replace(hour=0)
            key = tuple(values[k] for k in group) + ((bucket,) if interval else ())
            merged.setdefault(key, PerfRow(key=key)).add(values)
    return merged


def figures(row):
    return (row.calls, row.errors, row.cost_pico, row.latency_calls, row.ttft_calls, row.status_error,
            row.status_rate_limited, row.status_timeout, row.http_4xx, row.http_5xx, row.failed_cost_pico,
            row.latency_ms_max, row.ttft_ms_max, row.http_codes, histograms.dense(row.latency_hist) or None,
            histograms.dense(row.ttft_hist) or None, round(row.latency_ms_sum, 6), round(row.ttft_ms_sum, 6),
            [row.latency(p) for p in (1, 50, 90, 95, 99, 100)], [row.ttft(p) for p in (50, 95, 99)])


@pytest.mark.parametrize("group,interval", [
    (("provider", "model"), "day"), (("provider", "model"), None), (("section_path",), None),
    (("provider", "endpoint"), None), (("model",), "hour"), ((), None), ((), "day")])
def test_the_database_merge_equals_merging_every_rollup_row_in_python(spread, org, group, interval):
    window = Window.named("7d", now=NOW)
    got = perf_rows(org=org, window=window, group=group, interval=interval)
    want = python_merge(org, window, group, interval)
    assert got and set(got) == set(want)
    for key, row in want.items():
        assert figures(got[key]) == figures(row), key


def test_an_empty_window_merges_to_nothing(org):
    window = Window.named("7d", now=NOW)
    assert perf_rows(org=org, window=window, group=()) == {}
    assert perf_rows(org=org, window=window, group=("provider", "model"), interval="day") == {}


@pytest.mark.parametrize("seed", range(20))
def test_a_dense_histogram_reads_the_same_percentiles_as_its_map(seed):
    rng = random.Random(seed)
    counts = {rng.randrange(histograms.SIZE): rng.randrange(1, 50) for _ in range(rng.randrange(1, 60))}
    max_ms = rng.choice([None, histograms.representative(max(counts)) * rng.uniform(0.9, 1.1)])
    dense = histograms.dense({str(k): n for k, n in counts.items()})
    assert len(dense) == histograms.SIZE
    assert histograms.dense(json.dumps(sorted(counts.items()))) == dense  # CountsSum's pairs
    for p in (0.1, 1, 25, 50, 90, 95, 99, 99.9, 100):
        assert histograms.percentile(dense, p, max_ms=max_ms) == histograms.percentile(counts, p, max_ms=max_ms)
    half = histograms.dense({k: n // 2 for k, n in counts.items()})
    assert histograms.dense_add(half, dense) == [a + b for a, b in zip(half, dense)]
    assert histograms.dense_add([], dense) == dense and histograms.dense_add(dense, []) == dense
    assert histograms.percentile([], 50) is None and histograms.percentile([0] * histograms.SIZE, 50) is None


def test_the_rollup_grains_that_the_reads_use_keep_histograms():
    from ingestion.models import RollupHistograms
    for group in [("provider", "model"), ("model",), ("section_path",), ("provider", "endpoint"), ()]:
        assert issubclass(ROLLUP_GRAINS[rollup_grain(group, customer_filter=False)][1], RollupHistograms)


@pytest.mark.parametrize("window_name,interval", [("7d", "day"), ("24h", "hour")])
def test_the_performance_page_figures_equal_regrouping_every_model_row_in_python(spread, org, window_name, interval):
    """The page reads totals, buckets, models and the chart each at its own grouping (and grain): every figure
    equals the one regrouped, in Python, from the provider × model × bucket rows of the agent grain."""
    from analytics.performance import _ms, performance_get
    from analytics.selectors import _buckets_step

    window = Window.named(window_name, now=NOW)
    page = performance_get(org=org, window=window, interval=interval, chart_models=2)
    rows = python_merge(org, window, ("provider", "model"), interval)

    def regrouped(key_of):
        out: dict[tuple, PerfRow] = {}
        for key, row in rows.items():
            out.setdefault(key_of(key), PerfRow()).merge(row)
        return out

    assert figures(page.totals) == figures(regrouped(lambda key: ())[()])
    per_model = regrouped(lambda key: key[:2])
    assert len(page.models) == len(per_model) > 2
    for entry in page.models:
        provider, model = entry.label.split(" / ")
        assert figures(entry.row) == figures(per_model[(provider, model)]), entry.label
    per_bucket = regrouped(lambda key: key[2:])
    per_model_bucket = regrouped(lambda key: (key[1], key[2]))
    assert [label for label, _ in page.buckets] == [label for _, label in _buckets_step(window, interval)]
    for (t, _), (_, row) in zip(_buckets_step(window, interval), page.buckets):
        assert figures(row) == figures(per_bucket.get((t,), PerfRow())), t
    assert list(page.model_p95) == [e.key for e in page.models[:2]]
    for model, p95s in page.model_p95.items():
        want = [per_model_bucket.get((model, t)) for t, _ in _buckets_step(window, interval)]
        assert p95s == [_ms(row.latency(95)) if row else None for row in want] and any(p95s), model


def test_perf_rows_refuses_a_grain_without_the_grouping(org):
    with pytest.raises(ValueError):
        perf_rows(org=org, window=Window.named("7d", now=NOW), group=("model",), grain="endpoint")
    with pytest.raises(ValueError):
        perf_rows(org=org, window=Window.named("7d", now=NOW), group=(), model_in=["gpt-4o"], grain="section")
