"""Shipping to the collector, privacy, fail-open, bounds, fork, caps, disabling."""

from __future__ import annotations

import logging
import os
import time

import httpx
import openai
import pytest
import requests

import llmobserve
from llmobserve import _buffer, _providers
from llmobserve._config import STATE
from llmobserve._sse import StreamTap

MSG = [{"role": "user", "content": "hi"}]


def call(obs, provider="openai"):
    return httpx.post(obs.url(provider) + "/v1/chat/completions", json={"model": "gpt-4o"})


def test_batches_are_gzip_json_with_bearer_key(obs):
    call(obs)
    call(obs)
    assert len(obs.events()) == 2
    post = obs.collector.posts[0]
    assert post["Content-Encoding"] == "gzip"
    assert post["Authorization"] == "Bearer llmo_test"
    assert post["Content-Type"] == "application/json"
    assert len(obs.collector.batches) == 1


def test_flush_thread_ships_without_explicit_flush(obs):
    obs.observe(flush_interval=0.05)
    call(obs)
    deadline = time.monotonic() + 3
    while not obs.collector.events() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(obs.collector.events()) == 1


def test_batch_size_wakes_the_flush_thread(obs):
    obs.observe(batch_size=3)
    for _ in range(3):
        call(obs)
    deadline = time.monotonic() + 3
    while len(obs.collector.events()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(obs.collector.events()) == 3


def test_collector_calls_are_never_recorded(obs):
    # Even when the collector's own host is mapped as a provider.
    host = obs.collector.url.split("//", 1)[1]
    obs.observe(hosts={host: "openai", obs.servers["openai"].host: "openai"})
    call(obs)
    httpx.post(obs.collector.url + "/v1/chat/completions", json={})
    obs.events()
    obs.events()
    assert len(obs.collector.events()) == 1


def test_no_sdk_secret_or_context_reaches_provider_hosts(obs):
    obs.observe(propagate_to=[obs.servers["plain"].host])
    llmobserve.set_customer_id("cust-9")
    with llmobserve.section("agent:x"):
        openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=MSG)
        requests.get(obs.url("plain") + "/internal")
        run_id = llmobserve.get_run_id()
    llmobserve.set_customer_id(None)
    (_, _, provider_headers, _), = obs.servers["openai"].requests
    lowered = {k.lower(): v for k, v in provider_headers.items()}
    assert not any(k.startswith("x-llmobserve") for k in lowered)
    assert "llmo_test" not in repr(provider_headers) and "cust-9" not in repr(provider_headers)
    (_, _, internal, _), = obs.servers["plain"].requests
    assert internal["X-LLMObserve-Run-ID"] == run_id
    assert internal["X-LLMObserve-Section"] == "agent:x"
    assert internal["X-LLMObserve-Customer-ID"] == "cust-9"


def test_dead_collector_raises_nothing_and_adds_no_delay(obs):
    c = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk", max_retries=0)
    llmobserve.shutdown(flush_timeout=0)
    t0 = time.perf_counter()
    for _ in range(20):
        c.chat.completions.create(model="gpt-4o", messages=MSG)
    bare = time.perf_counter() - t0
    obs.observe(collector_url="http://127.0.0.1:9", flush_interval=0.01, batch_size=1)
    t0 = time.perf_counter()
    for _ in range(20):
        c.chat.completions.create(model="gpt-4o", messages=MSG)
    observed = time.perf_counter() - t0
    assert observed - bare < 0.5
    t0 = time.perf_counter()
    llmobserve.flush(timeout=0.3)
    assert time.perf_counter() - t0 < 1.0


def test_buffer_is_bounded_drop_oldest_with_a_counter(obs):
    obs.observe(collector_url="http://127.0.0.1:9", max_buffer=5)
    for _ in range(12):
        call(obs)
    s = llmobserve.stats()
    assert s["captured"] == 12 and s["buffered"] == 5 and s["dropped"] == 7
    assert s["sent"] == s["failed_flushes"] == 0 and s["last_flush_ms"] is None  # nothing sent yet


def test_retries_on_5xx_and_429_with_retry_after(obs):
    obs.collector.fail_next = [(503, {}), (429, {"Retry-After": "0"})]
    call(obs)
    assert len(obs.events()) == 1
    assert len(obs.collector.posts) == 3


def test_4xx_is_not_retried(obs):
    obs.observe(api_key="llmo_wrong")
    call(obs)
    assert llmobserve.flush(timeout=2)
    assert len(obs.collector.posts) == 1 and obs.collector.events() == []
    s = llmobserve.stats()
    assert (s["captured"], s["sent"], s["failed"], s["failed_flushes"]) == (1, 0, 1, 1)
    assert s["last_flush_ms"] is not None and s["last_flush_ms"] >= 0


