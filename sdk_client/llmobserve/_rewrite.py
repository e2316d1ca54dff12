"""Adding llmobserve decorators to Python source, from the server's suggestions (pure: no I/O).

libcst rewrites only the decorated defs and the import block, so every other byte stays as it
was; libcst comes with the `cli` extra and is imported lazily.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import libcst as cst

DECORATORS = ("agent", "tool", "trace")
_KNOWN_DECORATORS = frozenset({"agent", "tool", "trace", "section"})
KIND_DECORATOR = {"agent": "agent", "tool": "tool", "step": "trace"}
KIND_ORDER = ("agent", "tool", "step")
_LABEL_RE = re.compile(r"^[a-z0-9_]{1,64}$")


def _label_ok(label: object) -> str | None:
    if not isinstance(label, str):
        return None
    label = label.strip()
    return label if _LABEL_RE.match(label) else None


def _module_bindings(tree: ast.Module) -> tuple[dict[str, str], set[str], set[str]]:
    """({llmobserve decorator -> the local name bound to it}, llmobserve module aliases, other module-level names)."""
    bound: dict[str, str] = {}
    modules: set[str] = set()
    others: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    local = alias.asname or alias.name
                    if node.module == "llmobserve" and node.level == 0 and alias.name in _KNOWN_DECORATORS:
                        bound.setdefault(alias.name, local)
                    elif node.module == "llmobserve" and node.level == 0 and alias.name == "*":
                        for name in _KNOWN_DECORATORS:
                            bound.setdefault(name, name)
                    elif alias.name != "*":
                        others.add(local)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "llmobserve":
                        modules.add(alias.asname or "llmobserve")
                    else:
                        others.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                others.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    others.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
    visit(tree.body)
    others -= set(bound.values())
    return bound, modules, others


@dataclass
class _Plan:
    """How each decorator is spelled in this file, and what must be imported for it."""

    bound: dict[str, str]
    modules: set[str]
    others: set[str]
    from_names: list[str] = field(default_factory=list)   # to add to `from llmobserve import …`
    need_module: bool = False                              # `import llmobserve` for a name clash

    def spelling(self, decorator: str) -> str:
        """`agent`, or `llmobserve.agent` when the file already uses the name `agent` for something else."""
        if decorator in self.bound:
            return self.bound[decorator]
        if decorator in self.others:
            if not self.modules:
                self.need_module = True
                self.modules.add("llmobserve")
            return f"{sorted(self.modules)[0]}.{decorator}"
        if decorator not in self.from_names:
            self.from_names.append(decorator)
        return decorator


def _dotted(text: str) -> cst.BaseExpression:
    import libcst as cst

    head, *rest = text.split(".")
    node: cst.BaseExpression = cst.Name(head)
    for part in rest:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _decorator(spelling: str, kind: str, label: str) -> cst.Decorator:
    import libcst as cst

    value = cst.SimpleString(json.dumps(label))
    if kind == "step":
        arg = cst.Arg(keyword=cst.Name("step"), value=value,
                      equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                            whitespace_after=cst.SimpleWhitespace("")))
    else:
        arg = cst.Arg(value=value)
    return cst.Decorator(decorator=cst.Call(func=_dotted(spelling), args=[arg]))


def _decorator_target(decorator: cst.Decorator) -> str:
    import libcst as cst

    node = decorator.decorator
    if isinstance(node, cst.Call):
        node = node.func
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
    return ".".join(reversed(parts))


def apply_suggestions(source: str, suggestions: Sequence[dict[str, Any]]) -> str:
    """`source` with a decorator added above each suggested def and the imports they need.

    Suggestions name a function (`name` or `Class.method`) and its def line; a function that
    already carries an llmobserve agent/tool/trace/section decorator is left alone, so applying
    the same suggestions twice changes nothing. Raises `libcst.ParserSyntaxError` for code that
    does not parse.
    """
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    wanted: dict[str, list[dict[str, Any]]] = {}
    for suggestion in suggestions:
        name, kind = suggestion.get("function_name"), suggestion.get("kind")
        if isinstance(name, str) and kind in KIND_DECORATOR and _label_ok(suggestion.get("suggested_label")):
            wanted.setdefault(name, []).append(suggestion)
    if not wanted:
        return source

    module = cst.parse_module(source)
    bound, modules, others = _module_bindings(ast.parse(source))
    plan = _Plan(bound=bound, modules=modules, others=others)
    ours = set(bound.values()) | {f"{m}.{d}" for m in modules for d in _KNOWN_DECORATORS}
    qualnames = _qualnames(ast.parse(source))

    class Decorate(cst.CSTTransformer):
        METADATA_DEPENDENCIES = (PositionProvider,)

        def __init__(self) -> None:
            super().__init__()
            self.scopes: list[tuple[str, str]] = []   # ("class" | "def", name)
            self.changed = 0

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            self.scopes.append(("class", node.name.value))
            return True

        def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
            self.scopes.pop()
            return updated_node

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            self.scopes.append(("def", node.name.value))
            return True

        def leave_FunctionDef(self, original_node: cst.FunctionDef,
                              updated_node: cst.FunctionDef) -> cst.FunctionDef:
            self.scopes.pop()
            if any(kind == "def" for kind, _ in self.scopes):
                return updated_node  # functions nested in functions are never targets
            qualname = ".".join([name for _, name in self.scopes] + [original_node.name.value])
            candidates = wanted.get(qualname)
            if not candidates:
                return updated_node
            line = self.get_metadata(PositionProvider, original_node).start.line
            chosen = next((s for s in candidates if s.get("line_number") == line), None)
            if chosen is None and len(candidates) == 1 and qualnames.count(qualname) == 1:
                chosen = candidates[0]   # the file moved a little since the suggestions were made
            if chosen is None:
                return updated_node
            if any(_decorator_target(d) in ours for d in original_node.decorators):
                return updated_node
            kind = str(chosen["kind"])
            spelling = plan.spelling(KIND_DECORATOR[kind])
            new = _decorator(spelling, kind, str(chosen["suggested_label"]).strip())
            self.changed += 1
            return updated_node.with_changes(decorators=[*updated_node.decorators, new])

    transformer = Decorate()
    modified = MetadataWrapper(module).visit(transformer)
    if not transformer.changed:
        return source
    return _add_imports(modified, plan).code


def _qualnames(tree: ast.Module) -> list[str]:
    names: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.append(prefix + node.name)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                    visit(block, prefix)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, prefix)
    visit(tree.body, "")
    return names


def _is_import_line(stmt: cst.CSTNode) -> bool:
    import libcst as cst

    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _is_docstring(stmt: cst.CSTNode) -> bool:
    import libcst as cst

    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def _add_imports(module: cst.Module, plan: _Plan) -> cst.Module:
    import libcst as cst

    body = list(module.body)
    if plan.from_names:
        merged = False
        for index, stmt in enumerate(body):
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for position, small in enumerate(stmt.body):
                if (isinstance(small, cst.ImportFrom) and not small.relative and small.module is not None
                        and isinstance(small.module, cst.Name) and small.module.value == "llmobserve"
                        and not isinstance(small.names, cst.ImportStar)):
                    new_small = _merge_names(small, plan.from_names)
                    new_body = [*stmt.body[:position], new_small, *stmt.body[position + 1:]]
                    body[index] = stmt.with_changes(body=new_body)
                    merged = True
                    break
            if merged:
                break
        if not merged:
            aliases = [cst.ImportAlias(name=cst.Name(n)) for n in sorted(plan.from_names)]
            aliases = [a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                       for a in aliases[:-1]] + aliases[-1:]
            line = cst.SimpleStatementLine(body=[cst.ImportFrom(module=cst.Name("llmobserve"), names=aliases)])
            body.insert(_import_position(body), line)
    if plan.need_module:
        line = cst.SimpleStatementLine(body=[cst.Import(names=[cst.ImportAlias(name=cst.Name("llmobserve"))])])
        body.insert(_import_position(body), line)
    return module.with_changes(body=body)


def _import_position(body: Sequence[cst.BaseStatement]) -> int:
    """After the module's leading docstring and import block."""
    position = 0
    for index, stmt in enumerate(body):
        if (index == 0 and _is_docstring(stmt)) or _is_import_line(stmt):
            position = index + 1
        else:
            break
    return position


