"""Per-call overhead of the llmobserve SDK vs. a bare call vs. OpenLLMetry.

The official ``openai`` client calls a local OpenAI-format server (its own
process, HTTP/1.1 keep-alive) in a loop. Three modes:

* ``bare``        - no instrumentation
* ``llmobserve``  - ``llmobserve.observe()`` shipping to a local sink collector
                    (its own process; real gzip POSTs from the flush thread)
* ``openllmetry`` - ``opentelemetry-instrumentation-openai`` with a
                    ``BatchSpanProcessor`` to a no-op exporter (its defaults,
                    which include recording prompt/completion content)

Each mode lives in its own process, instrumented once; the parent runs the
rounds, rotating the order, so load from elsewhere falls on all modes alike.
Each call is timed on its own. Two scenarios: loopback HTTP, and an in-process
``httpx2.MockTransport`` (no network: the instrumentation's own cost shows).
We print per mode the median call, the spread of per-round medians, and the
ratios the SDK is held to: llmobserve <= 1.05x bare, and llmobserve's added
cost <= 1/5 of OpenLLMetry's added cost.

    python bench/sdk_overhead.py [--rounds 25] [--calls 100] [--stream]

``BENCH_NO_FLUSH=1`` keeps llmobserve from shipping during the run (its events
stay buffered): the difference to a normal run is the flush thread's share.

Needs ``pip install -e sdk_client openai`` and, for the OpenLLMetry column,
``pip install -r bench/requirements-sdk-bench.txt`` (the column is skipped,
and says so, when those are missing or cannot instrument the installed openai).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world!", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
              "prompt_tokens_details": {"cached_tokens": 1024},
              "completion_tokens_details": {"reasoning_tokens": 128}},
}).encode()


def _stream_body() -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-2024-08-06"}
    out = []
    for piece in ["Hel", "lo", ", wor", "ld", "!"] * 4:
        out.append(dict(base, choices=[{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
    out.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    out.append(dict(base, choices=[], usage={"prompt_tokens": 1200, "completion_tokens": 300,
                                             "total_tokens": 1500}))
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in out) + b"data: [DONE]\n\n"


STREAM = _stream_body()


class _Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stream = b'"stream": true' in raw or b'"stream":true' in raw
        body = STREAM if stream else CHAT
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    events = 0

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        n = len(json.loads(gzip.decompress(raw))["events"])
        body = json.dumps({"accepted": n, "rejected": [], "over_cap": False}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve_fast(port_q: "mp.Queue[int]") -> None:
    """A minimal asyncio HTTP/1.1 keep-alive server: far less jitter than http.server."""
    import asyncio

    def reply(body: bytes, ctype: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    chat, stream = reply(CHAT, b"application/json"), reply(STREAM, b"text/event-stream")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                writer.write(stream if b'"stream":true' in body.replace(b" ", b"") else chat)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(srv.sockets[0].getsockname()[1])
        await srv.serve_forever()

    asyncio.run(main())


def _serve(handler: type, port_q: "mp.Queue[int]") -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    port_q.put(srv.server_address[1])
    srv.serve_forever()


def _start(handler: Optional[type]) -> "tuple[mp.Process, int]":
    q: "mp.Queue[int]" = mp.Queue()
    if handler is None:
        p = mp.Process(target=_serve_fast, args=(q,), daemon=True)
    else:
        p = mp.Process(target=_serve, args=(handler, q), daemon=True)
    p.start()
    return p, q.get(timeout=10)


def _openllmetry_on() -> Optional[str]:
    """Instrument openai with OpenLLMetry + a BatchSpanProcessor to a no-op exporter.
    Returns an error text when that cannot be done here."""
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class NoopExporter(SpanExporter):  # type: ignore[misc]
            def export(self, spans: Any) -> Any:
                return SpanExportResult.SUCCESS

            def shutdown(self) -> None:
                pass

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
        trace.set_tracer_provider(provider)
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return None
    except Exception as exc:  # not installed / incompatible with this openai
        return f"{type(exc).__name__}: {exc}"


def _worker(mode: str, prov_port: int, sink_port: int, stream: bool, conn: Any) -> None:
    """One process per mode, instrumented once for its whole life: OpenLLMetry's
    uninstrument() leaves wrappers behind (each instrument/uninstrument cycle
    made every later call ~200 us slower here), so modes are never toggled in
    one process. The parent interleaves the workers' rounds."""
    import httpx2
    import openai

    error = None
    if mode == "llmobserve":
        import llmobserve

        llmobserve.observe(
            collector_url=f"http://127.0.0.1:{sink_port}", api_key="llmo_bench",
            hosts={f"127.0.0.1:{prov_port}": "openai", "mock.invalid": "openai"},
            **({"flush_interval": 1e6, "batch_size": 10**9, "max_buffer": 10**9}
               if os.environ.get("BENCH_NO_FLUSH") else {}),
        )
    elif mode == "openllmetry":
        error = _openllmetry_on()

    def mock_handler(request: Any) -> Any:
        if b'"stream":true' in request.content.replace(b" ", b""):
            return httpx2.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, content=CHAT, headers={"content-type": "application/json"})

    clients = {
        "loopback": openai.OpenAI(base_url=f"http://127.0.0.1:{prov_port}/v1", api_key="sk-bench", max_retries=0),
        "mock": openai.OpenAI(base_url="http://mock.invalid/v1", api_key="sk-bench", max_retries=0,
                              http_client=httpx2.Client(transport=httpx2.MockTransport(mock_handler))),
    }
    msgs = [{"role": "user", "content": "hi"}]
    conn.send(("ready", error, openai.__version__))
    clock = time.perf_counter
    while True:
        cmd = conn.recv()
        if cmd[0] == "stop":
            shipped = None
            if mode == "llmobserve":
                import llmobserve

                llmobserve.flush(timeout=10)
                shipped = llmobserve.stats()
            conn.send(("stats", shipped))
            return
        _, scenario, calls, warmup = cmd
        client = clients[scenario]

        def one(client: Any = client) -> None:
            if stream:
                for _ in client.chat.completions.create(
                    model="gpt-4o", messages=msgs, stream=True, stream_options={"include_usage": True}
                ):
                    pass
            else:
                client.chat.completions.create(model="gpt-4o", messages=msgs)

        for _ in range(warmup):
            one()
        samples = []
        c0 = time.process_time()
        for _ in range(calls):
            t0 = clock()
            one()
            samples.append((clock() - t0) * 1e6)
        conn.send(("done", samples, (time.process_time() - c0) / calls * 1e6))


