"""Batch results: downloading an OpenAI Batch output file or Anthropic Message Batch results with
the official clients' helpers emits one event per result line, streamed line by line."""

from __future__ import annotations

import asyncio
import tracemalloc

import aiohttp
import anthropic
import openai
import pytest
import requests

import llmobserve
from llmobserve import section, set_customer_id

from .fakes import CLAUDE, GPT, anthropic_batch_line, openai_batch_line

ANT_STATUS = {"succeeded": "ok", "errored": "error", "canceled": "cancelled", "expired": "timeout"}


def oai(obs):
    return openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)


def ant(obs):
    return anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="sk-ant-test", max_retries=0)


def tokens(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


def by_custom_id(events):
    return {e["metadata"]["custom_id"]: e for e in events}


# -- OpenAI ----------------------------------------------------------------------------------------


def test_openai_batch_output_is_one_event_per_line_with_the_download_context(obs):
    with section("batch:nightly"):
        set_customer_id("acme")
        content = oai(obs).files.content("file-out-10")
    assert len(content.text.splitlines()) == 10
    evs = by_custom_id(obs.events())
    assert sorted(evs) == sorted(f"req-{i}" for i in range(10))
    assert len({e["run_id"] for e in evs.values()}) == 1
    for i in range(10):
        ev = evs[f"req-{i}"]
        assert ev["processing"] == "batch" and ev["provider"] == "openai" and ev["span_type"] == "llm"
        assert ev["section_path"] == "batch:nightly" and ev["customer_id"] == "acme"
        assert ev["endpoint"] == "/v1/files/file-out-10/content" and ev["stream"] is False
        assert ev["latency_ms"] is None
        if i % 5 == 4:  # the request failed: not served, not billed
            assert ev["status"] == "error" and ev["http_status"] == 400
            assert tokens(ev) == (0, 0, 0, 0, 0) and ev["metadata"] == {"custom_id": f"req-{i}"}
            continue
        assert ev["status"] == "ok" and ev["http_status"] == 200
        assert ev["model"] == GPT and ev["service_tier"] == "default"
        assert tokens(ev) == (100 + i, 10 + i % 7, 0, 0, 0)
        assert ev["metadata"] == {"custom_id": f"req-{i}"}
        assert ev["timestamp"] == "2023-11-14T22:13:20.000Z"  # the completion's own `created`


def test_openai_batch_download_bytes_are_unchanged(obs):
    observed = oai(obs).files.content("file-out-7").content
    llmobserve.shutdown(flush_timeout=0)
    bare = oai(obs).files.content("file-out-7").content
    assert observed == bare and observed.count(b"\n") == 7


def test_downloading_the_same_results_twice_sends_the_same_event_ids(obs):
    oai(obs).files.content("file-out-6")
    first = sorted(e["event_id"] for e in obs.events())
    obs.collector.reset()
    oai(obs).files.content("file-out-6")
    assert sorted(e["event_id"] for e in obs.events()) == first and len(set(first)) == 6
    obs.collector.reset()
    oai(obs).files.content("file-out-5")  # another file: other ids
    assert not set(first) & {e["event_id"] for e in obs.events()}


def test_openai_batch_error_file_lines_are_errors(obs):
    oai(obs).files.content("file-err-3")
    evs = obs.events()
    assert len(evs) == 3
    for ev in evs:
        assert ev["status"] == "error" and ev["http_status"] is None and ev["processing"] == "batch"
        assert tokens(ev) == (0, 0, 0, 0, 0) and ev["model"] == "unknown"


def test_other_file_downloads_and_gets_record_nothing(obs):
    c = oai(obs)
    assert c.files.content("file-train").text.count("\n") == 3  # a fine-tuning file: not batch output
    assert c.files.content("file-in").text.count("\n") == 3  # a batch's input: requests, not results
    with c.files.with_streaming_response.content("file-in") as r:
        assert sum(1 for _ in r.iter_lines()) == 3
    with pytest.raises(openai.NotFoundError):
        c.files.content("file-missing")
    c.models.list()
    assert obs.events() == []
    assert llmobserve.stats()["captured"] == 0


def test_a_large_file_read_whole_is_sent_in_collector_sized_posts(obs):
    oai(obs).files.content("file-out-2500")
    evs = obs.events()
    assert len(evs) == 2500 and len({e["event_id"] for e in evs}) == 2500
    assert max(len(b) for b in obs.collector.batches) <= 1000
    assert llmobserve.stats()["captured"] == 2500


def test_streamed_download_emits_each_line_as_it_is_read_and_holds_at_most_a_line(obs):
    """A counting reader: after every chunk the user reads, the SDK has recorded exactly the lines
    completed so far; and mid-download the largest block the SDK holds is smaller than one line."""
    obs.observe(batch_size=1_000_000)  # nothing leaves the buffer while we measure
    n = 3000
    line_size = len(openai_batch_line(0, pad=True).__repr__())
    client = oai(obs)  # held: a collected client closes its connection mid-download
    tracemalloc.start()
    try:
        read = newlines = largest = held = chunks = 0
        with client.files.with_streaming_response.content(f"file-out-{n}-pad") as resp:
            for chunk in resp.iter_bytes():
                read += len(chunk)
                chunks += 1
                newlines += chunk.count(b"\n")
                assert llmobserve.stats()["captured"] == newlines
                if chunks % 25 == 0:
                    snap = tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.Filter(True, "*/llmobserve/*")])
                    largest = max(largest, max((t.size for t in snap.traces), default=0))
                    held = max(held, sum(t.size for t in snap.traces))
    finally:
        tracemalloc.stop()
    assert newlines == n and read > 15_000_000
    assert 0 < largest < line_size + 4096, (largest, line_size)  # one partial line, never the file
    assert held < read / 5, (held, read)  # the reduced lines (a few hundred bytes each), not their text
    evs = obs.events()
    assert len(evs) == n and len({e["metadata"]["custom_id"] for e in evs}) == n
    assert sum(e["input_tokens"] for e in evs if e["status"] == "ok") == sum(
        100 + i for i in range(n) if i % 5 != 4)


