"""Check suggestions against the file's own AST: whatever names no real function is dropped.

Both engines go through `suggestions_validate`, so the API never returns a suggestion the CLI
could not apply: the function exists (`name` or `Class.method`), `line_number` is its `def`
line, the label is a non-empty lower_snake_case name, and each function appears once.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass
from typing import Any

TYPES = ("decorator", "section")
KINDS = ("agent", "tool", "step")
# Prefixes a label may carry ("agent:researcher"); "trace"/"section" are accepted spellings of a step.
_PREFIX_KIND = {"agent": "agent", "tool": "tool", "step": "step", "trace": "step", "section": "step"}
_PREFIX_RE = re.compile(r"^\s*(agent|tool|step|trace|section)\s*[:/]\s*", re.IGNORECASE)
LLMOBSERVE_DECORATORS = frozenset({"agent", "tool", "trace", "section"})
MAX_LABEL = 64
MAX_REASON = 300


@dataclass(frozen=True)
class Suggestion:
    type: str
    kind: str
    line_number: int
    function_name: str
    suggested_label: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FunctionInfo:
    qualname: str            # "name" or "Class.method" (nested classes: "Outer.Inner.method")
    node: ast.FunctionDef | ast.AsyncFunctionDef
    class_name: str | None   # the innermost enclosing class, for methods
    def_line: int
    first_line: int          # the first decorator's line, or the def line
    instrumented: bool       # already carries an llmobserve agent/tool/trace/section decorator


def llmobserve_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound to llmobserve's decorators, aliases of the llmobserve module) at module level."""
    names: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "llmobserve" and node.level == 0:
            for alias in node.names:
                if alias.name in LLMOBSERVE_DECORATORS:
                    names.add(alias.asname or alias.name)
                elif alias.name == "*":
                    names.update(LLMOBSERVE_DECORATORS)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "llmobserve":
                    modules.add(alias.asname or alias.name)
    return names, modules


def is_llmobserve_decorator(decorator: ast.expr, names: set[str], modules: set[str]) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Name):
        return target.id in names
    return (isinstance(target, ast.Attribute) and target.attr in LLMOBSERVE_DECORATORS
            and isinstance(target.value, ast.Name) and target.value.id in modules)


def functions_index(tree: ast.Module) -> list[FunctionInfo]:
    """Module-level functions and the methods of (nested) classes, in source order.

    Functions nested inside functions are left out: they have no stable public name to label.
    """
    names, modules = llmobserve_names(tree)
    found: list[FunctionInfo] = []

    def visit(body: list[ast.stmt], prefix: str, class_name: str | None) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([d.lineno for d in node.decorator_list] + [node.lineno])
                found.append(FunctionInfo(
                    qualname=f"{prefix}{node.name}", node=node, class_name=class_name, def_line=node.lineno,
                    first_line=first,
                    instrumented=any(is_llmobserve_decorator(d, names, modules) for d in node.decorator_list),
                ))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.", node.name)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                # `if TYPE_CHECKING:` / `try: … except ImportError:` blocks still define module-level names.
                for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                    visit(block, prefix, class_name)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, prefix, class_name)

    visit(tree.body, "", None)
    return found


def label_normalise(raw: str) -> tuple[str | None, str]:
    """("agent", "researcher") from "agent:Researcher"; the kind is None without a prefix.

    CamelCase and any run of separators become lower_snake_case; the result may be empty.
    """
    kind: str | None = None
    match = _PREFIX_RE.match(raw)
    if match:
        kind = _PREFIX_KIND[match.group(1).lower()]
        raw = raw[match.end():]
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", raw.strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return kind, text[:MAX_LABEL].rstrip("_")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _resolve(name: str, line: int, index: list[FunctionInfo]) -> FunctionInfo | None:
    """The function `name` whose def is at `line` or whose decorators start just above it."""
    candidates = [f for f in index if f.qualname == name]
    if not candidates and "." not in name:
        # A bare method name is accepted when exactly one method carries it.
        candidates = [f for f in index if f.qualname.rsplit(".", 1)[-1] == name and f.class_name]
        if len(candidates) != 1:
            return None
    for info in candidates:
        if info.first_line <= line <= info.def_line:
            return info
    return None


def suggestions_validate(*, tree: ast.Module, raw: Any) -> tuple[list[Suggestion], int]:
    """(the valid suggestions, how many were dropped). `raw` is untrusted: anything goes in."""
    if not isinstance(raw, list):
        return [], 0
    index = functions_index(tree)
    kept: list[Suggestion] = []
    seen: set[str] = set()
    dropped = 0
    for item in raw:
        suggestion = _validate_one(item, index)
        if suggestion is None or suggestion.function_name in seen:
            dropped += 1
            continue
        seen.add(suggestion.function_name)
        kept.append(suggestion)
    kept.sort(key=lambda s: s.line_number)
    return kept, dropped


def _validate_one(item: Any, index: list[FunctionInfo]) -> Suggestion | None:
    if not isinstance(item, dict):
        return None
    name, label = item.get("function_name"), item.get("suggested_label")
    line = _as_int(item.get("line_number"))
    if not isinstance(name, str) or not isinstance(label, str) or line is None:
        return None
    info = _resolve(name.strip(), line, index)
    if info is None or info.instrumented:
        return None
    prefix_kind, label = label_normalise(label)
    if not label:
        return None
    kind = item.get("kind")
    kind = kind.strip().lower() if isinstance(kind, str) else None
    if kind not in KINDS:
        if kind or prefix_kind is None:
            return None
        kind = prefix_kind
    type_ = item.get("type", "decorator")
    type_ = type_.strip().lower() if isinstance(type_, str) else None
    if type_ not in TYPES:
        return None
    reason = item.get("reason")
    reason = " ".join(reason.split())[:MAX_REASON] if isinstance(reason, str) else ""
    return Suggestion(type=type_, kind=kind, line_number=info.def_line, function_name=info.qualname,
                      suggested_label=label, reason=reason)
