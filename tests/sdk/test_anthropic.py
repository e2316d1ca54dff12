"""The official anthropic client (built on httpx2) against a local Anthropic-format server."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from .fakes import CLAUDE, TEXT_PIECES

MSG = [{"role": "user", "content": "hi"}]


def client(obs):
    return anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="sk-ant-test", max_retries=0)


def tokens(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


def test_anthropic_input_includes_cache_read_and_write(obs):
    r = client(obs).messages.create(model="claude-test", max_tokens=100, messages=MSG)
    assert r.content[0].text == "".join(TEXT_PIECES)
    ev = obs.one()
    assert ev["provider"] == "anthropic" and ev["model"] == CLAUDE
    assert ev["endpoint"] == "/v1/messages"
    assert tokens(ev) == (50 + 2000 + 1000, 120, 2000, 1000, 0)


def test_stream_message_delta_output_is_cumulative(obs):
    stream = client(obs).messages.create(model="claude-test", max_tokens=100, messages=MSG, stream=True)
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == "".join(TEXT_PIECES)
    ev = obs.one()
    # message_start said output_tokens=1, message_delta says 120: 120 replaces it, never 121.
    assert tokens(ev) == (3050, 120, 2000, 1000, 0)
    assert ev["stream"] is True and ev["metadata"] == {}


def test_stream_message_delta_may_update_input_and_cache(obs):
    with client(obs).messages.stream(model="delta-input", max_tokens=100, messages=MSG) as s:
        final = s.get_final_message()
    assert final.content[0].text == "".join(TEXT_PIECES)
    assert tokens(obs.one()) == (3050, 120, 2000, 1000, 0)


def test_async_stream_helper(obs):
    async def main():
        c = anthropic.AsyncAnthropic(base_url=obs.url("anthropic"), api_key="k", max_retries=0)
        async with c.messages.stream(model="claude-test", max_tokens=100, messages=MSG) as s:
            text = "".join([t async for t in s.text_stream])
        await c.close()
        return text

    assert asyncio.run(main()) == "".join(TEXT_PIECES)
    ev = obs.one()
    assert ev["model"] == CLAUDE and tokens(ev) == (3050, 120, 2000, 1000, 0)


def test_early_closed_stream_keeps_usage_seen_so_far(obs):
    obs.servers["anthropic"].chunk_delay = 0.01
    stream = client(obs).messages.create(model="claude-test", max_tokens=100, messages=MSG, stream=True)
    it = iter(stream)
    assert next(it).type == "message_start"
    stream.close()
    ev = obs.one()
    assert ev["metadata"]["partial"] is True
    assert tokens(ev) == (3050, 1, 2000, 1000, 0)  # message_start's counts


def test_provider_error_surfaces_unchanged(obs):
    with pytest.raises(anthropic.RateLimitError):
        client(obs).messages.create(model="error-429", max_tokens=10, messages=MSG)
    ev = obs.one()
    assert ev["status"] == "rate_limited" and ev["model"] == "error-429"


def test_count_tokens_is_not_an_llm_call(obs):
    c = client(obs)
    try:
        c.messages.count_tokens(model="claude-test", messages=MSG)
    except Exception:
        pass
    assert obs.events() == []


def test_budget_exceeded_surfaces_unwrapped_and_is_not_retried(obs):
    import llmobserve
    from llmobserve._config import STATE

    obs.observe(on_cap="raise")
    STATE.over_cap = True
    c = anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="k")  # default retries on
    with pytest.raises(llmobserve.BudgetExceeded):
        c.messages.create(model="claude-test", max_tokens=10, messages=MSG)
    assert obs.servers["anthropic"].requests == []


def test_thinking_tokens_are_the_reasoning_subset_of_output(obs):
    """`output_tokens_details.thinking_tokens` (included in `output_tokens`) was recorded as 0."""
    c = client(obs)
    r = c.messages.create(model="thinking", max_tokens=100, messages=MSG)
    assert r.usage.output_tokens_details.thinking_tokens == 80
    with c.messages.stream(model="thinking", max_tokens=100, messages=MSG) as s:
        final = s.get_final_message()
    assert final.usage.output_tokens == 120
    evs = obs.events()
    assert sorted(e["stream"] for e in evs) == [False, True]
    for ev in evs:
        assert tokens(ev) == (3050, 120, 2000, 1000, 80) and ev["metadata"] == {}


def test_stream_read_up_to_message_delta_is_complete(obs):
    """A client that stops at the `message_delta` carrying `stop_reason` (LiteLLM does) has read
    the final usage: the call is complete, not partial. One closed before it stays partial."""
    obs.servers["anthropic"].chunk_delay = 0.01
    stream = client(obs).messages.create(model="thinking", max_tokens=100, messages=MSG, stream=True)
    for event in stream:
        if event.type == "message_delta":
            break
    stream.close()
    ev = obs.one()
    assert ev["metadata"] == {} and tokens(ev) == (3050, 120, 2000, 1000, 80)
