"""The import graph of the server: no cycles, dependencies one way (DESIGN §1), tasks queued by name."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("accounts", "ingestion", "analytics", "billing", "instrument", "ops", "llmobserve_site")
# What each app may import (DESIGN §1: llmobserve_site → apps; ingestion → accounts; accounts → none).
ALLOWED = {
    "accounts": {"accounts"},
    "ingestion": {"accounts", "ingestion"},
    "analytics": {"accounts", "ingestion", "analytics"},
    "billing": {"accounts", "ingestion", "billing"},
    "instrument": {"accounts", "ingestion", "instrument"},
    # ops reads every app for the operators (metrics, staff console); no app imports it.
    "ops": {"accounts", "ingestion", "analytics", "billing", "ops"},
    "llmobserve_site": set(APPS),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every project module imported anywhere in the file (top level or inside a function)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in APPS)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = [p for app in APPS for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]
    modules = {_module_name(p): p for p in files}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # `from pkg import name` names a module or an attribute: keep the longest existing module.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        edges[name] = targets
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycles_even_through_imports_inside_functions(graph):
    assert _cycles(graph) == []


def test_dependencies_flow_one_way(graph):
    wrong = sorted((src, dst) for src, targets in graph.items() for dst in targets
                   if dst.split(".")[0] not in ALLOWED[src.split(".")[0]])
    assert wrong == []


def test_only_the_worker_imports_tasks_modules_callers_queue_by_name(graph):
    """Services, views and admin queue with `enqueue_on_commit("app.tasks.name", …)`, never import a task."""
    importers = sorted((src, dst) for src, targets in graph.items() for dst in targets
                       if dst.endswith(".tasks") and src != dst)
    assert importers == []


def test_every_task_follows_the_house_rules(db):
    from celery import current_app

    from accounts.tasking import TRANSIENT_ERRORS

    current_app.loader.import_default_modules()
    ours = {name: task for name, task in current_app.tasks.items() if name.split(".")[0] in APPS}
    assert {"ingestion.tasks.batch_process", "ingestion.tasks.events_reprice", "ingestion.tasks.events_reprice_range",
            "analytics.tasks.alert_send"} <= set(ours)
    for name, task in ours.items():
        assert task.acks_late and task.reject_on_worker_lost, name
        assert tuple(task.autoretry_for) == TRANSIENT_ERRORS, name
        assert task.retry_backoff and task.retry_jitter and 0 <= task.max_retries <= 5, name
