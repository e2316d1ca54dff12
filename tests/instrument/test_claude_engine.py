"""The Claude engine through the real anthropic SDK against a local Messages API."""

import pytest

from accounts.models import Organization
from instrument.models import InstrumentUsage
from instrument.static_engine import static_suggest

from .conftest import URL
from .helpers import def_line, suggestion

pytestmark = pytest.mark.django_db

DECORATED = '''\
import functools
from openai import OpenAI
from llmobserve import agent

client = OpenAI()


def cache(fn):
    return functools.lru_cache()(fn)


@cache
@functools.wraps(print)
def ask(q):
    return client.responses.create(model="gpt-4o", input=q)


@agent("done")
def already(q):
    return client.responses.create(model="gpt-4o", input=q)
'''


def _static_answer(code):
    import ast

    return [s.as_dict() for s in static_suggest(tree=ast.parse(code))]


def test_claude_suggestions_are_returned_validated_and_normalised(api, ingest_key, fake_anthropic, crew_code, settings):
    settings.LLMOBSERVE_INSTRUMENT_MODEL = "claude-sonnet-5-5"
    fake_anthropic.tool_answer([
        suggestion(crew_code, "run_pipeline", "Research Pipeline", kind="agent"),
        suggestion(crew_code, "Writer.draft", "tool:DraftWriter", kind="tool"),
        suggestion(crew_code, "summarise", "summarise", kind="step", type="section"),
    ])
    response = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["engine"] == "claude"
    assert body["dropped"] == 0
    assert [(s["function_name"], s["kind"], s["suggested_label"], s["type"]) for s in body["suggestions"]] == [
        ("summarise", "step", "summarise", "section"),
        ("Writer.draft", "tool", "draft_writer", "decorator"),
        ("run_pipeline", "agent", "research_pipeline", "decorator"),
    ]
    assert set(body["suggestions"][0]) == {"type", "kind", "line_number", "function_name", "suggested_label", "reason"}

    (request,) = fake_anthropic.requests
    assert request.path == "/v1/messages"
    assert request.headers["authorization"] == "Bearer sk-ant-test-key"
    assert request.body["model"] == "claude-sonnet-5-5"
    assert request.body["tool_choice"] == {"type": "tool", "name": "report_instrumentation"}
    assert request.body["tools"][0]["name"] == "report_instrumentation"
    prompt = request.body["messages"][0]["content"]
    assert "crew.py" in prompt
    line = def_line(crew_code, "run_pipeline")
    assert f"{line} | def run_pipeline(subject: str) -> list[str]:" in prompt


def test_hallucinated_and_malformed_suggestions_are_dropped_and_counted(api, ingest_key, fake_anthropic, crew_code):
    good = suggestion(crew_code, "Researcher.run", "agent:Researcher", kind="")  # kind from the label's prefix
    fake_anthropic.tool_answer([
        good,
        suggestion(crew_code, "summarise", "summariser") | {"line_number": def_line(crew_code, "summarise") + 1},
        suggestion(crew_code, "summarise", "x") | {"function_name": "summarize_everything"},  # no such function
        suggestion(crew_code, "plan_topics", "agent:  "),          # empty once the prefix is split off
        suggestion(crew_code, "plan_topics", "!!!"),               # empty once normalised
        dict(good, suggested_label="again"),                       # duplicate function
        suggestion(crew_code, "review", "reviewer", kind="boss"),  # unknown kind
        suggestion(crew_code, "review", "reviewer", type="class"),  # unknown type
        "not an object",
        {"function_name": "review"},                               # fields missing
    ])
    body = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"}).json()

    assert body["engine"] == "claude"
    assert body["suggestions"] == [{
        "type": "decorator", "kind": "agent", "line_number": def_line(crew_code, "Researcher.run"),
        "function_name": "Researcher.run", "suggested_label": "researcher", "reason": "calls an LLM"}]
    assert body["dropped"] == 9


def test_a_decorator_line_is_normalised_to_the_def_line_and_instrumented_functions_are_dropped(
        api, ingest_key, fake_anthropic):
    fake_anthropic.tool_answer([
        {"type": "decorator", "kind": "tool", "line_number": 12, "function_name": "ask",
         "suggested_label": "Ask", "reason": "one call"},   # line 12 is `@cache`, two lines above the def
        {"type": "decorator", "kind": "agent", "line_number": 18, "function_name": "already",
         "suggested_label": "again", "reason": ""},
        {"type": "decorator", "kind": "tool", "line_number": 7, "function_name": "cache",
         "suggested_label": "cache", "reason": ""},          # line 7 is a blank line above `def cache`
    ])
    body = api(ingest_key).post(URL, {"code": DECORATED, "file_path": "d.py"}).json()
    assert [(s["function_name"], s["line_number"], s["suggested_label"]) for s in body["suggestions"]] == [
        ("ask", 14, "ask")]
    assert body["dropped"] == 2


