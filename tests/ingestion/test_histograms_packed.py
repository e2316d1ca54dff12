"""PostgreSQL stores a latency histogram packed in one numeric (`histograms.pack`): the packed form reads back
the exact counts, and what the fold stores (both databases, first insert and ON CONFLICT merge) is exactly the
count of the events' buckets."""

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from ingestion import histograms
from ingestion.models import ROLLUP_GRAINS, RollupHistograms, TraceEvent
from ingestion.rollups import sqlite_functions_register

NOW = datetime(2026, 10, 31, 23, 40, tzinfo=timezone.utc)


@pytest.mark.parametrize("seed", range(30))
def test_a_packed_histogram_unpacks_to_the_same_counts(seed):
    rng = random.Random(seed)
    counts = {rng.randrange(histograms.SIZE): rng.randrange(1, 10 ** rng.randrange(1, histograms.WIDTH + 1))
              for _ in range(rng.randrange(1, 120))}
    packed = histograms.pack({str(k): n for k, n in counts.items()})
    assert isinstance(packed, Decimal) and packed == packed.to_integral_value()
    want = histograms.dense(counts)
    assert histograms.unpack(packed) == want == histograms.dense(format(packed, "f")) == histograms.dense(packed)
    other = {k: rng.randrange(10 ** histograms.WIDTH - n) for k, n in counts.items()}  # sums stay < 10**WIDTH
    total = histograms.EXACT.add(packed, histograms.pack(other))  # adding the numbers = merging the histograms
    assert histograms.unpack(total) == histograms.dense_add(want, histograms.dense(other))


def test_pack_edges_and_refusals():
    assert histograms.pack({}) is None and histograms.pack(None) is None
    top = histograms.pack({0: 10 ** histograms.WIDTH - 1, histograms.OVERFLOW: 1})
    assert histograms.unpack(top)[0] == 10 ** histograms.WIDTH - 1 and histograms.unpack(top)[-1] == 1
    for bad in ({histograms.SIZE: 1}, {-1: 1}, {3: 10 ** histograms.WIDTH}, {3: -1}):
        with pytest.raises(ValueError):
            histograms.pack(bad)
    for bad in ("12a4", "1" + "0" * (histograms.WIDTH * histograms.SIZE)):
        with pytest.raises(ValueError):
            histograms.unpack(bad)


@pytest.mark.django_db
def test_the_fold_stores_exactly_the_events_bucket_counts(org, ingest_key, post_events, prices):
    rng = random.Random(17)
    with time_machine.travel(NOW, tick=False):
        for batch in range(4):  # the same hours and keys again: the ON CONFLICT merge adds to existing rows
            events = [{"event_id": f"b{batch}-{i}", "run_id": f"r{i % 5}", "provider": "openai",
                       "model": rng.choice(["gpt-4o", "gpt-4o-mini"]), "section_path": rng.choice(["", "agent:a"]),
                       "endpoint": "/v1/chat/completions", "status": rng.choice(["ok", "ok", "error"]),
                       "latency_ms": rng.choice([None, 0.2, 4_000_000.0] + [rng.lognormvariate(6, 1.5)] * 6),
                       "stream": i % 3 == 0, "ttft_ms": rng.lognormvariate(4, 1) if i % 3 == 0 else None,
                       "timestamp": (NOW - timedelta(minutes=rng.randrange(3 * 60))).isoformat()}
                      for i in range(150)]
            assert post_events(ingest_key, events).json()["accepted"] == 150
    if connection.vendor == "sqlite":
        sqlite_functions_register()  # CountsSum's aggregate, on this connection
    stored = TraceEvent.objects.for_org(org)
    want = {"latency_hist": histograms.counts_of(stored.values_list("latency_bucket", flat=True)),
            "ttft_hist": histograms.counts_of(stored.values_list("ttft_bucket", flat=True))}
    assert want["latency_hist"][0] and want["latency_hist"][histograms.OVERFLOW] and want["ttft_hist"]
    for _, hourly, daily in ROLLUP_GRAINS.values():
        for model in (hourly, daily):
            if not issubclass(model, RollupHistograms):
                continue
            rows = list(model.objects.for_org(org).values("latency_hist", "ttft_hist"))
            assert rows and not any(v == {} for r in rows for v in r.values())  # None when empty
            for column, counts in want.items():
                assert histograms.counts_merge(*(r[column] for r in rows)) == counts, (model.__name__, column)
                merged = model.objects.for_org(org).aggregate(m=histograms.CountsSum(column))["m"]
                assert histograms.dense(merged) == histograms.dense(counts), (model.__name__, column)
