"""`llmobserve preview` and `llmobserve instrument`: AI auto-instrument from the command line.

Each file is sent to the collector's `POST /v1/ai-instrument`, which answers with validated
suggestions (`@agent`, `@tool`, `@trace(step=…)` for named functions). `instrument` applies them
with libcst, so every byte the change does not touch stays as it was; it writes `FILE.bak`
first, skips functions already decorated, and a second run changes nothing.

Exit codes, for scripts: 0 success; 1 one or more files could not be processed (unreadable,
unparsable, rejected); 2 usage or configuration error; 3 server unreachable or failing;
4 API key rejected.

HTTP is stdlib `urllib.request`; libcst comes with the `cli` extra and is imported lazily.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import libcst as cst

EXIT_OK, EXIT_FILES, EXIT_USAGE, EXIT_SERVER, EXIT_AUTH = 0, 1, 2, 3, 4
DEFAULT_URL = "http://127.0.0.1:8000"
ENDPOINT = "/v1/ai-instrument"
DECORATORS = ("agent", "tool", "trace")
_KNOWN_DECORATORS = frozenset({"agent", "tool", "trace", "section"})
KIND_DECORATOR = {"agent": "agent", "tool": "tool", "step": "trace"}
KIND_ORDER = ("agent", "tool", "step")
_LABEL_RE = re.compile(r"^[a-z0-9_]{1,64}$")
_SKIP_DIRS = frozenset({".git", ".hg", ".venv", "venv", "env", "__pycache__", "node_modules", "site-packages",
                        ".tox", ".nox", ".mypy_cache", ".pytest_cache", "build", "dist"})
_MAX_RATE_WAITS = 3


class InstrumentCliError(Exception):
    """A failure that ends the command with `exit_code`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class FileRejected(Exception):
    """This file cannot be processed; the others go on."""


# --- applying suggestions (pure) -------------------------------------------------------------


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


# --- talking to the server -------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    url: str
    api_key: str
    timeout: float


def suggestions_fetch(config: _Config, *, code: str, file_path: str, err: TextIO | None = None) -> dict[str, Any]:
    """The server's answer for one file: {"engine", "suggestions", "dropped"}.

    Raises FileRejected (400/413: this file only) or InstrumentCliError (unreachable, bad key, …).
    Waits out a 429 up to three times, as its Retry-After says.
    """
    endpoint = config.url.rstrip("/") + ENDPOINT
    payload = json.dumps({"code": code, "file_path": file_path}).encode()
    for attempt in range(_MAX_RATE_WAITS + 1):
        request = urllib.request.Request(endpoint, data=payload, method="POST", headers={
            "Authorization": f"Bearer {config.api_key}", "Content-Type": "application/json",
            "Accept": "application/json", "User-Agent": "llmobserve-cli"})
        try:
            with urllib.request.urlopen(request, timeout=config.timeout) as response:
                body = _json(response.read())
            break
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code == 429 and attempt < _MAX_RATE_WAITS:
                wait = _retry_after(exc.headers.get("Retry-After"))
                (err or sys.stderr).write(f"rate limited by the server; waiting {wait} s\n")
                time.sleep(wait)
                continue
            if exc.code in (401, 403):
                raise InstrumentCliError(f"The server rejected the API key ({exc.code}): {detail} "
                                         "Check LLMOBSERVE_API_KEY or --api-key.", EXIT_AUTH) from exc
            if exc.code in (400, 413, 422):
                raise FileRejected(detail) from exc
            if exc.code == 404:
                raise InstrumentCliError(f"{endpoint} was not found (404): is {config.url} an LLMObserve server?",
                                         EXIT_SERVER) from exc
            raise InstrumentCliError(f"The server answered {exc.code}: {detail}", EXIT_SERVER) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InstrumentCliError(f"Cannot reach {config.url}: {reason}. Check LLMOBSERVE_URL or --url.",
                                     EXIT_SERVER) from exc
    if not isinstance(body, dict) or not isinstance(body.get("suggestions"), list):
        raise InstrumentCliError(f"Unexpected answer from {endpoint}: not an ai-instrument response.", EXIT_SERVER)
    body["suggestions"] = [s for s in body["suggestions"] if isinstance(s, dict)]
    return body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = _json(exc.read())
    except OSError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    if isinstance(body, dict) and body:
        return "; ".join(f"{k}: {v}" for k, v in body.items())
    return exc.reason if isinstance(exc.reason, str) else f"HTTP {exc.code}"


def _retry_after(value: str | None) -> int:
    try:
        return max(1, min(60, int(value or "5")))
    except ValueError:
        return 5


