"""Provider detection and usage normalisation, straight on the parser (no network)."""

from __future__ import annotations

import json
import struct

import pytest

from llmobserve import _providers
from llmobserve._providers import Call, build_event, classify, lookup


@pytest.fixture()
def configured(obs):
    obs.observe(hosts={"gw.internal:8080": "vllm", "cl.internal": "anthropic"})
    return obs


@pytest.mark.parametrize("host,expected", [
    ("api.openai.com", ("openai", "openai")),
    ("api.openai.com:443", ("openai", "openai")),
    ("my-res.openai.azure.com", ("azure_openai", "openai")),
    ("my-res.cognitiveservices.azure.com", ("azure_openai", "openai")),
    ("api.anthropic.com", ("anthropic", "anthropic")),
    ("generativelanguage.googleapis.com", ("google", "gemini")),
    ("us-central1-aiplatform.googleapis.com", ("google", "gemini")),
    ("api.cohere.com", ("cohere", "cohere")),
    ("api.mistral.ai", ("mistral", "openai")),
    ("api.groq.com", ("groq", "openai")),
    ("api.together.xyz", ("together", "openai")),
    ("openrouter.ai", ("openrouter", "openai")),
    ("bedrock-runtime.us-east-1.amazonaws.com", ("bedrock", "bedrock")),
    ("idx-abc.svc.us-east1-gcp.pinecone.io", ("pinecone", "pinecone")),
    ("gw.internal:8080", ("vllm", "openai")),
    ("cl.internal", ("anthropic", "anthropic")),
    (b"api.openai.com", ("openai", "openai")),
    ("example.com", None),
    ("s3.amazonaws.com", None),
])
def test_lookup(configured, host, expected):
    assert lookup(host) == expected


def test_classify_only_inference_endpoints():
    assert classify("openai", "POST", "/openai/deployments/gpt4/chat/completions") == "llm"
    assert classify("openai", "GET", "/v1/chat/completions") is None
    assert classify("openai", "POST", "/v1/files") is None
    assert classify("anthropic", "POST", "/v1/messages/count_tokens") is None
    assert classify("gemini", "POST", "/v1beta/models/text-embedding-004:embedContent") == "embedding"
    assert classify("bedrock", "POST", "/model/x/converse-stream") == "llm"
    assert classify("pinecone", "POST", "/query") == "vector_db"


def make(provider, fmt, path, body=None, stream_chunks=None, ctype="text/event-stream", span="llm"):
    call = Call(provider, fmt, span, path)
    call.response(200)
    if stream_chunks is not None:
        tap = call.start_stream(ctype)
        for c in stream_chunks:
            tap.feed(c)
    else:
        call.body = body
    call.finished = True  # built directly, not through the buffer
    if call.tap is not None:
        call.tap.close()
    return build_event(call)


def toks(ev):
    return (ev["input_tokens"], ev["output_tokens"], ev["cached_input_tokens"], ev["cache_write_tokens"],
            ev["reasoning_tokens"])


def test_groq_stream_usage_in_x_groq(configured):
    chunks = [b'data: {"model":"llama-3.3-70b-versatile","choices":[{"delta":{"content":"hi"}}]}\n\n',
              b'data: {"model":"llama-3.3-70b-versatile","choices":[{"delta":{},"finish_reason":"stop"}],'
              b'"x_groq":{"usage":{"prompt_tokens":11,"completion_tokens":3}}}\n\n', b"data: [DONE]\n\n"]
    ev = make("groq", "openai", "/openai/v1/chat/completions", stream_chunks=chunks)
    assert ev["model"] == "llama-3.3-70b-versatile" and toks(ev) == (11, 3, 0, 0, 0)


def test_sse_lines_split_across_chunks(configured):
    whole = (b'data: {"model":"m1","choices":[]}\n\n'
             b'data: {"model":"m1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
             b"data: [DONE]\n\n")
    chunks = [whole[i:i + 7] for i in range(0, len(whole), 7)]
    ev = make("openai", "openai", "/v1/chat/completions", stream_chunks=chunks)
    assert toks(ev) == (5, 2, 0, 0, 0) and ev["metadata"] == {}


