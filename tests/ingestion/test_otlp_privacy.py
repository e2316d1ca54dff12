"""Prompts, completions and header values in OTLP spans never reach the database, the logs or the export;
what we keep (source, reported cost) is visible on the call."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from django.apps import apps
from django.db import connection

from ingestion.models import TraceEvent

from .otlp_export import S, chat, new_trace_id, otlp_json, protobuf
from .test_otlp_ingest import post_otlp  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

SECRETS = ("PROMPT-Zanzibar-4411", "COMPLETION-Quokka-9902", "sk-live-HEADER-7731", "MESSAGES-Axolotl-55",
           "EVENT-BODY-Narwhal-08", "RESOURCE-Tapir-313", "TOOLARGS-Okapi-77")


def _span_with_content(trace, start):
    call = chat(trace, start=start, input_tokens=40, output_tokens=4, **{
        "gen_ai.prompt.0.content": SECRETS[0], "gen_ai.prompt.0.role": "user",
        "gen_ai.completion.0.content": SECRETS[1],
        "ai.request.headers.authorization": f"Bearer {SECRETS[2]}",
        "gen_ai.input.messages": json.dumps([{"role": "user", "content": SECRETS[3]}]),
        "gen_ai.tool.call.arguments": SECRETS[6],
        "llmobserve.customer_id": "acme",
    })
    call.events.append(("gen_ai.content.prompt", {"gen_ai.prompt": SECRETS[4]}))
    return call


def _everything_stored() -> str:
    """Every row of every table the apps own, as text (binary payloads decoded)."""
    dump = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            if table not in connection.introspection.table_names():
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("utf-8", "replace")
                    dump.append(str(value))
    return "\n".join(dump)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_prompts_and_headers_leave_no_trace(encoding, org, ingest_key, read_key, prices, post_otlp, api, caplog):
    caplog.set_level(logging.DEBUG)
    trace = new_trace_id()
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    call = _span_with_content(trace, start)
    resource = {"service.name": "app", "secret.note": SECRETS[5]}
    body = protobuf([call], resource=resource) if encoding == "protobuf" else otlp_json([call], resource=resource)
    ctype = "application/x-protobuf" if encoding == "protobuf" else "application/json"
    assert post_otlp(ingest_key, body, content_type=ctype).status_code == 200
    assert TraceEvent.objects.for_org(org).get().customer_id == "acme"

    stored = _everything_stored()
    exported = "".join(part.decode() for part in api(read_key).get("/v1/export", format="csv",
                                                                    window="24h").streaming_content)
    run = api(read_key).get(f"/v1/runs/{trace}").content.decode()
    assert "acme" in stored and "acme" in exported and "acme" in run  # the dumps do hold what we keep
    for secret in SECRETS:
        assert secret not in stored
        assert secret not in exported
        assert secret not in run
        assert secret not in caplog.text


def test_source_and_reported_cost_are_on_the_call_in_the_export_the_read_api_and_the_run_page(
        org, ingest_key, read_key, prices, post_otlp, api, member_client):
    trace = new_trace_id()
    call = chat(trace, start=datetime.now(timezone.utc) - timedelta(minutes=1), input_tokens=1000,
                **{"gen_ai.usage.cost": "0.004"})
    call.scope = "openlit"
    post_otlp(ingest_key, protobuf([call]))

    rows = json.loads(b"".join(api(read_key).get("/v1/export", format="json", window="24h").streaming_content))
    assert rows[0]["source"] == "otlp:openlit"
    assert (rows[0]["cost_usd"], rows[0]["reported_cost_usd"]) == ("0.0025", "0.004")
    csv_text = b"".join(api(read_key).get("/v1/export", format="csv", window="24h").streaming_content).decode()
    header = csv_text.splitlines()[0].split(",")
    assert "source" in header and "reported_cost_usd" in header
    detail = api(read_key).get(f"/v1/runs/{trace}").json()
    assert detail["events"][0]["source"] == "otlp:openlit"
    assert detail["events"][0]["reported_cost_usd"] == "0.004"
    page = member_client.get(f"/o/{org.slug}/runs/{trace}/").content.decode()
    assert "otlp:openlit" in page and "reported $0.004" in page
