"""Issue 12: /v1/ai-instrument answers every body with a 2xx or a clear 4xx, never a 500: deeply nested JSON,
bytes that are not UTF-8, and a few KB of deeply nested code (which Python parses far deeper than a recursive
walk of its tree can follow)."""

import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from .conftest import URL

pytestmark = pytest.mark.django_db

CALL = "from openai import OpenAI\n\nclient = OpenAI()\n\n\ndef ask(q):\n    return client.responses.create(input=q)\n"
DEEP_CODES = {
    "unary": "x = " + "-" * 3000 + "1\n",
    "not": "x = " + "not " * 2000 + "y\n",
    "attributes": "def f():\n    return " + "a." * 1500 + "b\n",
    "sum": "x = " + "1 + " * 1500 + "1\n",
    "calls": "x = " + "f(" * 190 + ")" * 190 + "\n",
    "subscripts": "x = a" + "[0]" * 1500 + "\n",
    "lambdas": "f = " + "lambda: " * 400 + "0\n",
    "strings": "x = " + " + ".join(['"s"'] * 1200) + "\n",
    "compare": "x = " + " < ".join(["a"] * 1500) + "\n",
    "boolops": "x = " + " and ".join(["(a or b)"] * 1000) + "\n",
}


@pytest.mark.parametrize("name", DEEP_CODES)
def test_deeply_nested_code_gets_a_clear_answer(name, api, ingest_key):
    code = CALL + DEEP_CODES[name]
    response = api(ingest_key).post(URL, {"code": code, "file_path": "deep.py"})
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        detail = response.json()["detail"]
        assert "nests expressions too deeply" in detail or "does not parse" in detail
    else:  # the rest of the file is still analysed
        assert [s["function_name"] for s in response.json()["suggestions"]] == ["ask"]


def test_an_llm_call_behind_a_deep_expression_is_still_found(api, ingest_key):
    code = CALL + "\n\ndef deep(q):\n    total = " + "1 + " * 1500 + "1\n    return client.responses.create(input=q)\n"
    body = api(ingest_key).post(URL, {"code": code, "file_path": "deep.py"}).json()
    assert {s["function_name"] for s in body["suggestions"]} == {"ask", "deep"}


def test_claude_suggestions_for_deep_code_are_validated_without_recursion(api, ingest_key, fake_anthropic):
    code = CALL + DEEP_CODES["attributes"]
    fake_anthropic.tool_answer([{"type": "decorator", "kind": "tool", "line_number": 6, "function_name": "ask",
                                 "suggested_label": "ask", "reason": "calls an LLM"}])
    body = api(ingest_key).post(URL, {"code": code, "file_path": "deep.py"}).json()
    assert body["engine"] == "claude" and [s["function_name"] for s in body["suggestions"]] == ["ask"]


@pytest.mark.parametrize("body, message", [
    (b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b', "file_path": "a.py"}', "JSON is nested too deeply"),
    (b'{"code": "x = \xff\xfe", "file_path": "a.py"}', "JSON parse error"),
    (b'{"code": "x = 1", "file_path": "a.py"', "JSON parse error"),
])
def test_unreadable_bodies_get_a_clear_400(body, message, client, ingest_key):
    response = client.generic("POST", URL, body, content_type="application/json",
                              headers={"Authorization": f"Bearer {ingest_key}"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=20)
python_bits = st.sampled_from(["def f(x):\n", "    return ", "client.chat.completions.create(", ")", "(", "[", "]",
                               "lambda: ", "-", "not ", "a.", "1 + ", "\n", "class A:\n", "    ", "import openai\n",
                               "for i in range(3):\n", "\x00", "\ud800", "\\", "'", '"""'])
codes = st.lists(python_bits, max_size=200).map("".join) | st.text(max_size=200)


@hsettings(max_examples=40)
@given(body=st.dictionaries(st.sampled_from(["code", "file_path"]), json_values | codes, max_size=2) | json_values)
def test_any_json_body_gets_a_2xx_or_4xx(body, api, ingest_key, settings):
    settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG = 10_000
    response = api(ingest_key).post(URL, json.dumps(body))
    assert response.status_code < 500, response.content[:300]


@hsettings(max_examples=40)
@given(code=codes, depth=st.integers(0, 3000), opener=st.sampled_from(["-", "not ", "a.", "1 + ", "(", "f(", "[",
                                                                         "lambda: ", "await ", "~", "x if y else "]))
def test_any_code_gets_a_2xx_or_4xx(code, depth, opener, api, ingest_key, settings):
    settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG = 10_000
    nested = "x = " + opener * depth + "0\n"
    response = api(ingest_key).post(URL, {"code": CALL + code + "\n" + nested, "file_path": "fuzz.py"})
    assert response.status_code < 500, response.content[:300]


@pytest.mark.parametrize("body", [{"code": "01", "file_path": "\ud800"}, {"code": "x = '\udfff'", "file_path": "a.py"}])
def test_lone_surrogates_are_a_clear_400(body, api, ingest_key):
    response = api(ingest_key).post(URL, json.dumps(body))
    assert response.status_code == 400
    assert "lone surrogate" in json.dumps(response.json())
