"""The SDK against the real collector: official clients → llmobserve → POST /v1/events → priced rows."""

from __future__ import annotations

import anthropic
import openai
import pytest

import llmobserve
from llmobserve import agent, section, set_customer_id

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_lines_capture_calls_that_the_collector_prices_exactly(obs, live_server, prices):
    from accounts.services import api_key_create
    from ingestion.models import RunSummary, TraceEvent

    from ..factories import OrganizationFactory

    org = OrganizationFactory()
    key = api_key_create(org=org).raw_key
    obs.observe(collector_url=live_server.url, api_key=key)

    oai = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="sk-ant-test", max_retries=0)

    @agent("researcher")
    def research() -> None:
        with section("tool:search"):
            oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}])

    set_customer_id("acme")
    research()
    assert llmobserve.flush(timeout=10)

    events = {e.provider: e for e in TraceEvent.objects.for_org(org)}
    assert set(events) == {"openai", "anthropic"}
    gpt, sonnet = events["openai"], events["anthropic"]
    assert gpt.section_path == "agent:researcher/tool:search" and sonnet.section_path == "agent:researcher"
    assert gpt.customer_id == sonnet.customer_id == "acme" and gpt.run_id == sonnet.run_id
    # OpenAI: 1,200 input of which 1,024 cached, 300 output, at $2.50 / $1.25 / $10 per 1M.
    assert gpt.cost_pico == 176 * 2_500_000 + 1024 * 1_250_000 + 300 * 10_000_000
    # Anthropic: 50 uncached + 2,000 cache reads + 1,000 cache writes, 120 output.
    assert sonnet.input_tokens == 3050
    assert sonnet.cost_pico == 50 * 3_000_000 + 2000 * 300_000 + 1000 * 3_750_000 + 120 * 15_000_000
    run = RunSummary.objects.for_org(org).get()
    assert (run.calls, run.cost_pico, run.agent) == (2, gpt.cost_pico + sonnet.cost_pico, "agent:researcher")


def test_labels_longer_than_a_section_are_cut_so_the_call_is_stored(obs, live_server, prices):
    """A section label may not exceed 256 characters at the collector (each section of a path too): the SDK cuts
    every section of the path it sends, so an over-long agent or tool name never costs the call."""
    from accounts.services import api_key_create
    from ingestion.models import RunSummary, TraceEvent

    from ..factories import OrganizationFactory

    org = OrganizationFactory()
    obs.observe(collector_url=live_server.url, api_key=api_key_create(org=org).raw_key)
    oai = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)
    with agent("r" * 300), section("tool:" + "é" * 300):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert llmobserve.flush(timeout=10)

    event = TraceEvent.objects.for_org(org).get()
    first, last = event.section_path.split("/")
    assert (first, last) == (("agent:" + "r" * 300)[:256], ("tool:" + "é" * 300)[:256])
    assert event.section == last
    assert RunSummary.objects.for_org(org).get().agent == first


def test_cache_writes_thinking_and_cohere_cache_reads_reach_the_stored_event(obs, live_server, prices):
    """The usage fields the SDK used to drop arrive at the collector and are stored (and priced)."""
    import cohere
    from accounts.services import api_key_create
    from ingestion.models import TraceEvent

    from ..factories import OrganizationFactory

    org = OrganizationFactory()
    obs.observe(collector_url=live_server.url, api_key=api_key_create(org=org).raw_key)
    oai = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="sk-ant-test", max_retries=0)

    oai.chat.completions.create(model="cache-write", messages=[{"role": "user", "content": "hi"}])
    claude.messages.create(model="thinking", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    cohere.ClientV2(api_key="co", base_url=obs.url("cohere")).chat(
        model="command-a-03-2025", messages=[{"role": "user", "content": "hi"}])
    assert llmobserve.flush(timeout=10)

    events = {e.provider: e for e in TraceEvent.objects.for_org(org)}
    gpt, sonnet, command = events["openai"], events["anthropic"], events["cohere"]
    assert (gpt.input_tokens, gpt.cached_input_tokens, gpt.cache_write_tokens) == (1200, 0, 1152)
    # gpt-4o has no cache-write price: writes are billed at the input price ($2.50 / 1M).
    assert gpt.cost_pico == 48 * 2_500_000 + 1152 * 2_500_000 + 300 * 10_000_000
    assert (sonnet.output_tokens, sonnet.reasoning_tokens) == (120, 80)
    # Thinking is part of the output and billed as output: the cost is unchanged by the breakdown.
    assert sonnet.cost_pico == 50 * 3_000_000 + 2000 * 300_000 + 1000 * 3_750_000 + 120 * 15_000_000
    assert (command.input_tokens, command.cached_input_tokens, command.output_tokens) == (12, 4, 7)


def test_labels_with_control_characters_are_cleaned_not_lost(obs, live_server, prices):
    """The collector refuses control characters in labels; the SDK replaces them so the call still counts."""
    from accounts.services import api_key_create
    from ingestion.models import TraceEvent

    from ..factories import OrganizationFactory

    org = OrganizationFactory()
    obs.observe(collector_url=live_server.url, api_key=api_key_create(org=org).raw_key)
    oai = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)

    set_customer_id("acme\x00corp\r\n")
    with section("agent:re\nsearcher"):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    set_customer_id(None)
    assert llmobserve.flush(timeout=10)

    event = TraceEvent.objects.for_org(org).get()
    assert (event.section_path, event.customer_id) == ("agent:re searcher", "acme corp  ")
    assert event.cost_pico == 176 * 2_500_000 + 1024 * 1_250_000 + 300 * 10_000_000


def test_batch_results_reach_the_collector_once_however_often_downloaded(obs, live_server, prices):
    """One stored event per result line, with its custom_id; a second download of the same results is
    a repeat the collector drops (the SDK derives each line's event_id). The new optional fields
    (processing, service_tier, usage) are accepted alongside."""
    from accounts.services import api_key_create
    from ingestion.models import TraceEvent

    from ..factories import OrganizationFactory

    org = OrganizationFactory()
    obs.observe(collector_url=live_server.url, api_key=api_key_create(org=org).raw_key)
    oai = openai.OpenAI(base_url=obs.url("openai") + "/v1", api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=obs.url("anthropic"), api_key="sk-ant-test", max_retries=0)

    with section("batch:nightly"):
        oai.files.content("file-out-10")
        results = list(claude.messages.batches.results("msgbatch_20"))
    claude.messages.create(model="web-search", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert llmobserve.flush(timeout=10)
    oai.files.content("file-out-10")
    assert llmobserve.flush(timeout=10)
    assert obs.collector.events() == []  # all went to the live server, none was refused
    assert llmobserve.stats()["failed"] == 0

    stored = TraceEvent.objects.for_org(org)
    assert stored.filter(provider="openai").count() == 10
    assert stored.filter(provider="anthropic", section_path="batch:nightly").count() == len(results) == 20
    assert sorted(e.metadata["custom_id"] for e in stored.filter(provider="openai")) == sorted(
        f"req-{i}" for i in range(10))
    web = stored.get(provider="anthropic", section_path="")
    assert (web.input_tokens, web.cache_write_tokens) == (3050, 1000)
