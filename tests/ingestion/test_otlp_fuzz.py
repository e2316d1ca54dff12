"""No OTLP body, however odd, gets a 500, and no accepted span fails in the worker (hypothesis)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from ingestion.models import RawBatch
from ingestion.otlp import KEPT_KEYS

from .otlp_export import S, otlp_json, protobuf
from .test_ingest_fuzz import json_values
from .test_otlp_ingest import post_otlp  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

NOW_NS = int(datetime.now(timezone.utc).timestamp() * 1e9)
attr_values = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
               | st.sampled_from(["chat", "invoke_agent", "execute_tool", "embeddings", "openai", "ai.streamText.doStream",
                                  "-5", "1e400", "USD", "EUR", "\x00", "a/b", "LLM"]))
attributes = st.dictionaries(st.sampled_from(sorted(KEPT_KEYS) + ["gen_ai.prompt.0.content", "other"]), attr_values,
                             max_size=8)
ids = st.sampled_from(["0" * 32, "ab" * 16, "0" * 16, "cd" * 8]) | st.binary(min_size=0, max_size=17).map(bytes.hex)


def _span(trace, span_id, parent, attrs, start_offset, ms):
    s = S("s", trace if len(trace) % 2 == 0 else "ab" * 16, span_id=span_id if len(span_id) % 2 == 0 else "cd" * 8,
          parent=parent if len(parent) % 2 == 0 else "", ms=ms,
          start=datetime.fromtimestamp(max(0, NOW_NS + start_offset) / 1e9, tz=timezone.utc),
          attrs={k: v for k, v in attrs.items() if v is not None})
    return s


spans = st.builds(_span, ids, ids, ids, attributes, st.integers(-10**18, 10**13), st.floats(0, 1e7))


def _processed_cleanly(org):
    assert not RawBatch.objects.for_org(org).exclude(last_error="").exists()
    assert not RawBatch.objects.for_org(org).filter(processed_at__isnull=True).exists()


@given(raw=st.binary(max_size=300))
def test_any_bytes_get_200_or_400(raw, org, ingest_key, post_otlp):
    response = post_otlp(ingest_key, raw)
    assert response.status_code in (200, 400), response.content[:200]
    _processed_cleanly(org)


@given(raw=st.binary(max_size=300))
def test_any_bytes_as_json_or_gzip_get_a_4xx_or_200(raw, org, ingest_key, post_otlp):
    assert post_otlp(ingest_key, raw, content_type="application/json").status_code in (200, 400)
    assert post_otlp(ingest_key, raw, **{"Content-Encoding": "gzip"}).status_code in (200, 400, 413)


@given(batch=st.lists(spans, max_size=6), as_json=st.booleans())
def test_near_valid_exports_never_fail(batch, as_json, org, ingest_key, post_otlp):
    try:
        body = otlp_json(batch) if as_json else protobuf(batch)
    except (ValueError, OverflowError):
        return  # not representable in OTLP at all
    response = post_otlp(ingest_key, body, content_type="application/json" if as_json else "application/x-protobuf")
    assert response.status_code == 200, response.content[:300]
    _processed_cleanly(org)


@given(body=json_values, wrap=st.booleans())
def test_any_json_shape_gets_200_or_400(body, wrap, org, ingest_key, post_otlp):
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [body]}]}]} if wrap else body
    response = post_otlp(ingest_key, json.dumps(doc).encode(), content_type="application/json")
    assert response.status_code in (200, 400), response.content[:300]
    _processed_cleanly(org)
