"""GET /v1/insights: the §4b shape, status filter, pagination, key scope and tenant isolation."""

from __future__ import annotations

import pytest

from analytics.insights.services import insight_dismiss, insights_run

from .insights_helpers import raise_detector_errors, NOW, at, daily, ev, post_all

pytestmark = pytest.mark.django_db
__all__ = ["raise_detector_errors"]  # autouse fixture

KEYS = {"id", "kind", "title", "section", "model", "customer_id", "amount_usd", "evidence", "detected_at", "status"}


@pytest.fixture
def insights(org, ingest_key, post_events, prices):
    """Four detectors' worth of back-filled history, run at NOW."""
    events = (daily("agent:researcher", 2) + [ev(section="agent:researcher", at=at(0, 2), customer="acme")
                                              for _ in range(150)]
              + daily("agent:writer", 10, days=range(1, 8)) + daily("agent:writer", 10, days=[0], input_tokens=4000)
              + [ev(section="agent:sum", model=model, at=at(n % 4, 3)) for model, count in
                 (("gpt-4o-mini", 4), ("gpt-4o", 30)) for n in range(count)])
    post_all(post_events, ingest_key, events)
    found = insights_run(org=org, now=NOW)
    assert len(found) == 3
    return found


def test_shape_is_exactly_the_contract(api, read_key, insights):
    response = api(read_key).get("/v1/insights")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next"} and body["next"] is None
    assert len(body["results"]) == 3
    for item in body["results"]:
        assert set(item) == KEYS and item["status"] == "open" and item["detected_at"] == "2026-03-18T12:30:00Z"
    spike = next(i for i in body["results"] if i["kind"] == "section_spike")
    assert spike["section"] == "agent:researcher" and spike["customer_id"] == "acme" and spike["model"] == "gpt-4o"
    assert spike["amount_usd"] == "0.675" and spike["evidence"]["last_24h_usd"] == "0.684"
    waste = next(i for i in body["results"] if i["kind"] == "model_inefficiency")
    assert waste["customer_id"] is None and waste["model"] == "gpt-4o"
    assert [i["id"] for i in body["results"]] == sorted((i["id"] for i in body["results"]), reverse=True)


def test_status_filter(api, read_key, org, insights):
    insight_dismiss(org=org, insight_id=insights[0].id)
    client = api(read_key)
    assert len(client.get("/v1/insights", status="open").json()["results"]) == 2
    dismissed = client.get("/v1/insights", status="dismissed").json()["results"]
    assert [i["id"] for i in dismissed] == [insights[0].id] and dismissed[0]["status"] == "dismissed"
    bad = client.get("/v1/insights", status="everything")
    assert bad.status_code == 400 and "status" in bad.json()


def test_pagination_follows_next(api, read_key, insights):
    client = api(read_key)
    first = client.get("/v1/insights", limit=2).json()
    assert len(first["results"]) == 2 and first["next"].startswith("http://testserver/v1/insights?")
    second = client.get(first["next"].replace("http://testserver", "")).json()
    assert len(second["results"]) == 1 and second["next"] is None
    ids = [i["id"] for i in first["results"] + second["results"]]
    assert len(set(ids)) == 3
    assert client.get("/v1/insights", cursor="x").status_code == 400


def test_ingest_key_gets_403_and_no_key_401(api, ingest_key, insights):
    response = api(ingest_key).get("/v1/insights")
    assert response.status_code == 403 and "read" in response.json()["detail"]
    assert api(None).get("/v1/insights").status_code == 401


def test_another_org_sees_no_insights(api, other_read_key, insights):
    body = api(other_read_key).get("/v1/insights").json()
    assert body == {"results": [], "next": None}
    assert api(other_read_key).get("/v1/insights", status="dismissed").json()["results"] == []


def test_insights_are_in_the_openapi_schema(client):
    assert "/v1/insights" in client.get("/v1/schema", {"format": "json"}).content.decode()


def test_admin_lists_insights_and_deliveries(admin_client):
    assert admin_client.get("/admin/analytics/insight/").status_code == 200
    assert admin_client.get("/admin/analytics/alertdelivery/").status_code == 200


def test_insights_urls_keep_their_paths_and_names_and_live_in_analytics_insights():
    """Issue 13 §6: the insights views, API and URLs moved into analytics/insights/; URLs and names unchanged."""
    from django.urls import resolve, reverse

    paths = {"api-insights": ({}, "/v1/insights", "analytics.insights.api"),
             "insights": ({"slug": "acme"}, "/o/acme/insights/", "analytics.insights.views"),
             "insights_panel": ({"slug": "acme"}, "/o/acme/insights/panel/", "analytics.insights.views"),
             "insight_dismiss": ({"slug": "acme", "insight_id": 7}, "/o/acme/insights/7/dismiss/",
                                 "analytics.insights.views"),
             "alert_settings": ({"slug": "acme"}, "/o/acme/settings/alerts/", "analytics.insights.views"),
             "alert_test": ({"slug": "acme"}, "/o/acme/settings/alerts/test/", "analytics.insights.views")}
    for name, (kwargs, path, module) in paths.items():
        assert reverse(name, kwargs=kwargs) == path
        match = resolve(path)
        assert match.url_name == name and match.func.__module__ == module