def test_async_openai_batch_download(obs):
    async def main():
        c = openai.AsyncOpenAI(base_url=obs.url("openai") + "/v1", api_key="sk", max_retries=0)
        r = await c.files.content("file-out-4")
        await c.close()
        return r.content

    assert asyncio.run(main()).count(b"\n") == 4
    assert sorted(by_custom_id(obs.events())) == ["req-0", "req-1", "req-2", "req-3"]


# -- Anthropic -------------------------------------------------------------------------------------


def test_anthropic_batch_results_one_event_per_line(obs):
    client = ant(obs)  # held: a collected client closes its connection mid-download
    with section("agent:grader"):
        results = list(client.messages.batches.results("msgbatch_30"))
    assert len(results) == 30
    evs = by_custom_id(obs.events())
    assert len(evs) == 30  # the batch lookup before the download recorded nothing
    for i in range(30):
        line = anthropic_batch_line(i)
        ev = evs[f"req-{i}"]
        assert ev["status"] == ANT_STATUS[line["result"]["type"]], i
        assert ev["processing"] == "batch" and ev["section_path"] == "agent:grader"
        assert ev["endpoint"] == "/v1/messages/batches/msgbatch_30/results"
        if ev["status"] != "ok":
            assert tokens(ev) == (0, 0, 0, 0, 0) and "usage_missing" not in ev["metadata"]
            continue
        assert ev["model"] == CLAUDE and ev["service_tier"] == "batch"
        assert tokens(ev) == (50 + i + 2000 + 1000, 20 + i % 9, 2000, 1000, 0)
        assert ev["usage"] == {"cache_write_5m_tokens": 1000}
        assert ev["metadata"] == {"custom_id": f"req-{i}"}


def test_anthropic_results_stream_line_by_line(obs):
    obs.observe(batch_size=1_000_000)
    n = 3000
    seen = 0
    client = ant(obs)
    for result in client.messages.batches.results(f"msgbatch_{n}-pad"):
        seen += 1
        # The client's decoder may have read ahead of the result it hands out, never the SDK behind it.
        assert llmobserve.stats()["captured"] >= seen
        assert result.custom_id == f"req-{seen - 1}"
    assert seen == n and llmobserve.stats()["captured"] == n
    evs = obs.events()
    assert len(evs) == n
    assert sum(1 for e in evs if e["status"] == "ok") == sum(
        1 for i in range(n) if anthropic_batch_line(i)["result"]["type"] == "succeeded")


def test_async_anthropic_batch_results(obs):
    async def main():
        c = anthropic.AsyncAnthropic(base_url=obs.url("anthropic"), api_key="k", max_retries=0)
        out = [r.custom_id async for r in await c.messages.batches.results("msgbatch_8")]
        await c.close()
        return out

    assert asyncio.run(main()) == [f"req-{i}" for i in range(8)]
    assert sorted(by_custom_id(obs.events())) == sorted(f"req-{i}" for i in range(8))


def test_requests_streamed_and_whole_downloads(obs):
    url = obs.url("anthropic") + "/v1/messages/batches/msgbatch_12/results"
    with requests.get(url, stream=True) as r:
        assert len(list(r.iter_lines())) == 12
    assert len(obs.events()) == 12
    obs.collector.reset()
    assert requests.get(obs.url("openai") + "/v1/files/file-out-9/content").text.count("\n") == 9
    assert len(obs.events()) == 9


def test_a_download_that_fails_records_nothing(obs):
    r = requests.get(obs.url("openai") + "/v1/files/file-missing/content")
    assert r.status_code == 404
    assert obs.events() == []


def test_aiohttp_download_and_a_broken_line_loses_only_itself(obs):
    async def main():
        url = obs.url("anthropic") + "/v1/messages/batches/msgbatch_6-odd/results"
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                return [line async for line in r.content]

    lines = asyncio.run(main())
    assert len(lines) == 8 and lines[1] == b"{not json\n"
    assert sorted(by_custom_id(obs.events())) == [f"req-{i}" for i in range(6)]


def test_sdk_failures_on_batch_lines_never_reach_user_code(obs, monkeypatch):
    from llmobserve._batch import BatchCall

    def boom(*a, **k):
        raise RuntimeError("sdk bug")

    monkeypatch.setattr(BatchCall, "read_line", boom)
    client = oai(obs)
    assert client.files.content("file-out-3").content.count(b"\n") == 3
    with client.files.with_streaming_response.content("file-out-3") as r:
        assert sum(1 for _ in r.iter_lines()) == 3
    claude = ant(obs)
    assert list(claude.messages.batches.results("msgbatch_2"))[1].custom_id == "req-1"
    assert obs.events() == []
