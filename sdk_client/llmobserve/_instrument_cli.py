"""`llmobserve preview` and `llmobserve instrument`: AI auto-instrument from the command line.

Each file is sent to the collector's `POST /v1/ai-instrument`, which answers with validated
suggestions (`@agent`, `@tool`, `@trace(step=…)` for named functions). `instrument` applies them
with libcst, so every byte the change does not touch stays as it was; it writes `FILE.bak`
first, skips functions already decorated, and a second run changes nothing.

Exit codes, for scripts: 0 success; 1 one or more files could not be processed (unreadable,
unparsable, rejected); 2 usage or configuration error; 3 server unreachable or failing;
4 API key rejected.

The rewriting is `_rewrite.py` (libcst, from the `cli` extra, imported lazily); the HTTP call is
`_api_client.py` (stdlib `urllib.request`); this module holds the commands.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time  # noqa: F401  (tests wait out 429s through `_instrument_cli.time.sleep`)
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ._api_client import (
    ENDPOINT,
    EXIT_AUTH,
    EXIT_FILES,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    FileRejected,
    InstrumentCliError,
    _Config,
    suggestions_fetch,
)
from ._rewrite import DECORATORS, KIND_DECORATOR, KIND_ORDER, apply_suggestions, filter_kinds, unified_diff

__all__ = [
    "DECORATORS", "DEFAULT_URL", "ENDPOINT", "EXIT_AUTH", "EXIT_FILES", "EXIT_OK", "EXIT_SERVER", "EXIT_USAGE",
    "FileRejected", "InstrumentCliError", "KIND_DECORATOR", "KIND_ORDER", "apply_suggestions", "collect_files",
    "filter_kinds", "instrument_command", "main", "preview_command", "register", "run_instrument", "run_preview",
    "suggestions_fetch", "unified_diff",
]

DEFAULT_URL = "http://127.0.0.1:8000"
_SKIP_DIRS = frozenset({".git", ".hg", ".venv", "venv", "env", "__pycache__", "node_modules", "site-packages",
                        ".tox", ".nox", ".mypy_cache", ".pytest_cache", "build", "dist"})


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
