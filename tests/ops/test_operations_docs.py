"""docs/operations.md and docs/grafana/llmobserve.json stay true: every expression they hold references only
metric names that /metrics really exposes, the dashboard is importable, the rules are valid rule YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from accounts.metrics import EXPOSED_NAMES

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bllmobserve_[a-z_]+\b")


@pytest.fixture
def exposed(org, ingest_key, post_events, scrape) -> set[str]:
    post_events(ingest_key, [{"provider": "openai", "model": "gpt-4o"}])
    return scrape().names()


def _referenced(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "docs" / "grafana" / "llmobserve.json").read_text())
    assert dashboard["__inputs"][0]["type"] == "datasource" and dashboard["__inputs"][0]["pluginId"] == "prometheus"
    exprs = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        exprs += [target["expr"] for target in panel["targets"]]
    return exprs


def _rules() -> list[dict]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Alert rules", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return [rule for group in yaml.safe_load(block)["groups"] for rule in group["rules"]]


def test_the_dashboard_references_only_exposed_metrics(exposed):
    exprs = _dashboard_exprs()
    used = set().union(*(_referenced(e) for e in exprs))
    assert all(_referenced(e) for e in exprs)
    assert used <= exposed, used - exposed
    # and it shows the signals an operator needs
    assert {"llmobserve_batches_pending", "llmobserve_batches_quarantined", "llmobserve_oldest_pending_batch_seconds",
            "llmobserve_event_lag_seconds_bucket", "llmobserve_ingest_requests_total"} <= used


def test_the_alert_rules_are_rule_yaml_on_exposed_metrics(exposed):
    rules = _rules()
    names = {rule["alert"] for rule in rules}
    assert {"LLMObserveIngestLagging", "LLMObserveBatchesQuarantined", "LLMObserveIngest5xx"} <= names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert _referenced(rule["expr"]) and _referenced(rule["expr"]) <= exposed, rule["alert"]


def test_the_metric_table_documents_every_exposed_metric():
    text = (ROOT / "docs" / "operations.md").read_text()
    for name in EXPOSED_NAMES:
        assert f"| `{name}` |" in text, name
