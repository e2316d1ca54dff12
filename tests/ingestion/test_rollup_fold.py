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


# --- incremental == rebuild (hypothesis) ---------------------------------------------------------------

from django.core.management import call_command  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from ingestion.models import ROLLUP_GRAINS, ModelPrice, RawBatch, RunFacet  # noqa: E402
from ingestion.pricing import price_book_invalidate  # noqa: E402

BASE = NOW.replace(minute=0, second=0) - timedelta(days=3)
FOLDED = [m for _, hourly, daily in ROLLUP_GRAINS.values() for m in (hourly, daily)] + [RunSummary, RunFacet]

events = st.fixed_dictionaries({
    "event_id": st.sampled_from([f"e{i}" for i in range(40)]),  # a small pool: duplicates across batches
    "run_id": st.sampled_from(["r1", "r2", "r3", "r4"]),
    "section_path": st.sampled_from(["", "agent:a", "agent:a/tool:x", "agent:b", "agent:b/step:y/z"]),
    "customer_id": st.sampled_from([None, "", "acme", "globex"]),
    "model": st.sampled_from(["gpt-4o", "gpt-4o", "mystery-model", "rerank-v3"]),
    "endpoint": st.sampled_from(["", "/v1/chat/completions", "/v1/embeddings"]),  # the endpoint grain's key
    "status": st.sampled_from(["ok", "ok", "error", "timeout", "rate_limited", "cancelled"]),
    "http_status": st.sampled_from([None, 200, 400, 429, 429, 500, 503]),
    "input_tokens": st.integers(0, 5000),
    "output_tokens": st.integers(0, 2000),
    "latency_ms": st.none() | st.integers(0, 90_000),  # whole ms: float sums exact in any order
    "ttft_ms": st.none() | st.integers(0, 5_000),  # into the histograms, sums and maxima too
    "minutes": st.integers(0, 3 * 24 * 60),  # spread over three UTC days, in any order
    "micros": st.sampled_from([0, 0, 250_000, 999_999]),
    "units": st.none() | st.integers(0, 50),
    "cost_usd": st.none() | st.sampled_from(["0.5", "0.000001"]),
})
batches = st.lists(st.tuples(st.sampled_from([0, 1]), st.lists(events, min_size=1, max_size=8)), min_size=1,
                   max_size=6)
reprices = st.lists(st.tuples(st.integers(0, 3 * 24), st.integers(1, 48), st.sampled_from([None, 0, 1]),
                              st.sampled_from(["2.5", "5", "7.125"])), max_size=2)


def _wire(e: dict) -> dict:
    out = {k: v for k, v in e.items() if k not in ("minutes", "micros", "units", "cost_usd")}
    out["provider"] = "cohere" if e["model"] == "rerank-v3" else "openai"
    out["timestamp"] = (BASE + timedelta(minutes=e["minutes"], microseconds=e["micros"])).isoformat()
    if e["units"] is not None:
        out["metadata"] = {"units": e["units"]}
    if e["cost_usd"] is not None:
        out["cost_usd"] = e["cost_usd"]
    return out


def _snapshot() -> dict:
    return {model.__name__: sorted(tuple(row) for row in model.objects.unscoped().values_list(
        *[f.attname for f in model._meta.concrete_fields if f.attname != "id"])) for model in FOLDED}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches, reprices=reprices)
