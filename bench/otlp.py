"""OTLP ingest throughput, end to end, on PostgreSQL + Redis, against the native path in the same run.

The setup of bench/ingest.py (its helpers): a fresh PostgreSQL database, one Celery worker (-c 2, the Procfile's),
gunicorn (-w 2). On the same servers, `--rounds` (default 3) pairs of phases, alternating, each phase on an
organisation of its own:

1. native: bench/ingest.py's events (default 120,000) in 1,000-event gzip batches → /v1/events;
2. otlp: 120,000 GenAI spans in agent traces: an invoke_agent root and `--steps` steps (default 1) of five
   spans — a chat under the agent, 2 × execute_tool, one HTTP client span under the first, a chat under the
   second — so one step is a trace of six spans, 2 chat calls, a third of the spans LLM calls (`--steps 4`:
   21 spans, 8 calls, the calls per run of bench/ingest.py's runs), in the order a BatchSpanProcessor
   exports them (children before parents, traces split across requests), as gzip protobuf
   ExportTraceServiceRequests of 512 spans → /v1/otlp/v1/traces.

Each rate runs from the first POST until every call is counted in the org's rollups (watched in the
database, then checked against /v1/stats/summary); then the stored calls are checked to be priced. The CPU
each role used (web, worker, PostgreSQL, from /proc as in bench/ingest.py) is printed per event and per
call. Prints spans/s, LLM calls/s and the ratio of each OTLP phase's LLM calls/s to the native events/s of the
phase before it and of the phase after it, and the median of these ratios (issue 14's target: OTLP LLM calls/s
≥ 60% of native events/s). The machine's speed drifts between phases a minute apart (by up to 40% in some
sessions); alternating phases and taking the median keeps one slow or fast phase from deciding the result.
Each phase starts with no dirty buffer of another phase: a CHECKPOINT after it writes out its own (timed and
printed, outside its rate), as bench/ingest.py's single phase starts on a fresh database. Without it
(`--no-checkpoint`) a phase paid for writing out the phase before it, and the OTLP phases follow the native
phases of 120,000 events.

    .venv/bin/python bench/otlp.py [--spans 120000] [--events 120000] [--steps 1] [--rounds 3] [--threads 4]
                                   [--concurrency 2] [--keep] [--template DB] [--no-checkpoint]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (  # noqa: E402
    PG, PY, REDIS_URL, ROOT, Answer, CpuSampler, database_drop, free_port, make_batches, manage, post_all, wait_http,
)

STEP_SPANS, STEP_CALLS = 5, 2  # a step: a chat under the agent, 2 × execute_tool (one with an HTTP span, one
# with a chat below it); a trace is an invoke_agent root and its steps (1 step: 6 spans, a third of them calls)


def spans_per_trace(steps: int) -> int:
    return 1 + STEP_SPANS * steps
AGENTS = ["researcher", "writer", "planner", "support"]
TOOLS = ["web_search", "edit", "lookup", "summarize"]
CHAT_MODELS = [("openai", "gpt-4o-2024-08-06"), ("openai", "gpt-4o-mini-2024-07-18"),
               ("anthropic", "claude-sonnet-4-20250514")]


def make_otlp_batches(n_spans: int, batch_size: int, seed: int = 2, steps: int = 1) -> Tuple[List[bytes], int]:
    """Protobuf ExportTraceServiceRequests (gzip) in BatchSpanProcessor order; returns (bodies, LLM calls)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    rng = random.Random(seed)
    now_ns = time.time_ns()
    per_trace = spans_per_trace(steps)

    def kv(key: str, value) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    def span(trace_id: bytes, span_id: bytes, parent: bytes, name: str, start: int, dur_ms: int,
             kind: int, attrs: dict, error: bool = False) -> Span:
        return Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind=kind,
                    start_time_unix_nano=start, end_time_unix_nano=start + dur_ms * 1_000_000,
                    attributes=[kv(k, v) for k, v in attrs.items()],
                    status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET))

    # (scope, span) in end order: every trace's children end (and are exported) before its root.
    ordered: List[Tuple[str, Span]] = []
    calls = 0
    for _ in range(n_spans // per_trace):
        tid = rng.getrandbits(128).to_bytes(16, "big")
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        t0 = now_ns - rng.randint(60, 20 * 3600) * 1_000_000_000
        agent, customer = rng.choice(AGENTS), f"cust-{rng.randint(1, 50)}"

        def chat(sid: bytes, parent: bytes, start: int) -> Tuple[str, Span]:
            provider, model = rng.choice(CHAT_MODELS)
            inp = rng.randint(100, 5000)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                     "gen_ai.request.model": model.rsplit("-2", 1)[0], "gen_ai.response.model": model,
                     "gen_ai.response.id": f"resp-{sid.hex()}", "gen_ai.usage.input_tokens": inp,
                     "gen_ai.usage.output_tokens": rng.randint(10, 800),
                     "gen_ai.usage.cache_read.input_tokens": rng.choice([0, 0, min(64, inp)]),
                     "server.address": "api.openai.com" if provider == "openai" else "api.anthropic.com"}
            return "opentelemetry.util.genai.handler", span(tid, sid, parent, f"chat {model}", start,
                                                           rng.randint(100, 3000), Span.SPAN_KIND_CLIENT, attrs,
                                                           error=rng.random() < 0.02)

        for step in range(steps):
            tool1, tool2, http_id, chat1, chat2 = [rng.getrandbits(64).to_bytes(8, "big") for _ in range(STEP_SPANS)]
            at = t0 + step * 10_000_000_000
            ordered.append(chat(chat1, root_id, at + 1_000_000))
            ordered.append(("opentelemetry.instrumentation.requests", span(
                tid, http_id, tool1, "GET", at + 3_100_000_000, 200, Span.SPAN_KIND_CLIENT,
                {"http.request.method": "GET", "url.full": "https://search.example.com/q",
                 "http.response.status_code": 200})))
            ordered.append(("app", span(tid, tool1, root_id, f"execute_tool {TOOLS[0]}", at + 3_000_000_000, 500,
                                        Span.SPAN_KIND_INTERNAL, {"gen_ai.operation.name": "execute_tool",
                                                                  "gen_ai.tool.name": rng.choice(TOOLS)})))
            ordered.append(chat(chat2, tool2, at + 4_000_000_000))
            ordered.append(("app", span(tid, tool2, root_id, "execute_tool", at + 3_900_000_000, 4000,
                                        Span.SPAN_KIND_INTERNAL, {"gen_ai.operation.name": "execute_tool",
                                                                  "gen_ai.tool.name": rng.choice(TOOLS)})))
            calls += STEP_CALLS
        ordered.append(("app", span(tid, root_id, b"", f"invoke_agent {agent}", t0, 9000 + 10_000 * (steps - 1),
                                    Span.SPAN_KIND_INTERNAL, {"gen_ai.operation.name": "invoke_agent",
                                                              "gen_ai.agent.name": agent, "enduser.id": customer})))
    # Traces interleave in a real process: shuffle in windows of a few traces, keeping each
    # trace's child-before-parent order.
    window = per_trace * 8
    mixed: List[Tuple[str, Span]] = []
    for w in range(0, len(ordered), window):
        chunk = ordered[w:w + window]
        traces = [chunk[i:i + per_trace] for i in range(0, len(chunk), per_trace)]
        while traces:
            t = rng.choice(traces)
            mixed.append(t.pop(0))
            if not t:
                traces.remove(t)

    resource = Resource(attributes=[kv("service.name", "bench-agent"), kv("telemetry.sdk.language", "python")])
    bodies = []
    for b in range(0, len(mixed), batch_size):
        by_scope: dict = {}
        for scope, sp in mixed[b:b + batch_size]:
            by_scope.setdefault(scope, []).append(sp)
        req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[
            ScopeSpans(scope=InstrumentationScope(name=scope), spans=spans) for scope, spans in by_scope.items()])])
        bodies.append(gzip.compress(req.SerializeToString(), 1))
    return bodies, calls


