"""Issue 13 §2: one money module. A client-priced 4,512,345,678 pico-USD reads "$0.004512" on every page (the
exact "0.004512345678" on hover and in the API), and the module's parsers are exact or round, never truncate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingestion.money import PICO_PER_USD, pico_display, pico_to_usd, usd_to_pico

pytestmark = pytest.mark.django_db
NOW = datetime.now(timezone.utc)


def test_a_small_amount_reads_the_same_on_pages_and_exact_in_the_api(org, ingest_key, read_key, post_events, api,
                                                                    member_client):
    event = {"event_id": "small", "run_id": "run-small", "span_type": "api", "provider": "pinecone",
             "model": "idx", "section_path": "agent:writer", "cost_usd": "0.004512345678",
             "timestamp": (NOW - timedelta(minutes=5)).isoformat()}
    assert post_events(ingest_key, {"events": [event]}).json()["accepted"] == 1
    assert api(read_key).get("/v1/stats/summary", window="24h").json()["cost_usd"] == "0.004512345678"
    overview = member_client.get(f"/o/{org.slug}/").content.decode()
    assert 'data-testid="overview-total-cost" title="$0.004512345678">$0.004512<' in overview
    run_page = member_client.get(f"/o/{org.slug}/runs/run-small/").content.decode()
    assert '<span title="$0.004512345678 exactly">$0.004512</span>' in run_page
    assert "$0.0045<" not in overview + run_page


def test_client_costs_finer_than_a_pico_round_rather_than_truncate(org, ingest_key, read_key, post_events, api):
    events = [{"event_id": f"e{i}", "run_id": f"r{i}", "span_type": "api", "provider": "pinecone", "model": "idx",
               "cost_usd": "0.0000000000019", "timestamp": (NOW - timedelta(minutes=5)).isoformat()} for i in range(3)]
    assert post_events(ingest_key, {"events": events}).json()["accepted"] == 3
    assert api(read_key).get("/v1/stats/summary", window="24h").json()["cost_usd"] == "0.000000000006"


def test_the_display_rule_and_exact_conversions():
    assert PICO_PER_USD == 10**12
    cases = {675_000_000_000: "$0.675", 4_512_345_678: "$0.004512", 500_000_000_000: "$0.50",
             999_960_000_000: "$1.00", 1_234_565_000_000_000: "$1,234.57", 12 * 10**18: "$12,000,000.00",
             10**6: "$0.000001", 999_999: "<$0.000001", 0: "$0.00", -675_000_000_000: "-$0.675", None: "unpriced"}
    assert {pico: pico_display(pico) for pico in cases} == cases
    assert pico_to_usd(4_512_345_678) == "0.004512345678" and pico_to_usd(4_720_000_000) == "0.00472"
    assert pico_to_usd(12 * 10**18 - 12) == "11999999.999999999988" and pico_to_usd(None) is None
    assert usd_to_pico("0.675") == 675_000_000_000 and usd_to_pico("1E-12") == 1
    assert usd_to_pico("0.0000000000015", exact=False) == 2
    for bad in ("0.0000000000001", "NaN", "Infinity", "abc", 0.1):
        with pytest.raises(ValueError):
            usd_to_pico(bad)
