"""What the SDK captures beyond the five token fields: the served tier, the speed and the usage
units the price registry (genai-prices) names, per provider, with the official clients (Gemini
over raw HTTP), streamed and not."""

from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest
import requests

from .fakes import CLAUDE, GEMINI, TEXT_PIECES

MSG = [{"role": "user", "content": "hi"}]


def oai(obs):
    return openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)


def ant(obs):
    return anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="sk-ant-test", max_retries=0)


def tokens(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


# -- OpenAI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("requested,served", [("flex", "flex"), ("priority", "priority"), ("auto", "default")])
def test_openai_chat_sends_the_served_tier(obs, requested, served):
    r = oai(obs).chat.completions.create(model="gpt-4o", messages=MSG, service_tier=requested)
    assert r.service_tier == served
    ev = obs.one()
    assert ev["service_tier"] == served and "processing" not in ev and "usage" not in ev
    assert tokens(ev) == (1200, 300, 1024, 0, 128)


def test_openai_chat_stream_sends_the_served_tier_and_audio_units(obs):
    stream = oai(obs).chat.completions.create(model="audio", messages=MSG, stream=True, service_tier="flex",
                                              stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content] == TEXT_PIECES
    ev = obs.one()
    assert ev["stream"] is True and ev["service_tier"] == "flex"
    assert ev["usage"] == {"input_audio_tokens": 700, "output_audio_tokens": 250}
    assert tokens(ev) == (1200, 300, 0, 0, 0)  # the audio counts are subsets: the totals are unchanged


def test_openai_chat_audio_token_details_become_units(obs):
    oai(obs).chat.completions.create(model="audio", messages=MSG)
    ev = obs.one()
    assert ev["usage"] == {"input_audio_tokens": 700, "output_audio_tokens": 250}
    assert "service_tier" not in ev  # not requested, not reported: not sent
    assert ev["metadata"] == {}


def test_openai_chat_without_extra_usage_sends_no_usage_object(obs):
    oai(obs).chat.completions.create(model="gpt-4o", messages=MSG)
    ev = obs.one()
    assert "usage" not in ev and "service_tier" not in ev and "speed" not in ev


def test_openai_responses_web_searches_and_tier(obs):
    r = oai(obs).responses.create(model="web-search", input="hi", tools=[{"type": "web_search"}],
                                  service_tier="priority")
    assert r.output_text == "".join(TEXT_PIECES) and r.service_tier == "priority"
    ev = obs.one()
    assert ev["service_tier"] == "priority"
    assert ev["usage"] == {"web_searches": 2}
    assert tokens(ev) == (500, 90, 256, 0, 40)


def test_openai_responses_stream_web_searches_and_tier(obs):
    with oai(obs).responses.stream(model="web-search", input="hi", tools=[{"type": "web_search"}],
                                   service_tier="flex") as s:
        text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
    assert text == "".join(TEXT_PIECES)
    ev = obs.one()
    assert ev["stream"] is True and ev["service_tier"] == "flex"
    assert ev["usage"] == {"web_searches": 2}
    assert tokens(ev) == (500, 90, 256, 0, 40)


def test_openai_async_chat_tier(obs):
    async def main():
        c = openai.AsyncOpenAI(base_url=obs.url("openai") + "/v1", api_key="sk", max_retries=0)
        await c.chat.completions.create(model="gpt-4o", messages=MSG, service_tier="flex")
        await c.close()

    asyncio.run(main())
    assert obs.one()["service_tier"] == "flex"


# -- Anthropic -------------------------------------------------------------------------------------

ANT_UNITS = {"cache_write_1h_tokens": 600, "cache_write_5m_tokens": 400, "web_searches": 3}


def test_anthropic_web_searches_cache_ttls_tier_and_speed(obs):
    r = ant(obs).messages.create(model="web-search", max_tokens=100, messages=MSG)
    assert r.usage.server_tool_use.web_search_requests == 3
    ev = obs.one()
    assert ev["model"] == CLAUDE
    assert ev["usage"] == ANT_UNITS
    assert ev["service_tier"] == "priority" and ev["speed"] == "fast"
    assert tokens(ev) == (50 + 2000 + 1000, 120, 2000, 1000, 0)
    # The pre-`usage` spelling stays for collectors that do not read `usage` yet.
    assert ev["metadata"] == {"cache_write_1h_tokens": 600}


def test_anthropic_stream_web_searches_are_cumulative_in_message_delta(obs):
    with ant(obs).messages.stream(model="web-search", max_tokens=100, messages=MSG) as s:
        final = s.get_final_message()
    assert final.content[0].text == "".join(TEXT_PIECES)
    ev = obs.one()
    assert ev["stream"] is True
    # message_start said 0 searches, message_delta 3: 3, never 0 or 3 + 0 counted twice.
    assert ev["usage"] == ANT_UNITS
    assert ev["service_tier"] == "priority" and ev["speed"] == "fast"
    assert tokens(ev) == (3050, 120, 2000, 1000, 0)


def test_anthropic_standard_tier_and_5m_cache_writes(obs):
    ant(obs).messages.create(model="claude-test", max_tokens=100, messages=MSG)
    ev = obs.one()
    assert ev["service_tier"] == "standard" and "speed" not in ev
    assert ev["usage"] == {"cache_write_5m_tokens": 1000}
    assert ev["metadata"] == {}


def test_anthropic_async_stream_units(obs):
    async def main():
        c = anthropic.AsyncAnthropic(base_url=obs.url("anthropic"), api_key="k", max_retries=0)
        async with c.messages.stream(model="web-search", max_tokens=100, messages=MSG) as s:
            text = "".join([t async for t in s.text_stream])
        await c.close()
        return text

    assert asyncio.run(main()) == "".join(TEXT_PIECES)
    assert obs.one()["usage"] == ANT_UNITS


# -- Gemini (raw HTTP) -----------------------------------------------------------------------------

GEN = "/v1beta/models/gemini-multimodal:generateContent"
STREAM = "/v1beta/models/gemini-multimodal:streamGenerateContent?alt=sse"
GEMINI_UNITS = {
    "input_audio_tokens": 500,
    "input_image_tokens": 100,
    "cache_audio_read_tokens": 200,
    "output_audio_tokens": 200,
    "input_tool_tokens": 150,
    "web_searches": 2,
}


def test_gemini_modalities_tool_tokens_and_grounding(obs):
    r = requests.post(obs.url("google") + GEN, json={"contents": [], "tools": [{"google_search": {}}]})
    assert r.json()["candidates"][0]["groundingMetadata"]["webSearchQueries"] == ["weather paris", "paris forecast"]
    ev = obs.one()
    assert ev["model"] == GEMINI
    assert ev["usage"] == GEMINI_UNITS
    assert tokens(ev) == (1000 + 150, 300, 200, 0, 0)
    assert "service_tier" not in ev


def test_gemini_stream_reads_the_final_chunk(obs):
    with requests.post(obs.url("google") + STREAM, json={}, stream=True) as r:
        for _ in r.iter_content(chunk_size=None):
            pass
    ev = obs.one()
    assert ev["stream"] is True and ev["usage"] == GEMINI_UNITS
    assert tokens(ev) == (1150, 300, 200, 0, 0)


def test_gemini_text_only_answer_sends_no_usage_object(obs):
    requests.post(obs.url("google") + "/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert "usage" not in obs.one()


def test_bedrock_converse_cache_writes_by_ttl(obs):
    requests.post(obs.url("bedrock") + "/model/anthropic.claude-cache-ttl-v1%3A0/converse", json={})
    ev = obs.one()
    assert ev["usage"] == {"cache_write_5m_tokens": 2, "cache_write_1h_tokens": 3}
    assert tokens(ev) == (30 + 10 + 5, 20, 10, 5, 0)


def test_units_sent_are_registry_unit_names():
    """Every unit these tests see the SDK send is one the price registry knows (and prices)."""
    from genai_prices.data_units import unit_data

    sent = set(ANT_UNITS) | set(GEMINI_UNITS) | {"input_audio_tokens", "output_audio_tokens", "web_searches"}
    assert sent <= set(unit_data), sent - set(unit_data)