def test_cohere_v2_stream(configured):
    chunks = [b'event: message-start\ndata: {"type":"message-start","id":"x"}\n\n',
              b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"COMPLETE",'
              b'"usage":{"billed_units":{"input_tokens":9,"output_tokens":4}}}}\n\n']
    ev = make("cohere", "cohere", "/v2/chat", stream_chunks=chunks)
    assert toks(ev) == (9, 4, 0, 0, 0)


def _frame(payload: bytes) -> bytes:
    headers = b"\x0b:event-type\x07\x00\x08metadata"
    total = 12 + len(headers) + len(payload) + 4
    return struct.pack(">II", total, len(headers)) + b"\0\0\0\0" + headers + payload + b"\0\0\0\0"


def test_bedrock_converse_stream_reads_the_metadata_frame(configured):
    meta = json.dumps({"metrics": {"latencyMs": 5}, "usage": {"inputTokens": 7, "outputTokens": 3,
                                                               "cacheReadInputTokens": 2}}).encode()
    chunks = [_frame(b'{"delta":{"text":"hi"}}'), _frame(meta)]
    ev = make("bedrock", "bedrock", "/model/amazon.nova-pro-v1%3A0/converse-stream", stream_chunks=chunks,
              ctype="application/vnd.amazon.eventstream")
    assert ev["stream"] is True and ev["model"] == "amazon.nova-pro-v1:0"
    assert toks(ev) == (9, 3, 2, 0, 0)


def test_big_embedding_body_is_searched_not_decoded_whole(configured):
    body = json.dumps({"object": "list", "data": [{"embedding": [0.123456] * 100_000, "index": 0}],
                       "model": "text-embedding-3-large", "usage": {"prompt_tokens": 77, "total_tokens": 77}})
    ev = make("openai", "openai", "/v1/embeddings", body=body.encode(), span="embedding")
    assert len(body) > 262_144
    assert toks(ev) == (77, 0, 0, 0, 0)


def test_malformed_body_still_records_the_call(configured):
    ev = make("openai", "openai", "/v1/chat/completions", body=b"<html>oops")
    assert ev["model"] == "unknown" and ev["metadata"] == {"usage_missing": True}


def test_anthropic_1h_cache_writes_are_noted(configured):
    body = {"model": "claude-x", "usage": {"input_tokens": 1, "output_tokens": 1,
                                           "cache_creation_input_tokens": 10, "cache_read_input_tokens": 0,
                                           "cache_creation": {"ephemeral_1h_input_tokens": 10}}}
    ev = make("anthropic", "anthropic", "/v1/messages", body=json.dumps(body).encode())
    assert toks(ev) == (11, 1, 0, 10, 0) and ev["metadata"] == {"cache_write_1h_tokens": 10}


def test_gzip_encoded_stream_is_decoded_for_the_tap_only(configured):
    import zlib

    raw = b'data: {"model":"m","usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n'
    comp = zlib.compressobj(wbits=31)
    gz = comp.compress(raw) + comp.flush()
    call = Call("openai", "openai", "llm", "/v1/chat/completions")
    tap = call.start_stream("text/event-stream", "gzip")
    tap.feed(gz[:10])
    tap.feed(gz[10:])
    tap.close()
    call.finished = True
    assert toks(build_event(call)) == (3, 1, 0, 0, 0)


def test_module_exports():
    import llmobserve

    for name in llmobserve.__all__:
        assert hasattr(llmobserve, name)
    assert issubclass(llmobserve.BudgetExceeded, llmobserve.LLMObserveError)
    assert _providers.FORMATS["azure_openai"] == "openai"


def test_big_bodies_are_reduced_before_buffering(obs):
    big_req = json.dumps({"messages": [{"role": "user", "content": "x" * 200_000}], "model": "gpt-4o"}).encode()
    big_resp = json.dumps({"data": [{"embedding": [0.5] * 80_000}], "model": "text-embedding-3-small",
                           "usage": {"prompt_tokens": 50_000, "total_tokens": 50_000}}).encode()
    call = Call("openai", "openai", "embedding", "/v1/embeddings")
    call.req_body = big_req
    call.response(200)
    call.body = big_resp
    call.finish()
    assert call.body is None and call.req_body is None
    assert call.req_model == "gpt-4o"
    ev = obs.one()
    assert ev["model"] == "text-embedding-3-small" and ev["input_tokens"] == 50_000


