"""apply_suggestions: libcst rewrites that touch nothing but the added lines."""

import ast
from pathlib import Path

import pytest

pytest.importorskip("libcst")
cli = pytest.importorskip("llmobserve._instrument_cli")

from instrument.static_engine import static_suggest  # noqa: E402

from .helpers import suggestion  # noqa: E402

SAMPLES = Path(__file__).parent / "samples"


def _added_lines_removed(before: str, after: str) -> str:
    """`after` minus the lines apply_suggestions adds (decorators and the llmobserve import)."""
    kept = [line for line in after.splitlines(keepends=True)
            if not line.lstrip().startswith(("@agent(", "@tool(", "@trace(", "@llmobserve.", "from llmobserve import",
                                             "import llmobserve"))]
    return "".join(kept)


def test_static_suggestions_on_a_multi_agent_file_add_only_decorators_and_one_import():
    before = (SAMPLES / "crew.py").read_text()
    suggestions = [s.as_dict() for s in static_suggest(tree=ast.parse(before))]

    after = cli.apply_suggestions(before, suggestions)

    assert _added_lines_removed(before, after) == before   # every other byte untouched
    assert "from llmobserve import agent, tool\n" in after
    assert after.index("from llmobserve import") > after.index("from openai import OpenAI")
    tree = ast.parse(after)
    decorated = {n.name: ast.unparse(n.decorator_list[-1]) for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef) and n.decorator_list}
    assert decorated == {
        "plan_topics": "tool('plan_topics')", "summarise": "tool('summarise')",
        "classify_with_groq": "tool('classify_with_groq')", "run": "agent('researcher')", "draft": "tool('draft')",
        "_rewrite": "tool('rewrite')", "review": "agent('review')", "run_pipeline": "agent('pipeline')",
        "summarise_all": "agent('summarise_all')"}
    assert '@tool("plan_topics")\ndef plan_topics(' in after


def test_applying_twice_changes_nothing_the_second_time():
    before = (SAMPLES / "crew.py").read_text()
    suggestions = [s.as_dict() for s in static_suggest(tree=ast.parse(before))]
    once = cli.apply_suggestions(before, suggestions)
    assert cli.apply_suggestions(once, suggestions) == once
    # and the server, asked again about the instrumented file, has nothing left to suggest
    assert static_suggest(tree=ast.parse(once)) == []


MERGE_CASES = {
    "one line": ("from llmobserve import observe\n", "from llmobserve import observe, agent, trace\n"),
    "parenthesised with trailing comma": (
        "from llmobserve import (\n    observe,\n    flush,\n)\n",
        "from llmobserve import (\n    observe,\n    flush,\n    agent,\n    trace,\n)\n"),
    "parenthesised without trailing comma": (
        "from llmobserve import (observe,\n                        flush)\n",
        "from llmobserve import (observe,\n                        flush,\n                        agent,\n"
        "                        trace)\n"),
    "already has one": ("from llmobserve import agent, observe\n", "from llmobserve import agent, observe, trace\n"),
}


@pytest.mark.parametrize("case", MERGE_CASES)
def test_names_merge_into_an_existing_llmobserve_import_in_its_own_style(case):
    existing, merged = MERGE_CASES[case]
    body = "\n\ndef a():\n    pass\n\n\ndef b():\n    pass\n"
    before = "import os\n" + existing + body
    after = cli.apply_suggestions(before, [suggestion(before, "a", "alpha", "agent"),
                                           suggestion(before, "b", "beta", "step")])
    assert after.startswith("import os\n" + merged)
    assert '@agent("alpha")\ndef a():' in after and '@trace(step="beta")\ndef b():' in after
    ast.parse(after)


