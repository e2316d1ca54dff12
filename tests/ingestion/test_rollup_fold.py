"""One rollup fold: re-pricing prices like ingestion, and the incrementally maintained rollups, run
summaries and facets always equal a rebuild from the events (`manage.py rebuild_rollups`)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ..conftest import make_price
from ingestion.models import HourlyRollup, RunSummary, TraceEvent
from ingestion.services import events_reprice_range

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_range_repricing_keeps_per_unit_costs(org, ingest_key, post_events):
    """A unit-priced event ($2.00 for 16 units) used to drop to $0 after a range re-price: units were lost."""
    make_price(provider="cohere", model_match="rerank-v3", input_mtok="0", output_mtok="0",
               per_unit_usd=Decimal("0.125"))
    post_events(ingest_key, [{"event_id": "u", "run_id": "r", "provider": "cohere", "model": "rerank-v3",
                              "input_tokens": 0, "output_tokens": 0, "metadata": {"units": 16},
                              "timestamp": (NOW - timedelta(minutes=5)).isoformat()}])
    two_dollars = 2 * 10**12
    assert TraceEvent.objects.for_org(org).get().cost_pico == two_dollars

    events_reprice_range(since=NOW - timedelta(hours=1), until=NOW + timedelta(hours=1), org_id=org.pk)

    assert TraceEvent.objects.for_org(org).get().cost_pico == two_dollars
    assert HourlyRollup.objects.for_org(org).get().cost_pico == two_dollars
    assert RunSummary.objects.for_org(org).get().cost_pico == two_dollars