# --- commands --------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `preview` and `instrument` to the `llmobserve` command; each sets `func(args) -> exit code`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("files", nargs="+", metavar="FILE", help="Python files, or directories to search for them")
    common.add_argument("--url", help=f"collector URL (default: $LLMOBSERVE_URL or {DEFAULT_URL})")
    common.add_argument("--api-key", help="API key (default: $LLMOBSERVE_API_KEY)")
    common.add_argument("--timeout", type=float, default=120.0, help="seconds to wait per file (default: 120)")

    preview = subparsers.add_parser(
        "preview", parents=[common], help="show where llmobserve decorators would go; changes nothing",
        description="Send each file to the server's AI auto-instrument and print its suggestions. Changes nothing.")
    preview.add_argument("--json", action="store_true", help="print the server's answers as JSON lines")
    preview.set_defaults(func=preview_command)

    instrument = subparsers.add_parser(
        "instrument", parents=[common], help="add llmobserve decorators to files (shows a diff first)",
        description=("Add the suggested @agent/@tool/@trace decorators and their import. Shows a unified diff and "
                     "asks before writing, unless --auto-apply; writes FILE.bak before changing FILE."))
    instrument.add_argument("--auto-apply", action="store_true", help="write the changes without asking")
    instrument.add_argument("-y", "--yes", action="store_true", help="answer yes to every question")
    instrument.add_argument("--min-kind", choices=KIND_ORDER, default="step",
                            help="coarsest kinds to apply: agent (agents only), tool (agents and tools), "
                                 "step (everything, the default)")
    instrument.set_defaults(func=instrument_command)


def _config(args: argparse.Namespace) -> _Config:
    url = (args.url or os.environ.get("LLMOBSERVE_URL") or DEFAULT_URL).strip()
    api_key = (args.api_key or os.environ.get("LLMOBSERVE_API_KEY") or "").strip()
    if not api_key:
        raise InstrumentCliError("No API key: set LLMOBSERVE_API_KEY or pass --api-key.", EXIT_USAGE)
    if not url.startswith(("http://", "https://")):
        raise InstrumentCliError(f"The collector URL must start with http:// or https://, not {url!r}.", EXIT_USAGE)
    return _Config(url=url, api_key=api_key, timeout=float(args.timeout))