def ingest_in_process(ingest_key: str, n_spans: int, steps: int = 4) -> int:
    """In-process benches (Django set up): `n_spans` of these spans through the request's write (`otlp_ingest`), then
    drained by `batch_process` from the oldest pending batch, as a backed-up worker does; the LLM calls."""
    from django.db import transaction

    from accounts.selectors import api_key_get_active
    from ingestion import services
    from ingestion.models import RawBatch
    from ingestion.otlp_services import otlp_ingest

    bodies, calls = make_otlp_batches(n_spans, 512, steps=steps)
    key = api_key_get_active(raw_key=ingest_key)
    for body in bodies:
        with transaction.atomic():
            otlp_ingest(api_key=key, body=gzip.decompress(body), json_body=False)
    while (first := RawBatch.objects.unscoped().filter(processed_at__isnull=True).order_by("pk").first()):
        services.batch_process(batch_id=first.pk)
    return calls


def wait_counted(base: str, read_key: str, expected: int, db: str, org: str, timeout: float = 1800) -> None:
    """Watch the org's rollup total with one small query every 50 ms (as bench/ingest.py does: polling
    /v1/stats/summary that often spent the measured web and database processes' CPU on the observer), then
    check that the API agrees."""
    deadline = time.monotonic() + timeout
    calls = 0
    with psycopg.connect(f"{PG}/{db}", autocommit=True) as watch:
        while time.monotonic() < deadline:
            calls = watch.execute(
                "SELECT coalesce(sum(r.calls), 0) FROM ingestion_agentdailyrollup r JOIN accounts_organization o "
                "ON o.id = r.org_id WHERE o.slug = %s", [org]).fetchone()[0]
            if calls >= expected:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"only {calls:,} of {expected:,} calls counted after {timeout:.0f} s")
    s = requests.get(f"{base}/v1/stats/summary", params={"window": "24h"},
                     headers={"Authorization": f"Bearer {read_key}"}, timeout=10).json()
    if s["calls"] != expected:
        raise SystemExit(f"/v1/stats/summary counts {s['calls']:,} calls, not {expected:,}")


