"""GET /metrics: exact counters after real requests, backlog gauges from the database, and its protection."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.metrics import EXPOSED_NAMES
from ingestion.models import RawBatch
from tests.conftest import make_price


def ev(i: int, **fields) -> dict:
    return {"event_id": f"m-{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5,
            **fields}


REQ = "llmobserve_ingest_requests_total"


def test_counters_move_by_exactly_what_the_requests_did(org, ingest_key, post_events, scrape, settings, prices):
    before = scrape()
    # 1 request: 5 valid + 3 rejected (two bad token counts, one non-object).
    batch = [ev(i) for i in range(5)] + [ev(90, input_tokens=-1), ev(91, output_tokens="x"), "not an event"]
    response = post_events(ingest_key, batch)
    assert response.status_code == 202 and response.json()["accepted"] == 5
    # 1 request: the same 5 again (accepted, stored once) and 2 new.
    assert post_events(ingest_key, [ev(i) for i in range(7)]).json()["accepted"] == 7
    assert post_events(None, [ev(100)]).status_code == 401
    assert post_events("llmo_not-a-key", [ev(101)]).status_code == 401
    settings.LLMOBSERVE_INGEST_RATE = 2  # the two 202s above filled this minute
    assert post_events(ingest_key, [ev(102)]).status_code == 429
    after = scrape()

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(REQ, endpoint="events", status=202) == 2
    assert delta(REQ, endpoint="events", status=401) == 2
    assert delta(REQ, endpoint="events", status=429) == 1
    assert delta("llmobserve_ingest_request_seconds_count", endpoint="events") == 5
    assert delta("llmobserve_events_accepted_total") == 12
    assert delta("llmobserve_events_rejected_total", reason="input_tokens") == 1
    assert delta("llmobserve_events_rejected_total", reason="output_tokens") == 1
    assert delta("llmobserve_events_rejected_total", reason="event") == 1
    # Processing stored 7 new events (5 + 2); the 5 re-sent ones are not counted twice.
    assert delta("llmobserve_events_processed_total") == 7
    assert delta("llmobserve_event_lag_seconds_count") == 7
    assert delta("llmobserve_tasks_total", task="ingestion.tasks.batch_process", outcome="success") == 2


def test_rejection_reasons_are_a_bounded_set(ingest_key, post_events, scrape):
    before = scrape()
    response = post_events(ingest_key, [{"provider": "openai", "model": "m", "unknown_field_" + "x" * 40: 1,
                                         "span_type": "bogus"}])
    assert response.status_code == 202 and response.json()["accepted"] == 0
    after = scrape()
    assert after.value("llmobserve_events_rejected_total", reason="span_type") - \
        before.value("llmobserve_events_rejected_total", reason="span_type") == 1
    reasons = {dict(labels)["reason"] for name, labels in after.samples if name == "llmobserve_events_rejected_total"}
    assert all(len(r) < 32 for r in reasons)


def test_an_empty_batch_and_a_bad_body_count_requests_not_events(ingest_key, post_events, scrape):
    before = scrape()
    assert post_events(ingest_key, []).status_code == 202
    assert post_events(ingest_key, b"{not json").status_code == 400
    assert post_events(ingest_key, "[]", content_type="text/plain").status_code == 415
    after = scrape()
    assert after.value(REQ, endpoint="events", status=400) - before.value(REQ, endpoint="events", status=400) == 1
    assert after.value(REQ, endpoint="events", status=415) - before.value(REQ, endpoint="events", status=415) == 1
    assert after.value("llmobserve_events_accepted_total") == before.value("llmobserve_events_accepted_total")


def test_backlog_gauges_reflect_a_pending_and_a_quarantined_batch(org, scrape):
    now = timezone.now()
    assert scrape().value("llmobserve_batches_pending") == 0
    RawBatch.objects.create(org=org, payload=b"[]", event_count=3, received_at=now - timedelta(minutes=10))
    RawBatch.objects.create(org=org, payload=b"[]", event_count=1, received_at=now - timedelta(minutes=1))
    RawBatch.objects.create(org=org, payload=b"[]", event_count=2, received_at=now - timedelta(hours=3),
                            attempts=5, quarantined_at=now - timedelta(hours=2))
    RawBatch.objects.create(org=org, payload=b"[]", event_count=2, received_at=now - timedelta(hours=5),
                            processed_at=now - timedelta(hours=5))
    result = scrape()
    assert result.value("llmobserve_batches_pending") == 2
    assert result.value("llmobserve_batches_quarantined") == 1
    # the oldest *pending* one (the quarantined and processed batches are older but not waiting)
    assert 600 <= result.value("llmobserve_oldest_pending_batch_seconds") < 600 + 120


def test_price_book_reloads_are_counted(db, scrape, org, ingest_key, post_events):
    from ingestion.pricing import price_book_get

    price_book_get()
    before = scrape().value("llmobserve_price_book_reloads_total")
    make_price(provider="openai", model_match="gpt-metrics-test", input_mtok="1", output_mtok="2")
    price_book_get()
    assert scrape().value("llmobserve_price_book_reloads_total") - before == 1


def test_every_documented_metric_is_exposed(org, ingest_key, post_events, scrape):
    post_events(ingest_key, [ev(1)])
    names = scrape().names()
    for name in EXPOSED_NAMES:
        assert name in names


# --- protection -------------------------------------------------------------------------------------

def test_without_a_token_only_staff_see_metrics_everyone_else_gets_404(client, member, staff_user, settings):
    settings.LLMOBSERVE_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    client.force_login(member)
    assert client.get("/metrics").status_code == 404
    client.force_login(staff_user)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE llmobserve_batches_pending gauge" in response.content


def test_with_a_token_the_bearer_or_staff_get_in_and_a_wrong_token_is_a_401(client, member, settings):
    settings.LLMOBSERVE_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    for header in ({}, {"Authorization": "Bearer s3cret-tokeN"}, {"Authorization": "Basic s3cret-token"},
                   {"Authorization": "Bearer s3cret-token-and-more"}):
        response = client.get("/metrics", headers=header)
        assert response.status_code == 401, header
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"llmobserve_" not in response.content
    client.force_login(member)
    assert client.get("/metrics").status_code == 401
    assert client.post("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 405


def test_metrics_is_not_in_the_openapi_schema(client):
    schema = client.get("/v1/schema", headers={"Accept": "application/json"}).content.decode()
    assert "/v1/events" in schema
    assert "/metrics" not in schema and "/staff" not in schema


@pytest.mark.parametrize("path", ["/metrics"])
def test_the_text_response_keeps_the_security_headers_and_is_not_cached(client, staff_user, path):
    client.force_login(staff_user)
    response = client.get(path)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_alert_deliveries_are_counted_by_channel_and_outcome(org, member, ingest_key, post_events, prices, scrape,
                                                             settings, django_capture_on_commit_callbacks):
    from analytics.insights.services import alert_settings_update, insights_run
    from tests.analytics.insights_helpers import NOW, at, daily, ev as hist_ev, post_all

    settings.LLMOBSERVE_WEBHOOK_ALLOW_PRIVATE = settings.LLMOBSERVE_WEBHOOK_ALLOW_HTTP = True
    post_all(post_events, ingest_key, daily("agent:researcher", 2)
             + [hist_ev(section="agent:researcher", at=at(0, 2)) for _ in range(150)])
    alert_settings_update(org=org, alert_email=True, alert_webhook_url="http://127.0.0.1:1/hook")  # nothing listens
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        assert len(insights_run(org=org, now=NOW)) == 1
    after = scrape()

    def delta(**labels):
        return after.value("llmobserve_alerts_sent_total", **labels) - \
            before.value("llmobserve_alerts_sent_total", **labels)

    assert delta(channel="email", outcome="sent") == 1
    assert delta(channel="webhook", outcome="failed") == 1
    assert after.value("llmobserve_tasks_total", task="analytics.tasks.alert_send", outcome="success") - \
        before.value("llmobserve_tasks_total", task="analytics.tasks.alert_send", outcome="success") == 2


def test_each_processed_event_is_one_lag_observation_in_its_bucket(ingest_key, post_events, scrape, prices):
    import time_machine

    with time_machine.travel(timezone.now(), tick=False):  # received and processed at the same instant: lag 0
        before = scrape()
        assert post_events(ingest_key, [ev(200 + i) for i in range(4)]).json()["accepted"] == 4
        after = scrape()
    for le, moved in (("0.1", 4), ("+Inf", 4)):
        assert after.value("llmobserve_event_lag_seconds_bucket", le=le) - \
            before.value("llmobserve_event_lag_seconds_bucket", le=le) == moved
    assert after.value("llmobserve_event_lag_seconds_sum") == before.value("llmobserve_event_lag_seconds_sum")


def test_a_batch_the_sweeper_processes_late_is_observed_with_its_lag(org, ingest_key, post_events, scrape, prices,
                                                                     dead_broker, django_capture_on_commit_callbacks):
    import time_machine

    from ingestion.tasks import batches_sweep

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        before = scrape()
        assert post_events(ingest_key, [ev(300 + i) for i in range(3)]).json()["accepted"] == 3  # queued nowhere
    with time_machine.travel(start + timedelta(seconds=45), tick=False):
        assert scrape().value("llmobserve_oldest_pending_batch_seconds") == 45
        with django_capture_on_commit_callbacks(execute=True):  # counted when the sweep's work commits
            assert batches_sweep() == 3  # beat's sweeper, 45 s later
        after = scrape()
    for le, moved in (("30.0", 0), ("60.0", 3), ("+Inf", 3)):
        assert after.value("llmobserve_event_lag_seconds_bucket", le=le) - \
            before.value("llmobserve_event_lag_seconds_bucket", le=le) == moved, le
    # (the sum is a float accumulated by earlier tests too: compare the difference approximately)
    assert after.value("llmobserve_event_lag_seconds_sum") - before.value("llmobserve_event_lag_seconds_sum") == \
        pytest.approx(135)
    assert after.value("llmobserve_events_processed_total") - before.value("llmobserve_events_processed_total") == 3
    assert after.value("llmobserve_batches_pending") == 0


def test_otlp_requests_refused_spans_and_resolved_calls_are_counted(org, ingest_key, client, scrape, prices,
                                                                    django_capture_on_commit_callbacks):
    from datetime import datetime, timezone

    from tests.ingestion.otlp_export import S, new_trace_id, protobuf

    trace = new_trace_id()
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    agent = S("invoke_agent", trace, start=start, attrs={"gen_ai.operation.name": "invoke_agent",
                                                         "gen_ai.agent.name": "planner"})
    chat = S("chat gpt-4o", trace, parent=agent.span_id, start=start, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10})
    bad = S("chat", trace, span_id="abcd", parent=agent.span_id, start=start)  # a 2-byte span id is refused
    url = "/v1/otlp/v1/traces"
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.generic("POST", url, protobuf([chat, agent, bad]), content_type="application/x-protobuf",
                                  headers={"Authorization": f"Bearer {ingest_key}"})
    assert response.status_code == 200
    assert client.generic("POST", url, b"", content_type="application/x-protobuf").status_code == 401
    after = scrape()

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(REQ, endpoint="otlp", status=200) == 1
    assert delta(REQ, endpoint="otlp", status=401) == 1
    assert delta("llmobserve_events_rejected_total", reason="otlp_span") == 1
    assert delta("llmobserve_events_accepted_total") == 0  # spans are not events
    assert delta("llmobserve_events_processed_total") == 1  # the one call they resolve into