def test_a_new_import_goes_after_the_docstring_and_imports_and_future_stays_first():
    before = '#!/usr/bin/env python\n"""Doc."""\nfrom __future__ import annotations\n\nimport os\n\nX = 1\n\n\ndef go():\n    pass\n'
    after = cli.apply_suggestions(before, [suggestion(before, "go", "go")])
    assert after == ('#!/usr/bin/env python\n"""Doc."""\nfrom __future__ import annotations\n\nimport os\n'
                     'from llmobserve import tool\n\nX = 1\n\n\n@tool("go")\ndef go():\n    pass\n')


def test_a_file_without_imports_gets_the_import_at_the_top_after_its_header_comments():
    before = "# Copyright\n\ndef go():\n    pass\n"
    after = cli.apply_suggestions(before, [suggestion(before, "go", "go")])
    assert after == "# Copyright\n\nfrom llmobserve import tool\ndef go():\n    pass\n".replace(
        "tool\ndef", 'tool\n@tool("go")\ndef')


def test_a_name_the_file_already_uses_is_reached_through_the_module_instead():
    before = "from langchain_core.tools import tool\n\n\n@tool\ndef search(q):\n    pass\n"
    after = cli.apply_suggestions(before, [suggestion(before, "search", "search")])
    assert after == ("from langchain_core.tools import tool\nimport llmobserve\n\n\n@tool\n"
                     '@llmobserve.tool("search")\ndef search(q):\n    pass\n')
    assert cli.apply_suggestions(after, [suggestion(after, "search", "search")]) == after


def test_functions_already_decorated_by_llmobserve_are_skipped():
    before = 'import llmobserve as lo\n\n\n@lo.agent("x")\ndef a():\n    pass\n\n\n@lo.trace(step="y")\ndef b():\n    pass\n'
    assert cli.apply_suggestions(before, [suggestion(before, "a", "alpha"), suggestion(before, "b", "beta")]) == before


def test_methods_async_functions_and_existing_decorators():
    before = ("class Crew:\n    @staticmethod\n    async def kickoff(  x ):  # keep\n        return x\n\n"
              "    def helper(self):\n        def inner():\n            pass\n")
    after = cli.apply_suggestions(before, [
        suggestion(before, "Crew.kickoff", "crew", "agent"),
        {"function_name": "inner", "line_number": 7, "kind": "tool", "suggested_label": "inner"},  # nested: ignored
    ])
    assert after == ("from llmobserve import agent\nclass Crew:\n    @staticmethod\n    @agent(\"crew\")\n"
                     "    async def kickoff(  x ):  # keep\n        return x\n\n"
                     "    def helper(self):\n        def inner():\n            pass\n")


def test_crlf_files_stay_crlf():
    before = "import os\r\n\r\ndef go():\r\n    pass\r\n"
    after = cli.apply_suggestions(before, [suggestion(before, "go", "go")])
    assert after == 'import os\r\nfrom llmobserve import tool\r\n\r\n@tool("go")\r\ndef go():\r\n    pass\r\n'


@pytest.mark.parametrize("label", ['x"); import os; ("', "", "Has Spaces", None, "a" * 65])
def test_labels_that_are_not_plain_names_are_refused(label):
    before = "def go():\n    pass\n"
    assert cli.apply_suggestions(before, [suggestion(before, "go", "go") | {"suggested_label": label}]) == before


def test_min_kind_filters_from_coarse_to_fine():
    items = [{"kind": "agent"}, {"kind": "tool"}, {"kind": "step"}]
    assert cli.filter_kinds(items, "agent") == [{"kind": "agent"}]
    assert cli.filter_kinds(items, "tool") == [{"kind": "agent"}, {"kind": "tool"}]
    assert cli.filter_kinds(items, "step") == items


def test_a_star_import_from_llmobserve_provides_the_names():
    before = "from llmobserve import *\n\n\n@agent(\"a\")\ndef a():\n    pass\n\n\ndef b():\n    pass\n"
    after = cli.apply_suggestions(before, [suggestion(before, "a", "x"), suggestion(before, "b", "beta")])
    assert after == before.replace("def b():", '@tool("beta")\ndef b():')
