"""Time to first token: every HTTP library the SDK patches records, for a streamed response, when its first
body byte arrived (`ttft_ms`, from the request's start); a response read whole carries none."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
import requests
import urllib3

from .fakes import GEMINI

GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def _slow_stream(obs) -> str:
    obs.servers["google"].chunk_delay = 0.05  # the second chunk (and the end) come later than the first
    return obs.url("google") + STREAM


def _assert_ttft(ev) -> None:
    assert ev["stream"] is True and ev["model"] == GEMINI
    assert 0 < ev["ttft_ms"] < ev["latency_ms"]


def test_requests_stream_records_ttft(obs):
    with requests.post(_slow_stream(obs), json={}, stream=True) as r:
        for _ in r.iter_content(chunk_size=None):
            pass
    _assert_ttft(obs.one())


def test_urllib3_stream_records_ttft(obs):
    r = urllib3.PoolManager().request("POST", _slow_stream(obs), body=b"{}", preload_content=False)
    b"".join(r.stream(64))
    r.release_conn()
    _assert_ttft(obs.one())


def test_httpx_sync_and_async_streams_record_ttft(obs):
    url = _slow_stream(obs)
    with httpx.stream("POST", url, json={}) as r:
        list(r.iter_lines())

    async def main():
        async with httpx.AsyncClient() as c:
            async with c.stream("POST", url, json={}) as r:
                return [line async for line in r.aiter_lines()]

    asyncio.run(main())
    events = obs.events()
    assert len(events) == 2
    for ev in events:
        _assert_ttft(ev)


def test_aiohttp_stream_records_ttft(obs):
    async def main():
        async with aiohttp.ClientSession() as s:
            async with s.post(_slow_stream(obs), json={}) as r:
                async for _ in r.content:
                    pass

    asyncio.run(main())
    _assert_ttft(obs.one())


def test_a_response_that_is_not_a_stream_has_no_ttft(obs):
    requests.post(obs.url("google") + GEN, json={"contents": []})
    httpx.post(obs.url("google") + GEN, json={"contents": []})
    events = obs.events()
    assert len(events) == 2 and all("ttft_ms" not in ev and ev["stream"] is False for ev in events)
