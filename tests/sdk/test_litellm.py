"""LiteLLM (its own httpx client for Anthropic, the openai client for OpenAI) through the SDK."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map fetch at import

import litellm  # noqa: E402

from .fakes import TEXT_PIECES  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]


def tokens(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


def claude(obs, **kw):
    return litellm.completion(model="anthropic/claude-test", api_base=obs.url("anthropic"), api_key="k",
                              messages=MSG, **kw)


def test_anthropic_stream_closed_after_message_delta_is_complete(obs):
    """LiteLLM closes the response after `message_delta`, before `message_stop`: that was
    recorded as `partial`."""
    obs.servers["anthropic"].chunk_delay = 0.01
    text = "".join(c.choices[0].delta.content or "" for c in claude(obs, stream=True) if c.choices)
    assert text == "".join(TEXT_PIECES)
    ev = obs.one()
    assert ev["provider"] == "anthropic" and ev["stream"] is True
    assert ev["metadata"] == {} and tokens(ev) == (3050, 120, 2000, 1000, 0)


def test_anthropic_async_stream_is_complete(obs):
    obs.servers["anthropic"].chunk_delay = 0.01

    async def main():
        s = await litellm.acompletion(model="anthropic/claude-test", api_base=obs.url("anthropic"),
                                      api_key="k", messages=MSG, stream=True)
        return [c async for c in s]

    assert asyncio.run(main())
    ev = obs.one()
    assert ev["metadata"] == {} and tokens(ev) == (3050, 120, 2000, 1000, 0)


def test_anthropic_thinking_tokens(obs):
    r = litellm.completion(model="anthropic/thinking", api_base=obs.url("anthropic"), api_key="k", messages=MSG)
    assert r.usage.completion_tokens == 120
    list(litellm.completion(model="anthropic/thinking", api_base=obs.url("anthropic"), api_key="k",
                            messages=MSG, stream=True))
    evs = obs.events()
    assert sorted(e["stream"] for e in evs) == [False, True]
    for ev in evs:
        assert tokens(ev) == (3050, 120, 2000, 1000, 80) and ev["metadata"] == {}


def test_openai_cache_writes(obs):
    kw = dict(api_base=obs.url("openai") + "/v1", api_key="k", messages=MSG)
    r = litellm.completion(model="openai/cache-write", **kw)
    assert r.usage.prompt_tokens == 1200
    list(litellm.completion(model="openai/cache-write", stream=True, stream_options={"include_usage": True}, **kw))
    evs = obs.events()
    assert sorted(e["stream"] for e in evs) == [False, True]
    for ev in evs:
        assert ev["provider"] == "openai" and ev["metadata"] == {}
        assert tokens(ev) == (1200, 300, 0, 1152, 128)
