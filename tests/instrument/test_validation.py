"""Suggestion validation against the file's AST (engine-independent)."""

import ast

import pytest

from instrument.validation import label_normalise, suggestions_validate

CODE = '''\
class Crew:
    @property
    def size(self):
        return 1

    def kickoff(self):
        pass


def kickoff():
    pass
'''


@pytest.mark.parametrize("raw, expected", [
    ("researcher", (None, "researcher")),
    ("agent:Researcher", ("agent", "researcher")),
    ("Tool: Web Search", ("tool", "web_search")),
    ("trace/summarise-step", ("step", "summarise_step")),
    ("HTTPClientWrapper", (None, "http_client_wrapper")),
    ("  agent:  ", ("agent", "")),
    ("é!", (None, "")),
])
def test_labels_are_split_and_normalised(raw, expected):
    assert label_normalise(raw) == expected


def test_methods_are_class_qualified_and_a_bare_method_name_resolves_only_when_unambiguous():
    tree = ast.parse(CODE)
    kept, dropped = suggestions_validate(tree=tree, raw=[
        {"kind": "tool", "line_number": 3, "function_name": "size", "suggested_label": "size"},      # unique method
        {"kind": "tool", "line_number": 2, "function_name": "Crew.size", "suggested_label": "s2"},   # duplicate
        {"kind": "agent", "line_number": 6, "function_name": "Crew.kickoff", "suggested_label": "crew"},
        {"kind": "agent", "line_number": 6, "function_name": "kickoff", "suggested_label": "x"},     # wrong line
        {"kind": "agent", "line_number": 10, "function_name": "kickoff", "suggested_label": "kick"},
        {"kind": "agent", "line_number": True, "function_name": "kickoff", "suggested_label": "kick"},
    ])
    assert [(s.function_name, s.line_number, s.type) for s in kept] == [
        ("Crew.size", 3, "decorator"), ("Crew.kickoff", 6, "decorator"), ("kickoff", 10, "decorator")]
    assert dropped == 3


def test_anything_but_a_list_is_no_suggestions():
    assert suggestions_validate(tree=ast.parse(CODE), raw={"suggestions": []}) == ([], 0)