def _merge_names(node: cst.ImportFrom, names: list[str]) -> cst.ImportFrom:
    """Append names to `from llmobserve import …`, in the statement's own layout (parentheses, trailing comma)."""
    import libcst as cst

    existing = list(node.names) if not isinstance(node.names, cst.ImportStar) else []
    present = {a.evaluated_alias or a.evaluated_name for a in existing}
    names = [n for n in names if n not in present]
    if not names or not existing:
        return node
    last = existing[-1]
    if len(existing) >= 2 and isinstance(existing[-2].comma, cst.Comma):
        separator: cst.BaseParenthesizableWhitespace = existing[-2].comma.whitespace_after
    elif node.lpar is not None:
        separator = node.lpar.whitespace_after
    else:
        separator = cst.SimpleWhitespace(" ")
    trailing = last.comma if isinstance(last.comma, cst.Comma) else None
    new_aliases = [last.with_changes(comma=cst.Comma(whitespace_after=separator))]
    for i, name in enumerate(names):
        is_last = i == len(names) - 1
        comma: cst.Comma | cst.MaybeSentinel
        if is_last:
            comma = trailing if trailing is not None else cst.MaybeSentinel.DEFAULT
        else:
            comma = cst.Comma(whitespace_after=separator)
        new_aliases.append(cst.ImportAlias(name=cst.Name(name), comma=comma))
    return node.with_changes(names=[*existing[:-1], *new_aliases])


def unified_diff(before: str, after: str, path: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))


def filter_kinds(suggestions: Sequence[dict[str, Any]], min_kind: str) -> list[dict[str, Any]]:
    """Keep kinds at least as coarse as `min_kind`: agent < tool < step (`tool` keeps agents and tools)."""
    allowed = KIND_ORDER[: KIND_ORDER.index(min_kind) + 1]
    return [s for s in suggestions if s.get("kind") in allowed]