def run_scenario(title: str, scenario: str, workers: Dict[str, Any], rounds: int, calls: int,
                 warmup: int) -> Dict[str, float]:
    """Interleaved rounds (short blocks, the mode order rotating) so that load from
    other processes falls on every mode alike; each call is timed on its own.
    Printed per mode: the median of all its calls, and the spread of the
    per-round medians (25th-75th percentile, and min-max)."""
    per_round: Dict[str, List[float]] = {m: [] for m in workers}
    every: Dict[str, List[float]] = {m: [] for m in workers}
    cpu: Dict[str, List[float]] = {m: [] for m in workers}
    names = list(workers)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for mode in order:
            conn = workers[mode]
            conn.send(("run", scenario, calls, warmup))
            _, samples, cpu_us = conn.recv()
            per_round[mode].append(statistics.median(samples))
            every[mode].extend(samples)
            cpu[mode].append(cpu_us)
    med = {m: statistics.median(v) for m, v in every.items()}
    cmed = {m: statistics.median(v) for m, v in cpu.items()}
    print(f"\n== {title}: {rounds} interleaved rounds x {calls} calls per mode ==")
    print(f"{'mode':<12} {'median us':>10} {'rounds p25-p75':>17} {'rounds min-max':>19} {'x bare':>7}"
          f" {'added us':>9} {'cpu us':>8}")
    for m, v in per_round.items():
        q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0], v[0], v[0]]
        print(f"{m:<12} {med[m]:>10.1f} {q[0]:>8.1f}-{q[2]:<8.1f} {min(v):>9.1f}-{max(v):<9.1f}"
              f" {med[m] / med['bare']:>7.3f} {med[m] - med['bare']:>9.1f} {cmed[m]:>8.1f}")
    ratio = med["llmobserve"] / med["bare"]
    added = med["llmobserve"] - med["bare"]
    print(f"llmobserve: {ratio:.3f}x bare (target <= 1.05x): {'PASS' if ratio <= 1.05 else 'FAIL'}")
    if "openllmetry" in med:
        olm_added = med["openllmetry"] - med["bare"]
        if olm_added > 0:
            share = max(0.0, added) / olm_added
            print(f"llmobserve added {added:.1f} us vs OpenLLMetry added {olm_added:.1f} us = {share:.2f} of it "
                  f"(target <= 0.20): {'PASS' if share <= 0.20 else 'FAIL'}")
        else:
            print(f"OpenLLMetry's added cost ({olm_added:.1f} us) is within the noise here; no share computed")
    return med


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--stream", action="store_true", help="streamed chat completions with include_usage")
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    prov_proc, prov_port = _start(None)
    sink_proc, sink_port = _start(_Sink)
    workers: Dict[str, Any] = {}
    procs = []
    version = "?"
    for mode in ("bare", "llmobserve", "openllmetry"):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(mode, prov_port, sink_port, args.stream, child), daemon=True)
        proc.start()
        _, error, version = parent.recv()
        procs.append(proc)
        if error is not None:
            print(f"OpenLLMetry not measured: {error}")
            parent.send(("stop",))
            parent.recv()
            continue
        workers[mode] = parent

    kind = "streamed (include_usage)" if args.stream else "non-streamed"
    print(f"openai {version}, {kind} chat completions, python {sys.version.split()[0]}, "
          f"{mp.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in _loadavg())}")
    print("each mode runs in its own process, instrumented once; rounds alternate between them")
    run_scenario("loopback HTTP (local provider server in its own process)", "loopback", workers,
                 args.rounds, args.calls, args.warmup)
    run_scenario("in-process httpx2.MockTransport (no network: the instrumentation's own cost)", "mock",
                 workers, args.rounds, args.calls, args.warmup)
    workers["llmobserve"].send(("stop",))
    _, shipped = workers["llmobserve"].recv()
    expected = 2 * args.rounds * (args.calls + args.warmup)
    print(f"\nllmobserve events delivered to the sink collector: {shipped['sent']} of {expected} calls "
          f"(dropped {shipped['dropped']}, failed {shipped['failed']}); "
          f"load average now {' '.join(f'{x:.1f}' for x in _loadavg())}")
    for name, conn in workers.items():
        if name != "llmobserve":
            conn.send(("stop",))
    for proc in procs:
        proc.join(5)
    prov_proc.terminate()
    sink_proc.terminate()
    return 0


def _loadavg() -> "tuple[float, float, float]":
    try:
        import os

        return os.getloadavg()
    except (AttributeError, OSError):
        return (0.0, 0.0, 0.0)


if __name__ == "__main__":
    raise SystemExit(main())
