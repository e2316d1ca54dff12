"""Issue 13 §6: the overview's Untracked row links to the runs with at least one call without a section label
(a run facet written at ingestion, so the runs list never scans events)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytestmark = pytest.mark.django_db
NOW = datetime.now(timezone.utc)


def _call(run_id: str, n: int, section: str = "") -> dict:
    event = {"event_id": f"{run_id}-{n}", "run_id": run_id, "provider": "openai", "model": "gpt-4o",
             "input_tokens": 100, "output_tokens": 10, "timestamp": (NOW - timedelta(minutes=30 - n)).isoformat()}
    if section:
        event["section_path"] = section
    return event


@pytest.fixture
def runs(org, ingest_key, post_events, prices):
    events = [_call("r-mixed", 1, "agent:writer"), _call("r-mixed", 2), _call("r-none", 3),
              _call("r-tracked", 4, "agent:writer/tool:x"), _call("r-tracked", 5, "agent:reader")]
    assert post_events(ingest_key, {"events": events}).json()["accepted"] == 5


def _listed(html: str) -> set[str]:
    return {run for run in ("r-mixed", "r-none", "r-tracked") if f">{run}</a>" in html}


def test_untracked_row_links_to_runs_with_untracked_calls(member_client, org, runs):
    overview = member_client.get(f"/o/{org.slug}/", {"window": "24h"}).content.decode()
    assert (f'href="/o/{org.slug}/runs/?window=24h&amp;untracked=1" data-testid="untracked-runs-link"'
            in overview)
    filtered = member_client.get(f"/o/{org.slug}/runs/", {"window": "24h", "untracked": "1"})
    assert filtered.status_code == 200
    assert _listed(filtered.content.decode()) == {"r-mixed", "r-none"}
    every = member_client.get(f"/o/{org.slug}/runs/", {"window": "24h"}).content.decode()
    assert _listed(every) == {"r-mixed", "r-none", "r-tracked"}
    agent = member_client.get(f"/o/{org.slug}/runs/", {"window": "24h", "agent": "agent:writer"}).content.decode()
    assert _listed(agent) == {"r-mixed", "r-tracked"}


def test_untracked_filter_is_tenant_scoped(client, org, runs):
    from tests.factories import MembershipFactory, OrganizationFactory

    other = MembershipFactory(org=OrganizationFactory())
    client.force_login(other.user)
    page = client.get(f"/o/{other.org.slug}/runs/", {"window": "24h", "untracked": "1"}).content.decode()
    assert _listed(page) == set()
    assert client.get(f"/o/{org.slug}/runs/", {"untracked": "1"}).status_code == 404