def collect_files(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """(Python files to process, error messages for paths that do not exist)."""
    files: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*.py")):
                parts = found.relative_to(path).parts[:-1]
                if not any(p in _SKIP_DIRS or p.startswith(".") for p in parts):
                    files.append(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{raw}: no such file or directory")
    return list(dict.fromkeys(files)), errors


@dataclass
class _Source:
    text: str      # without a BOM; newlines as in the file
    bom: bool
    raw: bytes


def _read(path: Path) -> _Source:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileRejected(f"cannot read: {exc.strerror or exc}") from exc
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw[3:].decode("utf-8") if bom else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 (byte {exc.start}); only UTF-8 source files are supported") from exc
    try:
        ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise FileRejected(f"does not parse: {exc.msg} (line {exc.lineno})") from exc
    except ValueError as exc:
        raise FileRejected(f"does not parse: {exc}") from exc
    return _Source(text=text, bom=bom, raw=raw)


class _Progress:
    """A one-line progress bar on stderr, only for several files on a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.enabled = total > 1 and stream.isatty()
        self.done = 0

    def show(self, label: str) -> None:
        if self.enabled:
            width = 24
            filled = width * self.done // self.total
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[-40:]}\x1b[K")
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def step(self) -> None:
        self.done += 1


def _decorator_text(suggestion: dict[str, Any]) -> str:
    label = suggestion.get("suggested_label", "")
    kind = suggestion.get("kind")
    if kind == "step":
        return f'@trace(step="{label}")'
    return f'@{KIND_DECORATOR.get(str(kind), str(kind))}("{label}")'


def _print_suggestions(path: str, answer: dict[str, Any], out: TextIO) -> None:
    suggestions = answer["suggestions"]
    dropped = answer.get("dropped") or 0
    extra = f", {dropped} dropped by validation" if dropped else ""
    out.write(f"{path}  (engine: {answer.get('engine', '?')}; {len(suggestions)} suggestion"
              f"{'' if len(suggestions) == 1 else 's'}{extra})\n")
    if not suggestions:
        out.write("  no function here reaches an LLM call that is not already labelled\n")
    for number, s in enumerate(suggestions, start=1):
        type_ = s.get("type", "decorator")
        out.write(f"  {number:>2}. line {s.get('line_number')}: {s.get('function_name')}  "
                  f"{_decorator_text(s)}{'' if type_ == 'decorator' else f'  [{type_}]'}\n")
        if s.get("reason"):
            out.write(f"      {s['reason']}\n")


def run_preview(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    config = _config(args)
    files, missing = collect_files(args.files)
    failed = len(missing)
    for message in missing:
        err.write(f"error: {message}\n")
    progress = _Progress(len(files), err)
    for path in files:
        progress.show(str(path))
        try:
            source = _read(path)
            answer = suggestions_fetch(config, code=source.text, file_path=str(path), err=err)
        except FileRejected as exc:
            progress.clear()
            err.write(f"error: {path}: {exc}\n")
            failed += 1
            progress.step()
            continue
        progress.clear()
        progress.step()
        if args.json:
            out.write(json.dumps({"file": str(path), **answer}) + "\n")
        else:
            _print_suggestions(str(path), answer, out)
    progress.clear()
    return EXIT_FILES if failed else EXIT_OK


def _ask(question: str, err: TextIO) -> str:
    err.write(question)
    err.flush()
    try:
        return input().strip().lower()
    except EOFError:
        return "n"


def _write(path: Path, source: _Source, new_text: str) -> Path:
    """FILE.bak with the exact original bytes, then FILE replaced atomically, mode kept."""
    backup = path.with_name(path.name + ".bak")
    backup.write_bytes(source.raw)
    data = (b"\xef\xbb\xbf" if source.bom else b"") + new_text.encode("utf-8")
    mode = path.stat().st_mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup


def run_instrument(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        import libcst  # noqa: F401
    except ImportError as exc:
        raise InstrumentCliError('`llmobserve instrument` needs libcst: pip install "llmobserve[cli]"',
                                 EXIT_USAGE) from exc
    config = _config(args)
    files, missing = collect_files(args.files)
    failed = len(missing)
    for message in missing:
        err.write(f"error: {message}\n")
    interactive = not (args.auto_apply or args.yes) and sys.stdin.isatty()
    apply_all = args.auto_apply or args.yes
    changed: list[Path] = []
    pending: list[Path] = []
    progress = _Progress(len(files), err)
    for path in files:
        progress.show(str(path))
        try:
            source = _read(path)
            answer = suggestions_fetch(config, code=source.text, file_path=str(path), err=err)
            suggestions = filter_kinds(answer["suggestions"], args.min_kind)
            new_text = apply_suggestions(source.text, suggestions)
            if new_text != source.text:
                ast.parse(new_text)  # never write a file that no longer parses
        except FileRejected as exc:
            progress.clear()
            err.write(f"error: {path}: {exc}\n")
            failed += 1
            progress.step()
            continue
        except SyntaxError as exc:
            progress.clear()
            err.write(f"error: {path}: the rewrite would not parse ({exc.msg}); file left unchanged\n")
            failed += 1
            progress.step()
            continue
        progress.clear()
        progress.step()
        if new_text == source.text:
            out.write(f"{path}: nothing to change (engine: {answer.get('engine', '?')})\n")
            continue
        out.write(unified_diff(source.text, new_text, str(path)))
        decision = "y" if apply_all else "n"
        if interactive:
            decision = _ask(f"Apply these changes to {path}? [y]es / [n]o / [a]ll / [q]uit: ", err)
            if decision == "a":
                apply_all, interactive, decision = True, False, "y"
            elif decision == "q":
                pending.append(path)
                break
        if decision in ("y", "yes"):
            backup = _write(path, source, new_text)
            changed.append(path)
            out.write(f"{path}: instrumented (original saved as {backup.name})\n")
        else:
            pending.append(path)
    progress.clear()
    if pending and not interactive:
        out.write(f"{len(pending)} file(s) not changed: run again with --auto-apply to write them.\n")
    out.write(f"{len(changed)} file(s) instrumented, {failed} failed.\n")
    return EXIT_FILES if failed else EXIT_OK


def _guarded(command: Any, args: argparse.Namespace) -> int:
    """Run a command, turning failures into a message on stderr and an exit code."""
    try:
        result: int = command(args)
        return result
    except InstrumentCliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def preview_command(args: argparse.Namespace) -> int:
    return _guarded(run_preview, args)


def instrument_command(args: argparse.Namespace) -> int:
    return _guarded(run_instrument, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m llmobserve._instrument_cli …`); `llmobserve` calls `register`."""
    parser = argparse.ArgumentParser(prog="llmobserve")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