def test_stats_count_what_was_captured_and_sent_and_time_the_last_flush(obs):
    for _ in range(3):
        call(obs)
    assert llmobserve.flush(timeout=5)
    s = llmobserve.stats()
    assert (s["captured"], s["buffered"], s["sent"], s["dropped"], s["failed"], s["failed_flushes"]) == (
        3, 0, 3, 0, 0, 0)
    assert 0 <= s["last_flush_ms"] < 5000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_starts_a_fresh_buffer_and_thread(obs):
    call(obs)  # buffered in the parent, not yet sent
    assert len(_buffer.BUFFER) == 1
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            if len(_buffer.BUFFER) == 0 and _buffer.BUFFER._thread is None:
                call(obs)
                code = 0 if llmobserve.flush(timeout=3) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert len(obs.collector.events()) == 1  # the child's own call only
    assert len(obs.events()) == 2  # then the parent's


def test_over_cap_raise_blocks_the_next_llm_call_before_sending(obs):
    obs.observe(on_cap="raise")
    obs.collector.over_cap = True
    call(obs)
    obs.events()
    assert STATE.over_cap is True
    sent_before = len(obs.servers["openai"].requests)
    with pytest.raises(llmobserve.BudgetExceeded) as info:
        openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=MSG)
    assert isinstance(info.value, llmobserve.LLMObserveError)
    assert len(obs.servers["openai"].requests) == sent_before
    httpx.get(obs.url("openai") + "/v1/models")  # non-LLM calls still go through
    obs.collector.over_cap = False
    STATE.over_cap = False
    call(obs)


def test_over_cap_warn_logs_once_and_ignore_is_silent(obs, caplog):
    obs.observe(on_cap="warn")
    obs.collector.over_cap = True
    with caplog.at_level(logging.WARNING, logger="llmobserve"):
        call(obs)
        obs.events()
        call(obs)
        obs.events()
    assert sum("spending cap" in r.message for r in caplog.records) == 1
    obs.observe(on_cap="ignore")
    call(obs)  # no raise


def test_disabled_env_patches_nothing(obs, monkeypatch):
    llmobserve.shutdown(flush_timeout=0)
    monkeypatch.setenv("LLMOBSERVE_DISABLED", "1")
    assert llmobserve.observe(collector_url=obs.collector.url, api_key="llmo_test") is False
    assert not hasattr(httpx.Client.send, "__llmobserve__")
    assert not hasattr(requests.Session.send, "__wrapped__")


def test_observe_is_idempotent(obs):
    obs.observe()
    obs.observe()
    assert not hasattr(httpx.Client.send.__wrapped__, "__wrapped__")
    call(obs)
    assert len(obs.events()) == 1


def test_shutdown_unpatches(obs):
    llmobserve.shutdown(flush_timeout=0)
    assert not hasattr(httpx.Client.send, "__llmobserve__")
    call(obs)
    assert obs.collector.events() == []


def test_sdk_failures_never_reach_user_code(obs, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("sdk bug")

    monkeypatch.setattr(_providers.Call, "response", boom)
    assert call(obs).status_code == 200
    monkeypatch.undo()
    monkeypatch.setattr(StreamTap, "feed", boom)
    stream = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True)
    assert len(list(stream)) == 6
    monkeypatch.setattr(_providers, "build_event", boom)
    call(obs)
    llmobserve.flush(timeout=1)


def test_env_configuration(obs, monkeypatch):
    llmobserve.shutdown(flush_timeout=0)
    monkeypatch.setenv("LLMOBSERVE_URL", obs.collector.url + "/")
    monkeypatch.setenv("LLMOBSERVE_API_KEY", "llmo_test")
    assert llmobserve.observe(hosts={obs.servers["openai"].host: "openai"}) is True
    call(obs)
    assert len(obs.events()) == 1


def test_an_unknown_on_cap_falls_back_to_ignore(obs, caplog):
    with caplog.at_level(logging.ERROR, logger="llmobserve"):
        obs.observe(on_cap="explode")
    assert STATE.config is not None and STATE.config.on_cap == "ignore"
    assert "on_cap must be one of" in caplog.text


def test_events_are_flushed_at_exit(obs, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "app.py"
    script.write_text(
        "import sys, httpx, llmobserve\n"
        "llmobserve.observe(collector_url=sys.argv[1], api_key='llmo_test', flush_interval=60,\n"
        "                   hosts={sys.argv[2].split('//')[1]: 'openai'})\n"
        "httpx.post(sys.argv[2] + '/v1/chat/completions', json={'model': 'gpt-4o'})\n"
    )
    proc = subprocess.run([sys.executable, str(script), obs.collector.url, obs.url("openai")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    (ev,) = obs.collector.events()
    assert ev["model"] == "gpt-4o-2024-08-06"
