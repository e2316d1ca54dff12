"""What capturing batch results costs: a streamed download of an OpenAI Batch output file (JSONL)
with the official ``openai`` client, bare and with llmobserve (one event per line).

Prints, per mode, the download's wall time (median of rounds) and the time added per line on the
reading thread, then, with ``tracemalloc`` on, the largest block and the total the SDK's own code
holds mid-download (sampled every 25 chunks) next to the file's size: a file of any size costs the
SDK one line plus the reduced lines waiting to be sent, never the file.

    PYTHONPATH=sdk_client python bench/sdk_batch_results.py [--lines 20000] [--rounds 5]

The provider and the collector are the test suite's local fakes (tests/sdk/fakes.py), in-process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import openai  # noqa: E402

import llmobserve  # noqa: E402
from tests.sdk.fakes import CollectorServer, ProviderServer, serve  # noqa: E402


def download(client: openai.OpenAI, name: str, sample: bool = False) -> tuple:
    size = lines = chunks = largest = held = 0
    with client.files.with_streaming_response.content(name) as resp:
        for chunk in resp.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
            chunks += 1
            if sample and chunks % 25 == 0:
                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/llmobserve/*")])
                largest = max(largest, max((t.size for t in snap.traces), default=0))
                held = max(held, sum(t.size for t in snap.traces))
    return size, lines, largest, held


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    provider, collector = serve(ProviderServer()), serve(CollectorServer())
    client = openai.OpenAI(base_url=provider.url + "/v1", api_key="sk", max_retries=0)
    name = f"file-out-{args.lines}-pad"
    print(f"openai {openai.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    modes = ("bare", "llmobserve", "llmobserve, shipping after")
    times: dict = {mode: [] for mode in modes}
    size = 0
    for _ in range(args.rounds):
        for mode in modes:
            if mode != "bare":
                later = mode.endswith("after")  # nothing leaves during the download: the reading thread's own cost
                llmobserve.observe(collector_url=collector.url, api_key=collector.api_key,
                                   hosts={provider.host: "openai"}, max_buffer=args.lines * 2,
                                   batch_size=args.lines * 2 if later else 100,
                                   flush_interval=3600 if later else 0.5)
            t0 = time.perf_counter()
            size, lines, _, _ = download(client, name)
            times[mode].append(time.perf_counter() - t0)
            if mode != "bare":
                llmobserve.flush(timeout=30)
                stats = llmobserve.stats()
                assert stats["captured"] == lines == args.lines, stats
                llmobserve.shutdown(flush_timeout=5)
                collector.reset()
    bare = statistics.median(times["bare"])
    print(f"file: {args.lines} lines, {size / 1e6:.1f} MB; {args.rounds} rounds, streamed with iter_bytes()")
    for mode in modes:
        med = statistics.median(times[mode])
        print(f"{mode:28s} median {med * 1000:8.1f} ms   added {(med - bare) / args.lines * 1e6:5.1f} us per line "
              f"({med / bare:.2f}x)")

    llmobserve.observe(collector_url=collector.url, api_key=collector.api_key, hosts={provider.host: "openai"},
                       max_buffer=args.lines * 2, batch_size=args.lines * 2, flush_interval=3600)
    tracemalloc.start()
    size, lines, largest, held = download(client, name, sample=True)
    tracemalloc.stop()
    print(f"memory held by llmobserve mid-download (nothing flushed meanwhile): largest block {largest / 1e3:.1f} KB "
          f"(one line is {size / lines / 1e3:.1f} KB), total {held / 1e6:.2f} MB for {lines} reduced lines "
          f"({held / lines:.0f} B each) vs a {size / 1e6:.1f} MB file")
    llmobserve.shutdown(flush_timeout=0)


if __name__ == "__main__":
    main()
