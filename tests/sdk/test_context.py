"""Runs, sections, customers: contextvars across nesting, decorators, threads and tasks."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

import llmobserve
from llmobserve import agent, run, section, set_customer_id, tool, trace


def call(obs):
    httpx.post(obs.url("openai") + "/v1/chat/completions", json={"model": "gpt-4o"})


async def acall(obs):
    async with httpx.AsyncClient() as c:
        await c.post(obs.url("openai") + "/v1/chat/completions", json={"model": "gpt-4o"})


def test_nested_sections_build_the_path_and_share_a_run(obs):
    with section("agent:researcher"):
        call(obs)
        with section("tool:web_search"):
            call(obs)
    call(obs)  # outside: a run of its own
    a, b, c = obs.events()
    assert (a["section_path"], a["section"]) == ("agent:researcher", "agent:researcher")
    assert (b["section_path"], b["section"]) == ("agent:researcher/tool:web_search", "tool:web_search")
    assert a["run_id"] == b["run_id"] != c["run_id"]
    assert c["run_id"] == c["event_id"] and c["section_path"] == ""
    assert b["parent_span_id"] and b["parent_span_id"] != a["parent_span_id"]


def test_explicit_run_groups_sections_and_customer(obs):
    with run():
        set_customer_id("customer_123")
        with agent("planner"):
            call(obs)
        with tool("search"):
            call(obs)
    set_customer_id(None)
    call(obs)
    a, b, c = obs.events()
    assert a["run_id"] == b["run_id"] != c["run_id"]
    assert a["customer_id"] == b["customer_id"] == "customer_123"
    assert c["customer_id"] is None
    assert [a["section_path"], b["section_path"]] == ["agent:planner", "tool:search"]


def test_decorators_sync_async_and_generators(obs):
    @agent("writer")
    def write():
        call(obs)
        return 1

    @trace(tool="fetch")
    async def fetch():
        await acall(obs)
        return 2

    @trace(step="plan")
    def gen():
        call(obs)
        yield 1
        call(obs)
        yield 2

    @tool("agen")
    async def agen():
        await acall(obs)
        yield 1

    async def consume():
        return [x async for x in agen()]

    assert write() == 1
    assert asyncio.run(fetch()) == 2
    assert list(gen()) == [1, 2]
    assert asyncio.run(consume()) == [1]
    evs = obs.events()
    assert [e["section_path"] for e in evs] == ["agent:writer", "tool:fetch", "step:plan", "step:plan", "tool:agen"]
    assert evs[2]["run_id"] == evs[3]["run_id"]  # one generator = one run
    assert evs[0]["run_id"] != evs[1]["run_id"]


def test_thread_pool_carries_the_context_and_plain_threads_start_clean(obs):
    with section("agent:fanout"):
        set_customer_id("c1")
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: call(obs), range(2)))
        t = threading.Thread(target=call, args=(obs,))
        t.start()
        t.join()
    evs = obs.events()
    pooled = [e for e in evs if e["section_path"] == "agent:fanout"]
    assert len(pooled) == 2 and all(e["customer_id"] == "c1" for e in pooled)
    assert len({e["run_id"] for e in pooled}) == 1


def test_asyncio_tasks_keep_their_own_sections(obs):
    async def worker(name):
        with section(f"agent:{name}"):
            await asyncio.sleep(0.01)
            await acall(obs)

    async def main():
        await asyncio.gather(worker("a"), worker("b"))

    asyncio.run(main())
    assert sorted(e["section_path"] for e in obs.events()) == ["agent:a", "agent:b"]


def test_get_run_id(obs):
    assert llmobserve.get_run_id() is None
    with run(run_id="r-1"):
        assert llmobserve.get_run_id() == "r-1"
        call(obs)
    assert obs.one()["run_id"] == "r-1"


def test_decorated_generators_forward_send_throw_and_close(obs):
    closed = []

    @agent("g")
    def gen():
        try:
            got = yield 1
            assert got == "x"
            try:
                yield 2
            except KeyError:
                call(obs)
                yield 3
            yield 4
        finally:
            closed.append(True)

    g = gen()
    assert next(g) == 1
    assert g.send("x") == 2
    assert g.throw(KeyError("k")) == 3
    g.close()
    assert closed == [True]
    assert obs.one()["section_path"] == "agent:g"
