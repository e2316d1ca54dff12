"""The request's one write (`RawBatch.store`): the payload stored byte for byte, errors and logging as Django's own,
and on PostgreSQL a binary parameter into an lz4-compressed column (migration 0015)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingestion.models import RawBatch
from ingestion.otlp import spans_decode

from .otlp_export import chat, new_trace_id, protobuf

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL: bytea and lz4")


def _store(org_id: int, payload: bytes, event_count: int = 3) -> RawBatch:
    return RawBatch.store(org_id=org_id, kind=RawBatch.Kind.EVENTS, api_key_id=7, payload=payload,
                          event_count=event_count, received_at=timezone.now())


def test_every_byte_of_the_payload_is_stored_and_the_batch_is_pending(org):
    payload = bytes(range(256)) * 64 + b"\\x00'\"\\\\"  # NULs, quotes, backslashes and what looks like escapes
    with CaptureQueriesContext(connection) as queries:
        batch = _store(org.pk, payload)
    assert [q["sql"].split("(")[0].replace('"', "").strip() for q in queries] == ["INSERT INTO ingestion_rawbatch"]
    stored = RawBatch.objects.for_org(org).get()
    assert stored.pk == batch.pk and bytes(stored.payload) == payload
    assert (stored.kind, stored.api_key_id, stored.event_count, stored.state) == ("events", 7, 3, "pending")
    assert (stored.attempts, stored.last_error, stored.failed_events) == (0, "", 0)


def test_a_stored_export_keeps_its_spans(org, ingest_key, client):
    body = protobuf([chat(new_trace_id(), input_tokens=10, output_tokens=2,
                         start=timezone.now() - timedelta(minutes=1))])
    response = client.post("/v1/otlp/v1/traces", data=body, content_type="application/x-protobuf",
                           HTTP_AUTHORIZATION=f"Bearer {ingest_key}")
    assert response.status_code == 200
    spans = spans_decode(bytes(RawBatch.objects.for_org(org).get(kind="otlp").payload))
    assert [(s.call.model, s.call.input_tokens, s.call.output_tokens) for s in spans] == [("gpt-4o", 10, 2)]


@postgresql_only
def test_a_database_error_is_djangos_so_the_views_answer_it(org):
    """The OTLP view answers django.db's OperationalError/InterfaceError with a 503: the statement runs through
    Django's error wrapping, not raw psycopg errors."""
    with pytest.raises(IntegrityError):
        _store(org.pk, b"{}", event_count=-1)  # the column's CHECK (event_count >= 0) refuses it


@postgresql_only
def test_payloads_are_compressed_with_lz4(org):
    with connection.cursor() as cursor:
        cursor.execute("SELECT attcompression FROM pg_attribute WHERE attrelid = 'ingestion_rawbatch'::regclass "
                       "AND attname = 'payload'")
        assert cursor.fetchone()[0] == "l"
        batch = _store(org.pk, b'{"provider":"openai","model":"gpt-4o","input_tokens":1200}' * 2000)
        cursor.execute("SELECT pg_column_compression(payload) FROM ingestion_rawbatch WHERE id = %s", [batch.pk])
        assert cursor.fetchone()[0] == "lz4"
