"""The official openai client (built on httpx2) against a local OpenAI-format server."""

from __future__ import annotations

import asyncio
import re

import openai
import pytest

import llmobserve

from .fakes import GPT, TEXT_PIECES

MSG = [{"role": "user", "content": "hi"}]
UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


def client(obs, **kw):
    return openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0, **kw)


def aclient(obs, **kw):
    return openai.AsyncOpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0, **kw)


def test_openai_is_built_on_httpx2():
    import httpx2

    assert isinstance(openai.OpenAI(api_key="x")._client, httpx2.Client)


def test_chat_completion_event_has_every_wire_field(obs):
    resp = client(obs).chat.completions.create(model="gpt-4o", messages=MSG)
    assert resp.choices[0].message.content == "".join(TEXT_PIECES)
    ev = obs.one()
    assert set(ev) == {
        "event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "span_type",
        "provider", "model", "endpoint", "input_tokens", "output_tokens", "cached_input_tokens",
        "cache_write_tokens", "reasoning_tokens", "latency_ms", "status", "http_status",
        "customer_id", "stream", "timestamp", "metadata",
    }
    assert UUID_HEX.match(ev["event_id"])
    assert ev["run_id"] == ev["event_id"]  # a call outside any run is a run of its own
    assert ev["provider"] == "openai"
    assert ev["model"] == GPT  # the response's model wins over the request's "gpt-4o"
    assert ev["endpoint"] == "/v1/chat/completions"
    assert ev["span_type"] == "llm"
    assert (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"],
            ev["cache_write_tokens"], ev["reasoning_tokens"]) == (1200, 300, 1024, 0, 128)
    assert ev["status"] == "ok" and ev["http_status"] == 200 and ev["stream"] is False
    assert ev["section"] == "" and ev["section_path"] == "" and ev["customer_id"] is None
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ev["timestamp"])
    assert ev["latency_ms"] > 0
    assert ev["metadata"] == {}


def test_stream_with_usage_reaches_user_unchanged_and_is_recorded(obs):
    stream = client(obs).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces == TEXT_PIECES
    ev = obs.one()
    assert ev["stream"] is True and ev["model"] == GPT
    assert (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["reasoning_tokens"]) == (
        1200, 300, 1024, 128)
    assert ev["metadata"] == {}


def test_stream_without_include_usage_is_flagged_not_zero_cost(obs):
    stream = client(obs).chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    assert len(list(stream)) == len(TEXT_PIECES) + 1
    ev = obs.one()
    assert ev["model"] == GPT and ev["status"] == "ok"
    assert ev["metadata"] == {"usage_missing": True}


def test_stream_closed_early_is_recorded_partial(obs):
    obs.servers["openai"].chunk_delay = 0.01
    stream = client(obs).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    first = next(iter(stream))
    assert first.choices[0].delta.content == TEXT_PIECES[0]
    stream.close()
    ev = obs.one()
    assert ev["metadata"].get("partial") is True
    assert ev["model"] == GPT and ev["stream"] is True


def test_raw_iter_bytes_are_identical_with_and_without_sdk(obs):
    http = client(obs).with_raw_response
    raw_with = client(obs).chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True})
    with raw_with as r:
        observed = b"".join(r.iter_bytes())
    llmobserve.shutdown(flush_timeout=0)
    with client(obs).chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}) as r:
        bare = b"".join(r.iter_bytes())
    assert observed == bare and b"[DONE]" in observed
    assert http is not None


def test_async_chat_and_async_stream(obs):
    async def main():
        c = aclient(obs)
        r = await c.chat.completions.create(model="gpt-4o", messages=MSG)
        s = await c.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True})
        pieces = [ch.choices[0].delta.content async for ch in s if ch.choices and ch.choices[0].delta.content]
        await c.close()
        return r, pieces

    r, pieces = asyncio.run(main())
    assert r.model == GPT and pieces == TEXT_PIECES
    evs = sorted(obs.events(), key=lambda e: e["stream"])
    assert [e["stream"] for e in evs] == [False, True]
    for ev in evs:
        assert (ev["input_tokens"], ev["output_tokens"]) == (1200, 300)


