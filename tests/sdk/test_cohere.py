"""The official cohere client (v2, built on httpx) against a local Cohere-format server."""

from __future__ import annotations

import cohere

from .fakes import TEXT_PIECES

MSG = [{"role": "user", "content": "hi"}]


def client(obs):
    return cohere.ClientV2(api_key="co-test", base_url=obs.url("cohere"))


def tokens(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


def test_chat_cached_tokens_are_the_cache_read_subset_of_input(obs):
    """`usage.cached_tokens` was recorded as 0; input stays the billed input."""
    r = client(obs).chat(model="command-a-03-2025", messages=MSG)
    assert r.usage.cached_tokens == 4 and r.usage.billed_units.input_tokens == 12
    ev = obs.one()
    assert ev["provider"] == "cohere" and ev["endpoint"] == "/v2/chat"
    assert ev["model"] == "command-a-03-2025"  # Cohere v2 answers carry no model: the request's
    assert tokens(ev) == (12, 7, 4, 0, 0) and ev["metadata"] == {}


def test_chat_stream_usage_from_message_end(obs):
    text = "".join(e.delta.message.content.text for e in client(obs).chat_stream(model="command-a-03-2025",
                                                                                  messages=MSG)
                   if e.type == "content-delta")
    assert text == "".join(TEXT_PIECES)
    ev = obs.one()
    assert ev["stream"] is True and tokens(ev) == (12, 7, 4, 0, 0) and ev["metadata"] == {}
