"""The Performance page: latency percentiles, TTFT, error rates and failed calls' cost from the rollups; every
row links to the filtered runs list; the run page shows a run's status mix and time to first token."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.urls import reverse

from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 23, 40, tzinfo=timezone.utc)  # 23:40 UTC on a month's last day


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def ev(i, **fields):
    base = {"event_id": f"p{i}", "run_id": "run-1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
            "output_tokens": 200, "latency_ms": 100 + i, "section_path": "agent:a/tool:x",
            "timestamp": (NOW - timedelta(minutes=30 + i)).isoformat()}
    base.update(fields)
    return base


@pytest.fixture
def history(org, ingest_key, post_events, prices):
    events = [ev(i) for i in range(20)] + [
        ev(20, stream=True, ttft_ms=240, latency_ms=2000, section_path="agent:b"),
        ev(21, run_id="run-2", model="gpt-4o-mini", status="rate_limited", http_status=429, section_path="agent:b",
           endpoint="/v1/chat/completions"),
        ev(22, run_id="run-2", model="gpt-4o-mini", status="error", http_status=500, section_path="agent:b",
           endpoint="/v1/chat/completions"),
        ev(23, run_id="run-2", model="gpt-4o-mini", section_path=""),
        ev(24, timestamp=(NOW - timedelta(days=3)).isoformat(), latency_ms=5000),
    ]
    assert post_events(ingest_key, events).json()["accepted"] == len(events)
    return events


def url(name, org, *args):
    return reverse(name, args=[org.slug, *args])


def test_performance_page_shows_percentiles_errors_and_failed_cost(member_client, org, history,
                                                                   django_assert_max_num_queries):
    # session, user, membership, org list, then at most 3 rollup parts for each of the page's three reads
    with django_assert_max_num_queries(15):
        response = member_client.get(url("performance", org), {"window": "24h"})
    html = response.content.decode()
    assert response.status_code == 200 and 'aria-current="page">Performance<' in html
    assert html.count('data-testid="perf-model-row"') == 2
    assert html.count('data-testid="perf-section-row"') == 3 and "Untracked" in html
    assert re.search(r'data-testid="perf-error-rate"[^>]*>8\.3%<', html)  # 2 of 24 calls in 24 h
    assert "1 rate_limited" in html and "HTTP 429 ×1" in html and "HTTP 500 ×1" in html
    ttft = re.search(r'Time to first token \(streams\)</div>\s*<div class="value">(\d+) ms<', html)
    assert abs(int(ttft.group(1)) - 240) <= 240 * 0.02 and "p50 of 1 streamed call " in html  # within 2%
    # rows link to the runs list, filtered
    # the top failing endpoints with their status mix: the runs list cannot filter by endpoint, so the row
    # links to the runs with a call of its most frequent failing status
    failing = re.findall(r'data-testid="failing-endpoint-row">(.*?)</tr>', html, re.S)
    assert len(failing) == 1 and "openai /v1/chat/completions" in failing[0]
    assert "1 rate_limited" in failing[0] and "1 error" in failing[0] and "HTTP 500 ×1" in failing[0]
    assert f'href="/o/{org.slug}/runs/?window=24h&amp;status=error"' in failing[0]  # a tie: by status name
    assert f'href="/o/{org.slug}/runs/?window=24h&amp;section=agent%3Ab"' in html
    latency = json.loads(re.search(r'id="latency-chart-data" type="application/json">(.*?)</script>', html).group(1))
    assert latency["kind"] == "line" and [s["name"] for s in latency["series"]] == ["p50", "p95", "p99"]
    p95 = latency["series"][1]["y"]
    assert len(p95) == 25 and p95[-1] == pytest.approx(110, rel=0.02)  # 23:00–23:40: 100–110 ms
    assert p95[-2] == pytest.approx(2000, rel=0.02) and p95[0] is None  # 22:xx holds the slow stream; 23:00 none


def test_window_switch_serves_the_panel_to_htmx_and_reaches_older_calls(member_client, org, history):
    partial = member_client.get(url("performance", org), {"window": "7d"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body and 'data-window="7d"' in body and "5.00 s" in body  # the 3-day-old slow call
    assert "HX-Request" in partial["Vary"]


def test_section_link_filters_the_runs_list(member_client, org, history):
    html = member_client.get(url("runs", org), {"window": "7d", "section": "agent:b"}).content.decode()
    assert "run-2" in html and "run-1" in html  # both runs called agent:b
    html = member_client.get(url("runs", org), {"window": "7d", "section": "agent:a"}).content.decode()
    assert "run-1" in html and "run-2" not in html


def test_another_orgs_member_gets_a_404(client, org, history):
    other = MembershipFactory(org=OrganizationFactory()).user
    client.force_login(other)
    assert client.get(url("performance", org)).status_code == 404


def test_run_page_shows_status_mix_and_ttft(member_client, org, history):
    html = member_client.get(url("run_detail", org, "run-2")).content.decode()
    assert 'data-testid="run-status-mix"' in html and "1 rate_limited" in html and "1 error" in html
    html = member_client.get(url("run_detail", org, "run-1")).content.decode()
    assert 'data-testid="run-ttft"' in html and "240 ms" in html