def test_error_with_big_request_takes_the_model_from_the_request(obs):
    big_req = json.dumps({"messages": [{"role": "user", "content": 'say "model" ' * 20_000}],
                          "model": "gpt-4o-mini"}).encode()
    call = Call("openai", "openai", "llm", "/v1/chat/completions")
    call.req_body = big_req
    call.response(500)
    call.body = b'{"error": {"message": "boom"}}'
    call.finish()
    ev = obs.one()
    assert (ev["model"], ev["status"], ev["http_status"]) == ("gpt-4o-mini", "error", 500)


def test_claude_on_vertex_is_read_as_anthropic(configured):
    from llmobserve._providers import begin

    call = begin("us-east5-aiplatform.googleapis.com", "POST",
                 "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4:rawPredict")
    assert call is not None and (call.provider, call.fmt) == ("vertex_ai", "anthropic")
    call.response(200)
    call.body = json.dumps({"model": "claude-sonnet-4-20250514", "usage": {
        "input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 10}}).encode()
    call.finished = True
    ev = build_event(call)
    assert ev["model"] == "claude-sonnet-4-20250514" and toks(ev) == (15, 2, 10, 0, 0)


def test_many_events_in_one_chunk_keep_the_last_payload(configured):
    first = b'data: {"model":"m2","choices":[{"delta":{"content":"a"}}]}\n\n'
    body = b"".join(b'data: {"model":"m2","choices":[{"delta":{"content":"data: x"}}]}\r\n\r\n' for _ in range(50))
    tail = (b'data: {"model":"m2","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":50}}\r\n\r\n'
            b"data: [DONE]\r\n\r\n")
    ev = make("openai", "openai", "/v1/chat/completions", stream_chunks=[first, body + tail])
    assert ev["model"] == "m2" and toks(ev) == (4, 50, 0, 0, 0) and ev["metadata"] == {}
    ev = make("openai", "openai", "/v1/chat/completions", stream_chunks=[first, body, tail[:30], tail[30:]])
    assert toks(ev) == (4, 50, 0, 0, 0)


def _anthropic_stream_call(delta_stop_reason):
    start = {"type": "message_start", "message": {"model": "claude-x", "usage": {
        "input_tokens": 5, "output_tokens": 1}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": delta_stop_reason, "stop_sequence": None},
             "usage": {"output_tokens": 9, "output_tokens_details": {"thinking_tokens": 4}}}
    call = Call("anthropic", "anthropic", "llm", "/v1/messages")
    call.response(200)
    tap = call.start_stream("text/event-stream")
    tap.feed(b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n")
    tap.feed(b"event: message_delta\ndata: " + json.dumps(delta).encode() + b"\n\n")
    return call


def test_message_delta_ends_the_stream_only_with_a_stop_reason(obs):
    done = _anthropic_stream_call("end_turn")
    done.finish(partial=True)  # the client closed it before message_stop
    open_ = _anthropic_stream_call(None)
    open_.finish(partial=True)
    evs = obs.events()
    assert [e["metadata"] for e in evs] == [{}, {"partial": True}]
    for ev in evs:
        assert toks(ev) == (5, 9, 0, 0, 4)


def test_details_larger_than_their_totals_are_capped(configured):
    body = {"model": "m", "usage": {"prompt_tokens": 100, "completion_tokens": 10,
                                    "prompt_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 50},
                                    "completion_tokens_details": {"reasoning_tokens": 30}}}
    ev = make("openai", "openai", "/v1/chat/completions", body=json.dumps(body).encode())
    assert toks(ev) == (100, 10, 80, 20, 10)
    cohere_body = {"usage": {"billed_units": {"input_tokens": 3, "output_tokens": 1}, "cached_tokens": 7.0}}
    ev = make("cohere", "cohere", "/v2/chat", body=json.dumps(cohere_body).encode())
    assert toks(ev) == (3, 1, 3, 0, 0)


def test_every_format_module_feeds_the_host_tables():
    from llmobserve import providers

    assert set(providers.BY_NAME) == {"openai", "anthropic", "gemini", "cohere", "bedrock", "pinecone"}
    for fmt in providers.BY_NAME.values():
        for provider, hosts in fmt.providers.items():
            assert providers.FORMATS[provider] == fmt.name
            assert all(providers.EXACT_HOSTS[h] == provider for h in hosts)
    assert b"message_delta" in providers.SSE_FINAL_IF and b'"usageMetadata"' in providers.USAGE_KEYS