def test_responses_api_plain_and_streamed(obs):
    c = client(obs)
    r = c.responses.create(model="gpt-4.1", input="hi")
    assert r.output_text == "".join(TEXT_PIECES)
    with c.responses.stream(model="gpt-4.1", input="hi") as s:
        text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
    assert text == "".join(TEXT_PIECES)
    evs = obs.events()
    assert len(evs) == 2
    for ev in evs:
        assert ev["endpoint"] == "/v1/responses" and ev["model"] == "gpt-4.1-2025-04-14"
        assert (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["reasoning_tokens"]) == (
            500, 90, 256, 40)
    assert sorted(e["stream"] for e in evs) == [False, True]


def test_embeddings_are_embedding_spans(obs):
    r = client(obs).embeddings.create(model="text-embedding-3-small", input="hello")
    assert r.data[0].embedding == [0.1, 0.2, 0.3]
    ev = obs.one()
    assert ev["span_type"] == "embedding" and ev["model"] == "text-embedding-3-small"
    assert (ev["input_tokens"], ev["output_tokens"]) == (8, 0)


def test_rate_limit_surfaces_unchanged_and_is_recorded(obs):
    with pytest.raises(openai.RateLimitError) as info:
        client(obs).chat.completions.create(model="error-429", messages=MSG)
    assert info.value.status_code == 429
    ev = obs.one()
    assert ev["status"] == "rate_limited" and ev["http_status"] == 429
    assert ev["model"] == "error-429"  # from the request: the error body has none


def test_bad_request_is_error(obs):
    with pytest.raises(openai.BadRequestError):
        client(obs).chat.completions.create(model="error-400", messages=MSG)
    ev = obs.one()
    assert ev["status"] == "error" and ev["http_status"] == 400


def test_timeout_is_recorded_as_timeout(obs):
    with pytest.raises(openai.APITimeoutError):
        client(obs, timeout=0.2).chat.completions.create(model="slow", messages=MSG)
    ev = obs.one()
    assert ev["status"] == "timeout" and ev["http_status"] is None
    assert ev["model"] == "slow"


def test_untracked_paths_and_hosts_are_not_recorded(obs):
    client(obs).models.list()  # GET /v1/models: not billable
    import httpx

    httpx.post(obs.url("plain") + "/v1/chat/completions", json={"model": "x"})  # unknown host
    assert obs.events() == []


def test_budget_exceeded_surfaces_unwrapped_and_is_not_retried(obs):
    from llmobserve._config import STATE

    obs.observe(on_cap="raise")
    STATE.over_cap = True
    c = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk")  # default retries on
    with pytest.raises(llmobserve.BudgetExceeded):
        c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert obs.servers["openai"].requests == []


def test_abandoned_unclosed_stream_is_still_recorded(obs):
    import gc

    obs.servers["openai"].chunk_delay = 0.01
    stream = client(obs).chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    ev = obs.one()
    assert ev["metadata"].get("partial") is True


def test_cache_writes_are_recorded_for_chat_and_responses(obs):
    """`prompt_tokens_details.cache_write_tokens` / `input_tokens_details.cache_write_tokens`
    are subsets of the input, like `cached_tokens`: they were recorded as 0."""
    c = client(obs)
    r = c.chat.completions.create(model="cache-write", messages=MSG)
    assert r.usage.prompt_tokens_details.cache_write_tokens == 1152
    stream = c.chat.completions.create(model="cache-write", messages=MSG, stream=True,
                                       stream_options={"include_usage": True})
    assert len(list(stream)) == len(TEXT_PIECES) + 2
    resp = c.responses.create(model="cache-write", input="hi")
    assert resp.usage.input_tokens_details.cache_write_tokens == 384
    with c.responses.stream(model="cache-write", input="hi") as s:
        s.until_done()
    evs = obs.events()
    chat = [e for e in evs if e["endpoint"] == "/v1/chat/completions"]
    responses = [e for e in evs if e["endpoint"] == "/v1/responses"]
    assert sorted(e["stream"] for e in chat) == sorted(e["stream"] for e in responses) == [False, True]
    for ev in chat:
        assert (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
                ev["reasoning_tokens"]) == (1200, 300, 0, 1152, 128)
    for ev in responses:
        assert (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
                ev["reasoning_tokens"]) == (500, 90, 0, 384, 40)
