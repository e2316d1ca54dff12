"""POST /v1/ai-instrument: auth, input limits, rate limits, metering and tenancy."""

import json

import pytest

from accounts.services import api_key_create, api_key_revoke
from instrument.models import InstrumentUsage

from .conftest import URL

pytestmark = pytest.mark.django_db

SMALL = "from openai import OpenAI\n\nclient = OpenAI()\n\n\ndef ask(q):\n    return client.responses.create(model='gpt-4o', input=q)\n"


def test_static_engine_answers_without_an_anthropic_key(api, ingest_key):
    response = api(ingest_key).post(URL, {"code": SMALL, "file_path": "app.py"})
    assert response.status_code == 200
    assert response.json() == {"engine": "static", "dropped": 0, "suggestions": [{
        "type": "decorator", "kind": "tool", "line_number": 6, "function_name": "ask", "suggested_label": "ask",
        "reason": "Makes one LLM call: client.responses.create()."}]}


def test_the_api_alias_and_read_keys_work_too(api, read_key):
    response = api(read_key).post("/api/ai-instrument", {"code": SMALL, "file_path": "app.py"})
    assert response.status_code == 200
    assert response.json()["suggestions"][0]["function_name"] == "ask"


@pytest.mark.parametrize("key", [None, "llmo_not_a_real_key"])
def test_without_a_valid_key_the_answer_is_401(api, key):
    response = api(key).post(URL, {"code": SMALL, "file_path": "app.py"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_is_refused(api, org):
    created = api_key_create(org=org, name="old", scope="ingest")
    api_key_revoke(api_key=created.api_key)
    assert api(created.raw_key).post(URL, {"code": SMALL, "file_path": "app.py"}).status_code == 401


def test_code_that_does_not_parse_is_a_400_naming_the_line(api, ingest_key, org):
    code = "def ok():\n    return 1\n\ndef broken(:\n    pass\n"
    response = api(ingest_key).post(URL, {"code": code, "file_path": "broken.py"})
    assert response.status_code == 400
    body = response.json()
    assert body["line"] == 4
    assert "broken.py does not parse" in body["detail"] and "line 4" in body["detail"]
    assert not InstrumentUsage.objects.for_org(org).exists()   # a rejected file costs no quota


@pytest.mark.parametrize("payload, field", [
    ({"file_path": "a.py"}, "code"),
    ({"code": SMALL}, "file_path"),
    ({"code": 12, "file_path": "a.py"}, "code"),
])
def test_missing_or_mistyped_fields_are_a_400(api, ingest_key, payload, field):
    response = api(ingest_key).post(URL, payload)
    assert response.status_code == 400
    assert field in response.json()


def test_a_body_that_is_not_a_json_object_is_a_400(api, ingest_key):
    assert api(ingest_key).post(URL, json.dumps([1, 2]), content_type="application/json").status_code == 400
    assert api(ingest_key).post(URL, "{not json", content_type="application/json").status_code == 400


def test_code_over_200_kb_is_a_413(api, ingest_key):
    line = "x = 1  # " + "a" * 90 + "\n"
    code = line * (200 * 1024 // len(line) + 1)
    assert len(code.encode()) > 200 * 1024
    response = api(ingest_key).post(URL, {"code": code, "file_path": "big.py"})
    assert response.status_code == 413
    assert "200 KB" in response.json()["detail"]

    at_limit = code[: 200 * 1024]
    at_limit = at_limit[: at_limit.rfind("\n") + 1]
    assert api(ingest_key).post(URL, {"code": at_limit, "file_path": "ok.py"}).status_code == 200


def test_a_huge_body_is_refused_before_it_is_parsed(api, ingest_key):
    body = json.dumps({"code": "#" * (2 * 1024 * 1024), "file_path": "x.py"})
    assert api(ingest_key).post(URL, body, content_type="application/json").status_code == 413


def test_the_per_org_limit_answers_429_with_retry_after(api, ingest_key, other_read_key, settings):
    settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG = 3
    for _ in range(3):
        assert api(ingest_key).post(URL, {"code": SMALL, "file_path": "a.py"}).status_code == 200

    response = api(ingest_key).post(URL, {"code": SMALL, "file_path": "a.py"})

    assert response.status_code == 429
    # A sliding window (accounts.ratelimit): the 3 hits weigh on the next minute too, at most two minutes' wait.
    assert 1 <= int(response["Retry-After"]) <= 120
    assert "3 files per minute" in response.json()["detail"]
    # Another organisation has its own budget.
    assert api(other_read_key).post(URL, {"code": SMALL, "file_path": "a.py"}).status_code == 200


def test_each_request_is_metered_on_the_keys_org_only(api, ingest_key, other_read_key, org, other_org):
    for _ in range(2):
        api(ingest_key).post(URL, {"code": SMALL, "file_path": "a.py"})
    api(other_read_key).post(URL, {"code": SMALL, "file_path": "b.py"})

    mine = InstrumentUsage.objects.for_org(org).get()
    theirs = InstrumentUsage.objects.for_org(other_org).get()
    assert (mine.requests, mine.claude_calls, mine.cost_pico) == (2, 0, 0)
    assert theirs.requests == 1
    assert InstrumentUsage.objects.unscoped().count() == 2


def test_get_is_not_allowed(api, ingest_key):
    assert api(ingest_key).get(URL).status_code == 405


def test_over_the_limit_the_body_is_not_even_parsed(api, ingest_key, settings):
    """Throttle first: a huge or broken body from an org over its limit gets 429, not 413/400 after parsing."""
    settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG = 2
    for _ in range(2):
        assert api(ingest_key).post(URL, {"code": SMALL, "file_path": "a.py"}).status_code == 200
    for body in ('{"code": "def broken(:", "file_path": "x.py"}',  # code that does not parse
                 '{"code": ',  # JSON that does not parse
                 '[' * 100_000,  # deep nesting
                 json.dumps({"code": "#" * (2 * 1024 * 1024), "file_path": "x.py"})):  # over the size limit
        response = api(ingest_key).post(URL, body, content_type="application/json")
        assert response.status_code == 429, (body[:30], response.content[:200])
        assert int(response["Retry-After"]) >= 1
