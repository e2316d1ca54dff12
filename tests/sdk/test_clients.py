"""requests, urllib3, aiohttp and plain httpx against Gemini, Bedrock, Cohere and Pinecone formats."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import requests
import urllib3

import llmobserve

from .fakes import BEDROCK_CONVERSE, GEMINI, gemini_response

GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
GEMINI_TOKENS = (100, 50 + 30, 40, 0, 30)  # thoughts are output, outside candidatesTokenCount


def tokens(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


def test_requests_gemini_generate_content(obs):
    r = requests.post(obs.url("google") + GEN, json={"contents": []})
    assert r.json() == gemini_response()
    ev = obs.one()  # requests -> urllib3 nest: recorded once
    assert ev["provider"] == "google" and ev["model"] == GEMINI
    assert ev["endpoint"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert tokens(ev) == GEMINI_TOKENS


def test_requests_gemini_sse_stream_iter_lines_unchanged(obs):
    with requests.post(obs.url("google") + STREAM, json={}, stream=True) as r:
        lines = list(r.iter_lines())
    llmobserve.shutdown(flush_timeout=0)
    with requests.post(obs.url("google") + STREAM, json={}, stream=True) as r:
        bare = list(r.iter_lines())
    assert lines == bare and lines[0].startswith(b"data: ")


def test_requests_gemini_stream_event(obs):
    with requests.post(obs.url("google") + STREAM, json={}, stream=True) as r:
        for _ in r.iter_content(chunk_size=None):
            pass
    ev = obs.one()
    assert ev["stream"] is True and ev["model"] == GEMINI and tokens(ev) == GEMINI_TOKENS


def test_requests_bedrock_converse_model_from_path(obs):
    path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    r = requests.post(obs.url("bedrock") + path, json={"messages": []})
    assert r.json() == BEDROCK_CONVERSE
    ev = obs.one()
    assert ev["provider"] == "bedrock" and ev["model"] == "anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert tokens(ev) == (30 + 10 + 5, 20, 10, 5, 0)


def test_urllib3_preloaded_and_streamed(obs):
    pool = urllib3.PoolManager()
    r = pool.request("POST", obs.url("google") + GEN, body=b"{}", headers={"Content-Type": "application/json"})
    assert json.loads(r.data) == gemini_response()
    r2 = pool.request("POST", obs.url("google") + STREAM, body=b"{}", preload_content=False)
    body = b"".join(r2.stream(64))
    r2.release_conn()
    assert body.count(b"data: ") == 2
    evs = obs.events()
    assert len(evs) == 2
    assert sorted(e["stream"] for e in evs) == [False, True]
    for ev in evs:
        assert tokens(ev) == GEMINI_TOKENS


def test_httpx_cohere_model_from_request_and_pinecone_vector_db(obs):
    r = httpx.post(obs.url("cohere") + "/v2/chat", json={"model": "command-r-plus", "messages": []})
    assert r.json()["usage"]["billed_units"]["input_tokens"] == 12
    q = httpx.post(obs.url("pinecone") + "/query", json={"topK": 3, "vector": [0.1]})
    assert q.json()["matches"][0]["id"] == "a"
    evs = {e["provider"]: e for e in obs.events()}
    assert evs["cohere"]["model"] == "command-r-plus" and tokens(evs["cohere"]) == (12, 7, 4, 0, 0)
    pc = evs["pinecone"]
    assert pc["span_type"] == "vector_db" and pc["metadata"]["read_units"] == 5


def test_aiohttp_json_and_sse_stream(obs):
    async def main():
        async with aiohttp.ClientSession() as s:
            async with s.post(obs.url("google") + GEN, json={}) as r:
                data = await r.json()
            chunks = []
            async with s.post(obs.url("google") + STREAM, json={}) as r:
                async for line in r.content:
                    chunks.append(line)
        return data, chunks

    data, chunks = asyncio.run(main())
    assert data == gemini_response()
    assert sum(1 for c in chunks if c.startswith(b"data: ")) == 2
    evs = obs.events()
    assert sorted(e["stream"] for e in evs) == [False, True]
    for ev in evs:
        assert ev["model"] == GEMINI and tokens(ev) == GEMINI_TOKENS


def test_aiohttp_openai_chat(obs):
    async def main():
        async with aiohttp.ClientSession(base_url=obs.url("openai")) as s:
            async with s.post("/v1/chat/completions", json={"model": "gpt-4o"}) as r:
                return await r.json()

    assert asyncio.run(main())["model"] == "gpt-4o-2024-08-06"
    ev = obs.one()
    assert ev["endpoint"] == "/v1/chat/completions" and ev["input_tokens"] == 1200


def test_async_httpx_stream_aiter_lines(obs):
    async def main():
        async with httpx.AsyncClient() as c:
            async with c.stream("POST", obs.url("google") + STREAM, json={}) as r:
                return [line async for line in r.aiter_lines()]

    lines = asyncio.run(main())
    assert sum(1 for x in lines if x.startswith("data: ")) == 2
    ev = obs.one()
    assert ev["stream"] is True and tokens(ev) == GEMINI_TOKENS


def test_unpreloaded_content_length_bodies_read_in_pieces(obs):
    pool = urllib3.PoolManager()
    r = pool.request("POST", obs.url("google") + GEN, body=b"{}", preload_content=False)
    parts = []
    while True:
        piece = r.read(100)
        if not piece:
            break
        parts.append(piece)
    r.release_conn()
    assert json.loads(b"".join(parts)) == gemini_response()
    with requests.post(obs.url("google") + GEN, json={}, stream=True) as resp:
        assert resp.json() == gemini_response()
    evs = obs.events()
    assert len(evs) == 2
    for ev in evs:
        assert ev["stream"] is False and tokens(ev) == GEMINI_TOKENS and ev["metadata"] == {}


def test_requests_stream_closed_early_is_partial(obs):
    obs.servers["openai"].chunk_delay = 0.02
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}
    with requests.post(obs.url("openai") + "/v1/chat/completions", json=body, stream=True) as r:
        first = next(r.iter_lines())
    assert first.startswith(b"data: ")
    ev = obs.one()
    assert ev["metadata"].get("partial") is True and ev["model"] == "gpt-4o-2024-08-06"


def test_sse_bodies_read_whole_are_parsed_as_streams(obs):
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}
    r = httpx.post(obs.url("openai") + "/v1/chat/completions", json=body)  # read eagerly
    assert r.text.endswith("data: [DONE]\n\n")
    requests.post(obs.url("openai") + "/v1/chat/completions", json=body)
    urllib3.PoolManager().request("POST", obs.url("openai") + "/v1/chat/completions", json=body)
    evs = obs.events()
    assert len(evs) == 3
    for ev in evs:
        assert ev["stream"] is True and ev["input_tokens"] == 1200 and ev["metadata"] == {}


def test_aiohttp_stream_released_early_is_partial(obs):
    obs.servers["openai"].chunk_delay = 0.02
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}

    async def main():
        async with aiohttp.ClientSession() as s:
            async with s.post(obs.url("openai") + "/v1/chat/completions", json=body) as r:
                return await r.content.readline()

    assert asyncio.run(main()).startswith(b"data: ")
    ev = obs.one()
    assert ev["metadata"].get("partial") is True and ev["stream"] is True