@pytest.mark.parametrize("failure", ["500", "529", "timeout", "bad_json", "not_a_list", "no_tool_call", "wrong_tool"])
def test_any_claude_failure_falls_back_to_the_static_engine(api, ingest_key, org, fake_anthropic, crew_code,
                                                             settings, failure):
    settings.LLMOBSERVE_INSTRUMENT_TIMEOUT = 0.5
    {
        "500": lambda: fake_anthropic.error(500, "Internal server error"),
        "529": lambda: fake_anthropic.error(529, "Overloaded"),
        "timeout": lambda: fake_anthropic.slow(2.0),
        "bad_json": lambda: fake_anthropic.raw(200, b'{"id": "msg_1", "content": [ {"type": "tool_use", '),
        "not_a_list": lambda: fake_anthropic.tool_answer(None, raw_input={"suggestions": "run_pipeline is an agent"}),
        "no_tool_call": lambda: fake_anthropic.text_answer("Here are my suggestions: decorate run_pipeline."),
        "wrong_tool": lambda: fake_anthropic.tool_answer([], tool_name="something_else"),
    }[failure]()

    response = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"})

    assert response.status_code == 200
    body = response.json()
    assert body["engine"] == "static"
    assert body["suggestions"] == _static_answer(crew_code)
    assert body["dropped"] == 0
    assert len(fake_anthropic.requests) == 1   # max_retries=0: one attempt, then the fallback
    usage = InstrumentUsage.objects.for_org(org).get()
    assert (usage.requests, usage.claude_calls, usage.fallbacks) == (1, 1, 1)
    if failure in ("not_a_list", "no_tool_call", "wrong_tool"):
        assert usage.input_tokens > 0   # the call was billed although its answer was useless


def test_an_overloaded_claude_is_retried_within_the_configured_budget(api, ingest_key, fake_anthropic, crew_code,
                                                                       settings):
    settings.LLMOBSERVE_INSTRUMENT_MAX_RETRIES = 1
    fake_anthropic.error(529, "Overloaded")
    fake_anthropic.tool_answer([suggestion(crew_code, "review", "reviewer", kind="agent")])

    body = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"}).json()

    assert body["engine"] == "claude"
    assert [s["suggested_label"] for s in body["suggestions"]] == ["reviewer"]
    assert len(fake_anthropic.requests) == 2


def test_claude_calls_are_metered_in_integer_pico_usd(api, ingest_key, org, fake_anthropic, crew_code, settings):
    settings.LLMOBSERVE_INSTRUMENT_PRICE_IN = "3"
    settings.LLMOBSERVE_INSTRUMENT_PRICE_OUT = "15"
    fake_anthropic.tool_answer([], input_tokens=1200, output_tokens=300)
    fake_anthropic.tool_answer([], input_tokens=800, output_tokens=100)
    for _ in range(2):
        assert api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"}).status_code == 200

    usage = InstrumentUsage.objects.for_org(org).get()
    assert (usage.requests, usage.claude_calls, usage.fallbacks) == (2, 2, 0)
    assert (usage.input_tokens, usage.output_tokens) == (2000, 400)
    # 2000 × $3/M + 400 × $15/M = $0.006 + $0.006 = $0.012 = 12_000_000_000 pico-USD
    assert usage.cost_pico == 12_000_000_000


def test_the_global_claude_budget_sends_the_overflow_to_the_static_engine(api, ingest_key, org, fake_anthropic,
                                                                          crew_code, settings):
    settings.LLMOBSERVE_INSTRUMENT_RATE_GLOBAL = 1
    first = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"}).json()
    second = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"}).json()

    assert (first["engine"], second["engine"]) == ("claude", "static")
    assert len(fake_anthropic.requests) == 1
    usage = InstrumentUsage.objects.for_org(org).get()
    assert (usage.requests, usage.claude_calls, usage.fallbacks) == (2, 1, 1)


def test_an_org_without_an_active_subscription_gets_the_static_engine(api, ingest_key, org, fake_anthropic,
                                                                      crew_code, settings):
    settings.LLMOBSERVE_BILLING_ENABLED = True
    assert org.subscription_status == Organization.Subscription.NONE

    body = api(ingest_key).post(URL, {"code": crew_code, "file_path": "crew.py"}).json()

    assert body["engine"] == "static"
    assert fake_anthropic.requests == []


def test_the_prompt_numbers_lines_as_python_does(api, ingest_key, fake_anthropic):
    code = "import openai\n\x0c\ndef ask(q):  # a form feed above must not shift the numbers\n    return openai.responses.create(input=q)\n"
    fake_anthropic.tool_answer([{"type": "decorator", "kind": "tool", "line_number": 3, "function_name": "ask",
                                 "suggested_label": "ask", "reason": ""}])
    body = api(ingest_key).post(URL, {"code": code, "file_path": "ff.py"}).json()
    assert "3 | def ask(q):" in fake_anthropic.requests[0].body["messages"][0]["content"]
    assert [s["line_number"] for s in body["suggestions"]] == [3]