def checkpoint(db: str) -> float:
    """Write out every dirty buffer (PostgreSQL's CHECKPOINT); its seconds."""
    start = time.perf_counter()
    with psycopg.connect(f"{PG}/{db}", autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return time.perf_counter() - start


def pct(times: List[float], q: float) -> float:
    times = sorted(times)
    return times[min(len(times) - 1, int(len(times) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=120_000)
    parser.add_argument("--events", type=int, default=120_000, help="native events for the comparison")
    parser.add_argument("--batch", type=int, default=512, help="spans per OTLP export (the SDK's default)")
    parser.add_argument("--steps", type=int, default=1, help="agent steps per trace, 2 calls each (bench/ingest.py's "
                                                             "runs have 8 calls: --steps 4)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="native and OTLP phases, alternating, each on an org "
                                                                "of its own")
    parser.add_argument("--concurrency", type=int, default=2, help="the Celery worker's -c (2: the Procfile's)")
    parser.add_argument("--db", default="llmobserve_bench_otlp")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-checkpoint", action="store_true", help="no CHECKPOINT between phases (each phase then "
                        "also writes out the dirty buffers of the phase before it)")
    parser.add_argument("--template", default="", help="copy this migrated database (no connections to it) instead "
                                                      "of migrating a fresh one: minutes saved on a loaded machine")
    args = parser.parse_args()
    args.spans -= args.spans % spans_per_trace(args.steps)

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {args.db}" + (f" TEMPLATE {args.template}" if args.template else ""))
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING",
           "LLMOBSERVE_INGEST_RATE": "1000000", "LLMOBSERVE_READ_RATE": "100000"}
    print(f"uptime before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    print("migrating the database …", flush=True)
    manage(env, "migrate", "--noinput")  # a no-op on an up-to-date --template
    try:
        manage(env, "sync_prices")
    except subprocess.CalledProcessError:
        print("sync_prices unavailable; pricing from a minimal table")
    orgs = [f"{kind}{r + 1}" for r in range(args.rounds) for kind in ("native", "otlp")]
    keys = {}
    for org in orgs:
        ingest = manage(env, "create_api_key", "--org", org, "--create-org").strip().splitlines()[-1]
        read = manage(env, "create_api_key", "--org", org, "--scope", "read").strip().splitlines()[-1]
        keys[org] = (ingest, read)
    subprocess.run([PY, "-c", """
import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'llmobserve_site.settings'); django.setup()
from ingestion.models import ModelPrice
for provider, model, i, o in [('openai', 'gpt-4o', '2.5', '10'), ('openai', 'gpt-4o-mini', '0.15', '0.6'),
                              ('anthropic', 'claude-sonnet-4', '3', '15'), ('openai', 'text-embedding-3-small', '0.02', '0')]:
    if not ModelPrice.objects.unscoped().filter(provider=provider, model_match=model).exists():
        ModelPrice.objects.create(provider=provider, match_kind='prefix', model_match=model, input_mtok=i, output_mtok=o)
"""], cwd=ROOT, env=env, check=True)

    print(f"building {args.events:,} native events and {args.spans:,} spans …", flush=True)
    native_batches = make_batches(args.events, 1000) if args.events else []
    otlp_bodies, n_calls = make_otlp_batches(args.spans, args.batch, steps=args.steps)
    port = free_port()
    procs = [
        subprocess.Popen([PY, "-m", "celery", "-A", "llmobserve_site", "worker", "-c", str(args.concurrency),
                          f"--loglevel={os.environ.get('BENCH_WORKER_LOGLEVEL', 'WARNING')}",
                          "--without-gossip", "--without-mingle", "--without-heartbeat"], cwd=ROOT, env=env),
        subprocess.Popen([str(Path(PY).parent / "gunicorn"), "llmobserve_site.wsgi:application", "-w", "2",
                          "-b", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=ROOT, env=env),
    ]
    base = f"http://127.0.0.1:{port}"
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    def native_ok(r: Answer) -> str:
        return "" if r.status == 202 and not json.loads(r.body)["rejected"] else f"{r.status} {r.body[:200]!r}"

    def otlp_ok(r: Answer) -> str:
        if r.status != 200:
            return f"{r.status} {r.body[:200]!r}"
        rejected = ExportTraceServiceResponse.FromString(r.body).partial_success.rejected_spans
        return f"{rejected} spans rejected" if rejected else ""

    phases = []  # in the order run: (org, kind, items, seconds end to end, seconds until the POSTs were done, each
    # POST's seconds, CPU by role)
    try:
        wait_http(f"{base}/health")
        time.sleep(2)  # let the worker connect to the broker
        roles = {"web": [procs[1].pid], "worker": [procs[0].pid]}
        if not args.no_checkpoint:  # the first phase starts with no dirty buffer of the setup to write
            checkpoint(args.db)
        for org in orgs:
            native = org.startswith("native")
            if native and not native_batches:
                continue
            sampler = CpuSampler(roles, args.db)
            sampler.start()
            url, bodies, content_type, check, expected = (
                ("/v1/events", native_batches, "application/json", native_ok, args.events) if native else
                ("/v1/otlp/v1/traces", otlp_bodies, "application/x-protobuf", otlp_ok, n_calls))
            start, posts = post_all(f"{base}{url}", bodies, {
                "Authorization": f"Bearer {keys[org][0]}", "Content-Type": content_type, "Content-Encoding": "gzip"},
                args.threads, check)
            posted = time.perf_counter() - start
            wait_counted(base, keys[org][1], expected, args.db, org)
            secs, cpu = time.perf_counter() - start, sampler.finish()
            # this phase's own dirty buffers, written out before the next phase starts (timed, outside the rate)
            flushed = None if args.no_checkpoint else checkpoint(args.db)
            phases.append((org, "native" if native else "otlp", expected, secs, posted, posts, cpu, flushed))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    with psycopg.connect(f"{PG}/{args.db}", autocommit=True) as conn:
        stored = conn.execute(
            "SELECT o.slug, count(*), count(*) FILTER (WHERE e.cost_pico IS NOT NULL) FROM ingestion_traceevent e "
            "JOIN accounts_organization o ON o.id = e.org_id GROUP BY o.slug").fetchall()
    if not args.keep:
        database_drop(args.db)

    print("stored (org, calls, priced):", ", ".join(f"{s} {n:,} / {p:,}" for s, n, p in sorted(stored)))
    print(f"native: {args.events:,} events in 1,000-event gzip batches; otlp: {args.spans:,} spans ({n_calls:,} LLM "
          f"calls) in {len(otlp_bodies)} gzip protobuf exports of {args.batch}; {args.threads} threads")
    for org, kind, n, secs, posted, posts, cpu, flushed in phases:
        unit = "events" if kind == "native" else "LLM calls"
        extra = f" = {args.spans / secs:,.0f} spans/s" if kind == "otlp" else ""
        print(f"{org:8s} {secs:6.2f} s end to end (POSTs done in {posted:5.2f} s, p50 {pct(posts, .5):.0f} ms, "
              f"p95 {pct(posts, .95):.0f} ms) = {n / secs:,.0f} {unit}/s{extra}; CPU per {unit[:-1]}: " + "  ".join(
                  f"{role} {cpu[role][0] / n * 1e6:,.0f} µs" for role in sorted(cpu))
              + f"  (total {sum(t for t, _ in cpu.values()) / n * 1e6:,.0f} µs)"
              + (f"; then a CHECKPOINT in {flushed:.2f} s" if flushed is not None else ""))
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    # Each OTLP phase against the native phase before it and the one after it: a drift of the machine's speed
    # between phases moves the two neighbours' ratios in opposite directions, and the median holds.
    rates = [{kind: n / secs} for _, kind, n, secs, *_ in phases]
    pairs = ({**a, **b} for a, b in zip(rates, rates[1:]))
    ratios = [pair["otlp"] / pair["native"] for pair in pairs if len(pair) == 2]
    if ratios:
        print("otlp LLM calls/s / native events/s, each OTLP phase against its neighbours: "
              + ", ".join(f"{r:.1%}" for r in ratios))
        print(f"median {statistics.median(ratios):.1%} (target ≥ 60%)")


if __name__ == "__main__":
    main()
