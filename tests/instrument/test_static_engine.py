"""The static engine: which functions reach an LLM call, and how they are labelled."""

import ast
from pathlib import Path

from instrument.static_engine import static_suggest

SAMPLES = Path(__file__).parent / "samples"


def _suggest(name: str) -> dict[str, tuple[str, str]]:
    tree = ast.parse((SAMPLES / name).read_text())
    return {s.function_name: (s.kind, s.suggested_label) for s in static_suggest(tree=tree)}


def test_a_multi_agent_file_gets_agents_for_orchestrators_and_tools_for_single_callers():
    assert _suggest("crew.py") == {
        "plan_topics": ("tool", "plan_topics"),            # openai client at module level
        "summarise": ("tool", "summarise"),                # anthropic.Anthropic()
        "classify_with_groq": ("tool", "classify_with_groq"),  # httpx.post to a provider URL constant
        "Researcher.run": ("agent", "researcher"),         # loops over summarise(); generic method → class name
        "Writer.draft": ("tool", "draft"),                 # self.client = OpenAI() in __init__
        "Writer._rewrite": ("tool", "rewrite"),
        "review": ("agent", "review"),                     # two LLM-reaching calls
        "run_pipeline": ("agent", "pipeline"),             # orchestrates, transitively, through methods
        "summarise_all": ("agent", "summarise_all"),       # pool.map(summarise, …) is a loop
    }


def test_functions_that_reach_no_llm_call_are_never_suggested():
    suggested = _suggest("crew.py")
    for pure in ("format_prompt", "parse_json", "web_search", "count_words", "Researcher.__init__",
                 "Writer.__init__"):
        assert pure not in suggested


def test_forwarders_and_loops_over_a_single_agent_are_left_to_the_callee():
    suggested = _suggest("crew.py")
    assert "Writer.polish" not in suggested   # only forwards to _rewrite
    assert "main" not in suggested            # repeats run_pipeline: labelling it would merge runs


def test_frameworks_langchain_google_litellm_and_provider_http_clients():
    assert _suggest("frameworks.py") == {
        "ask_chain": ("tool", "ask_chain"),       # prompt | llm | parser
        "ask_gemini": ("tool", "ask_gemini"),     # from google import genai
        "ask_litellm": ("tool", "ask_litellm"),   # from litellm import acompletion, awaited
        "ask_mistral": ("tool", "ask_mistral"),   # httpx.Client(base_url=provider)
        "fan_out": ("agent", "fan_out"),          # gather over a generator
        "Router.route": ("tool", "route"),        # class attribute llm
        "Router.answer": ("agent", "answer"),     # reaches route, ask_gemini, ask_chain
        "embed_all": ("agent", "embed_all"),      # while loop
    }


def test_prompts_plain_http_and_already_instrumented_functions_are_skipped():
    suggested = _suggest("frameworks.py")
    assert "render" not in suggested       # a prompt template's invoke is not an LLM call
    assert "fetch_page" not in suggested   # httpx.get to an arbitrary URL
    assert "legacy" not in suggested       # already @llmobserve.agent (imported under an alias)
    assert "Router.describe" not in suggested
    assert "main" not in suggested         # one call to one agent method


def test_line_numbers_are_def_lines_and_reasons_explain():
    code = "@staticmethod\n@other\ndef f():\n    import openai\n    return openai.chat.completions.create()\n"
    (suggestion,) = static_suggest(tree=ast.parse(code))
    assert suggestion.line_number == 3
    assert suggestion.reason == "Makes one LLM call: openai.chat.completions.create()."


def test_a_file_without_llm_calls_gets_no_suggestions():
    code = "import requests\n\ndef get(u):\n    return requests.post(u, json={})\n\nclass A:\n    def run(self):\n        return get('x')\n"
    assert static_suggest(tree=ast.parse(code)) == []


def test_recursion_and_mutual_calls_terminate():
    code = (
        "from anthropic import Anthropic\nc = Anthropic()\n\n"
        "def a(n):\n    return b(n - 1) if n else c.messages.create(model='m', max_tokens=1, messages=[])\n\n"
        "def b(n):\n    return a(n)\n\n"
        "def self_loop(n):\n    return self_loop(n - 1)\n"
    )
    result = {s.function_name: s.kind for s in static_suggest(tree=ast.parse(code))}
    assert result["a"] == "agent"  # a direct call plus a reaching call
    assert "self_loop" not in result


def test_agent_frameworks_retrievers_streams_and_wrapped_clients():
    assert _suggest("agent_frameworks.py") == {
        "ask_support": ("tool", "ask_support"),      # pydantic_ai Agent.run_sync
        "crew_go": ("tool", "crew_go"),              # a parameter annotated with crewai's Crew
        "search": ("tool", "search"),                # a retriever built from an embeddings model
        "stream_answer": ("tool", "stream_answer"),  # async with AsyncOpenAI() / responses.stream
        "extract": ("tool", "extract"),              # instructor.from_openai(OpenAI())
    }   # and local_only's dict.get is nothing
