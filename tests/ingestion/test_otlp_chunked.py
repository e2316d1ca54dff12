"""Chunked OTLP bodies (Node's exporters send no Content-Length) are read under runserver (`make demo`) and
gunicorn (the Procfile), gzip or not; a chunked body a server cannot read is refused, never taken as empty."""

from __future__ import annotations

import gzip
import http.client
import os
import signal
import sys
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test import RequestFactory
from google.protobuf import json_format
from google.rpc.status_pb2 import Status

from ingestion.api import OtlpTracesView
from ingestion.models import RawBatch, TraceEvent

from ..processes import _spawn, _stop, _wait, free_port
from .otlp_export import chat, new_trace_id, protobuf

PB = "application/x-protobuf"


def _server_env() -> dict:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        user = db["USER"] or "postgres"
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        url = f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "0"}
    for name in ("PYTEST_VERSION", "PYTEST_CURRENT_TEST", "LLMOBSERVE_TEST_DB_NAME", "REDIS_URL"):
        env.pop(name, None)  # no REDIS_URL: the server stores the batch and processes it eagerly
    return env


def _up(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        return conn.getresponse().status in (200, 503)
    except OSError:
        return False


@pytest.fixture(params=["runserver", "gunicorn"])
def server(request, transactional_db):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:", ":memory:")):
        pytest.skip("an in-memory SQLite test database cannot be shared with a server process")
    port = free_port()
    if request.param == "runserver":
        args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        stop = signal.SIGTERM
    else:
        args = [sys.executable, "-m", "gunicorn", "llmobserve_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--threads", "2", "--no-control-socket"]
        stop = signal.SIGINT
    proc = _spawn(args, env=_server_env(), name=request.param)
    try:
        _wait(lambda: _up(port), 60, request.param, proc)
        yield port
    finally:
        _stop(proc, stop)


def _post_chunked(port: int, key: str, chunks: list[bytes], **headers) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/otlp/v1/traces", body=iter(chunks), encode_chunked=True,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": PB, **headers})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def _export(n: int) -> tuple[bytes, list[str]]:
    trace = new_trace_id()
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    spans = [chat(trace, start=start, input_tokens=10 + i, output_tokens=1) for i in range(n)]
    return protobuf(spans), [s.span_id for s in spans]


def _split(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


def test_chunked_bodies_are_read_by_both_servers(server, org, ingest_key):
    body, span_ids = _export(40)
    plain = _post_chunked(server, ingest_key, _split(body, 97))
    assert plain.status == 200, plain.body
    body2, span_ids2 = _export(3)
    zipped = _post_chunked(server, ingest_key, _split(gzip.compress(body2), 10), **{"Content-Encoding": "gzip"})
    assert zipped.status == 200, zipped.body

    # Every span of both bodies arrived: one batch each, processed (so its payload is emptied), one call per span.
    batches = RawBatch.objects.for_org(org).filter(kind="otlp").order_by("pk")
    assert [(b.event_count, b.state, bytes(b.payload)) for b in batches] == [(40, "processed", b""), (3, "processed", b"")]
    assert sorted(TraceEvent.objects.for_org(org).values_list("span_id", flat=True)) == sorted(span_ids + span_ids2)


def test_an_oversized_chunked_body_is_413(server, org, ingest_key, settings):
    body, _ = _export(1)
    huge = [b"\x0a" * 65536] * 90  # ~5.6 MB, over the 5 MB limit
    response = _post_chunked(server, ingest_key, huge)
    assert response.status == 413
    assert _post_chunked(server, ingest_key, [body]).status == 200  # the server is still fine
    assert RawBatch.objects.for_org(org).filter(kind="otlp").count() == 1


def test_a_chunked_body_the_server_did_not_decode_is_refused(org, ingest_key, db):
    """Another WSGI server that neither de-chunks nor terminates the input: 400, not an empty export."""
    request = RequestFactory().generic("POST", "/v1/otlp/v1/traces", b"", content_type=PB,
                                       HTTP_AUTHORIZATION=f"Bearer {ingest_key}", HTTP_TRANSFER_ENCODING="chunked")
    request.META.pop("CONTENT_LENGTH", None)
    response = OtlpTracesView.as_view()(request)
    assert response.status_code == 400
    # The spec's google.rpc.Status; RequestFactory sends no Content-Type with an empty body, so it is JSON.
    assert "chunked" in json_format.Parse(response.content, Status()).message
    assert not RawBatch.objects.for_org(org).exists()
