"""Issue 12: no query string, however odd, gets a 500 from the read API or the dashboard (hypothesis).
Bad dates get a clear 400 on the API and a form error on pages."""

import pytest
from hypothesis import given, settings, strategies as st

pytestmark = pytest.mark.django_db

API_PATHS = ["/v1/runs", "/v1/stats/summary", "/v1/stats/breakdown", "/v1/stats/timeseries", "/v1/insights",
             "/v1/export", "/v1/stats/latency", "/v1/stats/errors"]
PARAMS = ["window", "since", "until", "customer_id", "section", "status", "model", "agent", "cursor", "limit", "by",
          "interval", "format", "metric"]
ODD = ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:00:00-23:59",
       "2024-02-30", "2025-13-01", "2025-06-01T25:00:00", "2025-01-01T00:00:00+99:00", "-1", "0",
       "99999999999999999999999", "1e400", "NaN", "24h", "7d", "30d", "day", "hour", "csv", "json", "agent", "customer",
       "latency_p95", "error_rate", "calls", "section", "model", "MjAyNXwxMjM", "OTk5OS0xMi0zMVQwMDowMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "\x00", "a\x00b", "%00", "\n"]
# Query values are decoded text: anything but lone surrogates (which cannot be sent as UTF-8).
values = st.sampled_from(ODD) | st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
queries = st.dictionaries(st.sampled_from(PARAMS), values, max_size=5)


def _read(response):
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


@pytest.fixture
def some_data(org, ingest_key, post_events, prices):
    post_events(ingest_key, [{"run_id": f"r{i}", "customer_id": f"c{i}", "section_path": "agent:a/tool:t",
                              "provider": "openai", "model": "gpt-4o", "input_tokens": 10} for i in range(3)])


@settings(max_examples=40)
@given(path=st.sampled_from(API_PATHS), query=queries)
def test_read_api_never_answers_500(path, query, api, read_key, some_data):
    response = api(read_key).get(path, **query)
    _read(response)
    assert response.status_code in (200, 400), (response.status_code, response.content[:300])


@settings(max_examples=30)
@given(run_id=st.sampled_from(ODD) | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_run_detail_never_answers_500(run_id, api, read_key, some_data):
    from urllib.parse import quote

    response = api(read_key).get(f"/v1/runs/{quote(run_id, safe='')}")
    assert response.status_code in (200, 404), (response.status_code, response.content[:300])


@settings(max_examples=30)
@given(page=st.sampled_from(["", "runs/", "customers/", "export/", "customers/c1/", "runs/r1/", "performance/"]),
       query=queries)
def test_dashboard_pages_never_answer_500(page, query, member_client, org, some_data):
    response = member_client.get(f"/o/{org.slug}/{page}", query)
    _read(response)
    assert response.status_code in (200, 404), (response.status_code, response.content[:300])


@pytest.mark.parametrize("since, until, message", [
    ("2024-02-30", "", "since is not a valid date or time"),
    ("2025-06-01T25:00:00", "", "since is not a valid date or time"),
    ("2025-01-01T00:00:00+99:00", "", "since is not a valid date or time"),
    ("0001-01-01", "0001-01-02", "since must be between 2000-01-01 and 2999-12-31"),
    ("9999-12-30", "9999-12-31T23:59:59", "since must be between 2000-01-01 and 2999-12-31"),
    ("2025-01-01", "9999-12-31", "until must be between 2000-01-01 and 2999-12-31"),
    ("yesterday", "", "since must be an ISO 8601 date or datetime"),
])
def test_bad_dates_get_a_clear_400(since, until, message, api, read_key):
    for path in API_PATHS[:4] + ["/v1/export", "/v1/stats/latency", "/v1/stats/errors"]:
        response = api(read_key).get(path, since=since, until=until)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["window"].startswith(message)


@pytest.mark.parametrize("since, until", [("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31"),
                                          ("2025-01-01", "9999-12-31")])
@pytest.mark.parametrize("page", ["", "runs/", "customers/", "export/", "customers/c1/", "performance/"])
def test_bad_dates_are_a_form_error_on_pages(page, since, until, member_client, org, some_data):
    response = member_client.get(f"/o/{org.slug}/{page}", {"since": since, "until": until})
    assert response.status_code == 200
    assert "must be between 2000-01-01 and 2999-12-31" in response.content.decode()


@pytest.mark.parametrize("path, query", [
    ("/v1/insights", {"cursor": "99999999999999999999999"}),
    ("/v1/insights", {"cursor": "-99999999999999999999999"}),
    ("/v1/runs", {"cursor": "MjAyNS0wMS0wMVQwMDowMDowMCswMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}),
    ("/v1/runs", {"customer_id": "a\x00b"}), ("/v1/runs", {"section": "\x00"}), ("/v1/runs", {"model": "\x00"}),
    ("/v1/runs", {"agent": "\x00"}), ("/v1/runs", {"status": "\x00"}), ("/v1/export", {"customer_id": "\x00"}),
    ("/v1/export", {"model": "a\x00", "format": "json"}), ("/v1/runs/a%00b", {}),
])
def test_values_no_database_can_hold_are_answered_cleanly(path, query, api, read_key, some_data):
    response = api(read_key).get(path, **query)
    _read(response)
    assert response.status_code in (200, 400, 404), response.content[:300]


@pytest.mark.parametrize("page, query", [
    ("runs/", {"agent": "\x00"}), ("runs/", {"model": "a\x00"}), ("runs/", {"customer_id": "\x00"}),
    ("export/", {"agent": "\x00", "format": "csv"}), ("customers/a%00b/", {}), ("runs/a%00b/", {}),
    ("runs/", {"cursor": "MjAyNS0wMS0wMVQwMDowMDowMCswMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}),
])
def test_pages_answer_values_no_database_can_hold_cleanly(page, query, member_client, org, some_data):
    response = member_client.get(f"/o/{org.slug}/{page}", query)
    _read(response)
    assert response.status_code in (200, 404), response.content[:300]


@pytest.mark.parametrize("page", ["", "runs/", "customers/", "customers/c1/"])
def test_an_impossible_date_is_a_field_error_on_pages(page, member_client, org, some_data):
    response = member_client.get(f"/o/{org.slug}/{page}", {"since": "2024-02-30"})
    assert response.status_code == 200
    assert "Enter a valid date." in response.content.decode()
