"""Ask Claude (official `anthropic` SDK) to label a file's agents, tools and steps.

The answer comes back as the input of a forced tool call, so it is JSON by construction; it
is still untrusted: `claude_suggest` only checks its outer shape, and
`validation.suggestions_validate` checks every suggestion against the file's AST.
Any failure raises `ClaudeEngineError`, carrying the usage of a call that was billed anyway.

`anthropic` is imported on the first call, not with this module: the SDK takes seconds to import, and the
URLconf imports this module, so every web, worker and manage.py process would pay for it at start.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    import anthropic

logger = logging.getLogger(__name__)

TOOL_NAME = "report_instrumentation"

SYSTEM_PROMPT = """\
You label Python code for LLMObserve, an LLM cost observability SDK. Users add decorators so \
each LLM call's cost is attributed to a named part of their program:

    from llmobserve import agent, tool, trace
    @agent("researcher")        # a function that orchestrates several LLM calls, or loops over them
    @tool("web_search")         # a single-purpose function that makes one LLM call
    @trace(step="summarise")    # a pipeline step worth its own line in the cost breakdown

Suggest decorators only for functions and methods that make an LLM call (OpenAI, Anthropic, \
Google, Cohere, Mistral, LiteLLM, LangChain/LlamaIndex models, HTTP posts to provider APIs), \
directly or through other functions in the file. Never suggest a function that reaches no LLM \
call, and skip functions already decorated with llmobserve's agent/tool/trace/section. Do not \
wrap a function that only calls one other labelled function (the callee carries the label), \
and do not label a `main` that loops over a whole agent: that would merge many runs into one.

For each suggestion give: type "decorator"; kind "agent", "tool" or "step"; line_number, the \
line of the `def` (the numbers at the start of each line of the file); function_name, the \
function's name or Class.method for methods; suggested_label, a short lower_snake_case name \
without a kind prefix (e.g. "researcher", "web_search"); reason, one short sentence. Report \
through the report_instrumentation tool; an empty list is a valid answer."""

TOOL = {
    "name": TOOL_NAME,
    "description": "Report the llmobserve decorators to add to the file.",
    "input_schema": {
        "type": "object",
        "properties": {
            "suggestions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["decorator", "section"]},
                        "kind": {"type": "string", "enum": ["agent", "tool", "step"]},
                        "line_number": {"type": "integer", "description": "Line of the def statement."},
                        "function_name": {"type": "string", "description": "name, or Class.method"},
                        "suggested_label": {"type": "string", "description": "lower_snake_case, no prefix"},
                        "reason": {"type": "string"},
                    },
                    "required": ["type", "kind", "line_number", "function_name", "suggested_label", "reason"],
                },
            },
        },
        "required": ["suggestions"],
    },
}


class ClaudeEngineError(Exception):
    """Claude could not answer usefully. `input_tokens`/`output_tokens` are what was billed anyway."""

    def __init__(self, message: str, *, input_tokens: int = 0, output_tokens: int = 0) -> None:
        super().__init__(message)
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


@dataclass(frozen=True)
class ClaudeAnswer:
    suggestions: list[Any]   # untrusted: validate before use
    input_tokens: int
    output_tokens: int
    model: str


def _numbered(code: str) -> str:
    """The code with Python's own line numbers (str.splitlines would also split on form feeds etc.)."""
    lines = re.split(r"\r\n|\r|\n", code)
    if lines and lines[-1] == "":
        lines.pop()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, start=1))


def _client() -> anthropic.Anthropic:
    import anthropic

    return anthropic.Anthropic(
        api_key=settings.ANTHROPIC_API_KEY,
        base_url=settings.LLMOBSERVE_INSTRUMENT_BASE_URL or None,  # None: the SDK reads ANTHROPIC_BASE_URL
        timeout=settings.LLMOBSERVE_INSTRUMENT_TIMEOUT,
        max_retries=settings.LLMOBSERVE_INSTRUMENT_MAX_RETRIES,
    )


def claude_suggest(*, code: str, file_path: str) -> ClaudeAnswer:
    import anthropic

    try:
        with _client() as client:
            message = client.messages.create(
                model=settings.LLMOBSERVE_INSTRUMENT_MODEL,
                max_tokens=settings.LLMOBSERVE_INSTRUMENT_MAX_TOKENS,
                system=SYSTEM_PROMPT,
                tools=[TOOL],  # type: ignore[list-item]
                tool_choice={"type": "tool", "name": TOOL_NAME},
                messages=[{"role": "user", "content": (
                    f"File: {file_path}\nEach line starts with its line number and ' | '.\n\n{_numbered(code)}")}],
            )
    except anthropic.APIError as exc:
        raise ClaudeEngineError(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the SDK may also fail on an unparsable body or an unexpected shape
        raise ClaudeEngineError(f"unexpected {type(exc).__name__}: {exc}") from exc

    usage = getattr(message, "usage", None)
    input_tokens = _tokens(usage, "input_tokens") + _tokens(usage, "cache_creation_input_tokens") \
        + _tokens(usage, "cache_read_input_tokens")
    output_tokens = _tokens(usage, "output_tokens")
    suggestions = _tool_suggestions(getattr(message, "content", None))
    if suggestions is None:
        raise ClaudeEngineError("no usable report_instrumentation tool call in the answer",
                                input_tokens=input_tokens, output_tokens=output_tokens)
    return ClaudeAnswer(suggestions=suggestions, input_tokens=input_tokens, output_tokens=output_tokens,
                        model=str(getattr(message, "model", "") or settings.LLMOBSERVE_INSTRUMENT_MODEL))


def _tokens(usage: object, name: str) -> int:
    value = getattr(usage, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _tool_suggestions(content: object) -> list[Any] | None:
    """The `suggestions` list of our tool call, or None when the answer has no usable one."""
    if not isinstance(content, list):
        return None
    for block in content:
        if getattr(block, "type", None) != "tool_use" or getattr(block, "name", None) != TOOL_NAME:
            continue
        payload: Any = getattr(block, "input", None)
        if isinstance(payload, str):  # some gateways hand the arguments back as a JSON string
            try:
                payload = json.loads(payload)
            except ValueError:
                return None
        suggestions = payload.get("suggestions") if isinstance(payload, dict) else None
        if isinstance(suggestions, str):
            try:
                suggestions = json.loads(suggestions)
            except ValueError:
                return None
        return suggestions if isinstance(suggestions, list) else None
    return None