def test_incremental_rollups_equal_a_rebuild_from_events(batches, reprices, org, other_org, prices, client,
                                                         post_events):
    from accounts.services import api_key_create

    for model in (*FOLDED, TraceEvent, RawBatch):  # each example starts from no events
        model.objects.unscoped().filter(org__in=[org, other_org]).delete()
    ModelPrice.objects.unscoped().filter(pk=prices["gpt-4o"].pk).update(input_mtok="2.5")
    if not ModelPrice.objects.unscoped().filter(provider="cohere").exists():
        make_price(provider="cohere", model_match="rerank-v3", input_mtok="0", output_mtok="0",
                   per_unit_usd=Decimal("0.125"))
    price_book_invalidate()
    keys = [api_key_create(org=o, name="k").raw_key for o in (org, other_org)]

    for which, batch in batches:
        assert post_events(keys[which], [_wire(e) for e in batch]).status_code == 202
    for start_h, hours, which, input_mtok in reprices:
        ModelPrice.objects.unscoped().filter(pk=prices["gpt-4o"].pk).update(input_mtok=input_mtok)
        price_book_invalidate()
        since = BASE + timedelta(hours=start_h)
        events_reprice_range(since=since, until=since + timedelta(hours=hours),
                             org_id=None if which is None else (org, other_org)[which].pk)

    incremental = _snapshot()
    assert sum(len(rows) for rows in incremental.values()) > 0
    _assert_days_are_their_hours_summed()
    call_command("rebuild_rollups", stdout=open("/dev/null", "w"))
    assert _snapshot() == incremental
    call_command("rebuild_rollups", "--org", org.slug, "--since", (BASE + timedelta(days=1)).strftime("%Y-%m-%d"),
                 stdout=open("/dev/null", "w"))
    assert _snapshot() == incremental


def test_rebuild_rollups_repairs_damaged_tables_and_refuses_bad_arguments(org, other_org, ingest_key, post_events,
                                                                         prices):
    from django.core.management.base import CommandError

    post_events(ingest_key, [{"event_id": f"e{i}", "run_id": "r", "provider": "openai", "model": "gpt-4o",
                              "input_tokens": 100, "output_tokens": 10, "section_path": "agent:a/tool:t",
                              "customer_id": "acme", "timestamp": (NOW - timedelta(minutes=i)).isoformat()}
                             for i in range(3)])
    healthy = _snapshot()
    HourlyRollup.objects.for_org(org).update(cost_pico=1, calls=99)
    RunSummary.objects.for_org(org).update(agent="", customer_id="", calls=0)
    RunFacet.objects.for_org(org).delete()
    call_command("rebuild_rollups", "--org", org.slug, stdout=open("/dev/null", "w"))
    assert _snapshot() == healthy

    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("rebuild_rollups", "--since", "yesterday")
    with pytest.raises(CommandError, match="no organisation"):
        call_command("rebuild_rollups", "--org", "no-such-org")


def _assert_days_are_their_hours_summed():
    """An oracle independent of how the fold computes daily rows (on PostgreSQL, from its hourly rows to add):
    each daily row is its day's hourly rows of the same dimensions, summed in Python — sums, maxima, histogram
    counts and HTTP-code counts."""
    from ingestion.rollups import PERF_SUMS, ROLLUP_COUNTS, ROLLUP_MAXES, ROLLUP_SUMS

    for columns, hourly, daily in ROLLUP_GRAINS.values():
        sums = [*ROLLUP_SUMS, *(c for c in PERF_SUMS if hasattr(daily, c))]
        maps = [c for c in ROLLUP_COUNTS if hasattr(daily, c)]
        maxes = [c for c in ROLLUP_MAXES if hasattr(daily, c)]
        expected: dict[tuple, dict] = {}
        for row in hourly.objects.unscoped().values():
            key = (row["org_id"], row["hour"].replace(hour=0), *(row[c] for c in columns))
            acc = expected.setdefault(key, {c: 0 for c in sums} | {c: None for c in maxes}
                                      | {c: {} for c in maps})
            for c in sums:
                acc[c] += row[c]
            for c in maxes:
                if row[c] is not None and (acc[c] is None or row[c] > acc[c]):
                    acc[c] = row[c]
            for c in maps:
                for k, n in (row[c] or {}).items():
                    acc[c][str(k)] = acc[c].get(str(k), 0) + n
        actual = {(row["org_id"], row["day"], *(row[c] for c in columns)):
                  {c: row[c] for c in sums} | {c: row[c] for c in maxes}
                  | {c: {str(k): n for k, n in (row[c] or {}).items()} for c in maps}
                  for row in daily.objects.unscoped().values()}
        assert actual == expected, daily.__name__
