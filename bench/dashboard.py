"""Dashboard latency vs data size: pages and read-API stats for a 10k-event org and a 1M-event org.

Includes the Performance page, /v1/stats/latency, /v1/stats/errors and the latency timeseries (issue 15):
they merge the rollups' latency histograms and error counts, so they too should stay flat.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/llmo_bench .venv/bin/python bench/dashboard.py
    (options: --big 1000000 --small 10000 --repeat 15 --only performance,latency --profile)

`--only` keeps the pages/APIs whose label contains one of the comma-separated words; `--profile` also prints,
per org, the top functions (cProfile, cumulative time) of each kept request: where the time goes at 1M vs 10k.

Loads the events once through the real ingestion path (validate → RawBatch → batch_process, COPY on
PostgreSQL), reusing what an earlier run loaded, then prints the median server time (in-process,
Django test client, no network) of each page and API call for both orgs and the big/small ratio.
Pages read hourly rollups and run summaries, so the ratio should stay near 1 (target ≤ 1.5×).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")
os.environ.setdefault("LLMOBSERVE_TESTING", "1")  # lets the test client's "testserver" host in

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import ApiKey, Membership, Organization, User  # noqa: E402
from accounts.services import api_key_create, membership_add, org_create  # noqa: E402
from analytics.demo import demo_events  # noqa: E402
from ingestion.models import ModelPrice, RunSummary, TraceEvent  # noqa: E402
from ingestion.schema import batch_decode, events_validate  # noqa: E402
from ingestion.services import batch_process, events_ingest  # noqa: E402

EVENTS_PER_RUN_DAY = 3400 / (30 * 42)  # what demo_events yields per run per day on average
PRICES = [
    ("openai", "exact", "gpt-4o", "2.5", "10", "1.25"), ("openai", "exact", "gpt-4o-mini", "0.15", "0.6", "0.075"),
    ("openai", "exact", "text-embedding-3-small", "0.02", "0", None),
    ("anthropic", "prefix", "claude-sonnet-4", "3", "15", "0.3"), ("anthropic", "prefix", "claude-haiku-4", "1", "5", "0.1"),
    ("google", "exact", "gemini-2.5-flash", "0.3", "2.5", "0.075"), ("google", "exact", "gemini-2.5-pro", "1.25", "10", "0.31"),
]
PERF_READS = ("performance", "latency", "errors")  # the labels of issue 15's reads (latency/error histograms)


def ensure_prices() -> None:
    for provider, kind, match, inp, out, cached in PRICES:
        ModelPrice.objects.unscoped().get_or_create(org=None, provider=provider, match_kind=kind, model_match=match,
                                                    defaults={"input_mtok": inp, "output_mtok": out,
                                                              "cached_input_mtok": cached})


def ensure_org(slug: str, target: int, user: User) -> Organization:
    org = Organization.objects.filter(slug=slug).first() or org_create(name=slug, slug=slug)
    membership_add(org=org, user=user, role=Membership.Role.OWNER)
    key = ApiKey.objects.for_org(org).filter(revoked_at__isnull=True).first() or \
        api_key_create(org=org, name="bench", scope="read").api_key
    have = TraceEvent.objects.for_org(org).count()
    if have >= target * 0.8:  # re-sent demo ids are dropped, so a reload can land a little short
        print(f"{slug}: {have:,} events already loaded")
        return org
    now = datetime.now(timezone.utc)
    runs_per_day = max(1, round(target / 30 / EVENTS_PER_RUN_DAY))
    started, loaded = time.perf_counter(), 0
    for day in range(30):
        day_end = now - timedelta(days=29 - day)
        events = demo_events(now=day_end, seed=1000 + day, days=1, runs_per_day=runs_per_day)
        for e in events:
            e["event_id"] = f"{slug}-{day}-{e['event_id']}"
        for start in range(0, len(events), 1000):
            typed, raw = batch_decode(json.dumps({"events": events[start:start + 1000]}).encode())
            valid, rejected = events_validate(typed=typed, raw=raw)
            result = events_ingest(api_key=key, events=valid, rejected=rejected)
            if result.batch_id:
                batch_process(batch_id=result.batch_id)
            loaded += len(valid)
        print(f"  {slug}: day {day + 1}/30, {loaded:,} events, {loaded / (time.perf_counter() - started):,.0f}/s",
              flush=True)
    return org


def median_ms(client: Client, path: str, repeat: int, **headers) -> float:
    for _ in range(2):
        client.get(path, headers=headers)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times)


def profile_print(client: Client, label: str, path: str, repeat: int, **headers) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        client.get(path, headers=headers)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"analytics|ingestion|django/db|psycopg", 18)
    print(f"--- profile {label} ({repeat} requests) ---")
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--only", default="", help="comma-separated words: keep the labels containing one")
    parser.add_argument("--profile", action="store_true", help="print each kept request's top functions")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("note: run this on PostgreSQL (DATABASE_URL=postgres://…) for meaningful figures", file=sys.stderr)
    call_command("migrate", verbosity=0)
    ensure_prices()
    user = User.objects.filter(email="bench@llmobserve.dev").first() or \
        User.objects.create_user("bench@llmobserve.dev", "bench-password-1")
    orgs = {"small": ensure_org("bench-small", args.small, user), "big": ensure_org("bench-big", args.big, user)}
    connection.cursor().execute("ANALYZE") if connection.vendor == "postgresql" else None

    client = Client()
    client.force_login(user)
    results: dict[str, dict[str, float]] = {}
    for size, org in orgs.items():
        api_key = api_key_create(org=org, name="bench-read", scope="read").raw_key
        run = RunSummary.objects.for_org(org).order_by("-calls").first()
        s = org.slug
        pages = {
            "overview 24h": f"/o/{s}/", "overview 7d": f"/o/{s}/?window=7d", "overview 30d": f"/o/{s}/?window=30d",
            "overview 7d (htmx)": (f"/o/{s}/?window=7d", {"HX-Request": "true"}),
            "runs 24h": f"/o/{s}/runs/", "runs 30d agent filter": f"/o/{s}/runs/?window=30d&agent=agent:writer",
            "run detail": f"/o/{s}/runs/{run.run_id}/", "customers 30d": f"/o/{s}/customers/?window=30d",
            "customer detail 30d": f"/o/{s}/customers/acme-corp/?window=30d", "export form": f"/o/{s}/export/",
            "performance 24h": f"/o/{s}/performance/", "performance 30d": f"/o/{s}/performance/?window=30d",
        }
        auth = {"Authorization": f"Bearer {api_key}"}
        for name in ("summary", "breakdown?by=agent", "breakdown?by=model", "timeseries?interval=day",
                     "latency?by=model", "latency?by=section", "errors?by=section", "errors?by=provider",
                     "timeseries?metric=latency_p95&by=model"):
            sep = "&" if "?" in name else "?"
            pages[f"API stats/{name} 30d"] = (f"/v1/stats/{name}{sep}window=30d", auth)
        pages["API runs 30d"] = ("/v1/runs?window=30d", auth)
        only = [w for w in args.only.split(",") if w]
        for label, target in pages.items():
            if only and not any(w in label for w in only):
                continue
            path, headers = target if isinstance(target, tuple) else (target, {})
            results.setdefault(label, {})[size] = median_ms(client, path, args.repeat, **headers)
            if args.profile:
                profile_print(client, f"{label} [{size}]", path, args.repeat, **headers)

    counts = {size: TraceEvent.objects.for_org(org).count() for size, org in orgs.items()}
    print(f"\nmedian server time, {args.repeat} runs each ({connection.vendor}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}); "
          f"small = {counts['small']:,} events, big = {counts['big']:,} events")
    print(f"{'page / API':32} {'small ms':>9} {'big ms':>9} {'ratio':>6}")
    worst, worst_perf = 0.0, 0.0
    for label, row in results.items():
        ratio = row["big"] / row["small"] if row["small"] else float("inf")
        worst = max(worst, ratio)
        if any(w in label for w in PERF_READS):
            worst_perf = max(worst_perf, ratio)
        print(f"{label:32} {row['small']:9.1f} {row['big']:9.1f} {ratio:6.2f}")
    print(f"worst ratio {worst:.2f} (target ≤ 1.5); latency/error reads (issue 15) {worst_perf:.2f}")


if __name__ == "__main__":
    main()
