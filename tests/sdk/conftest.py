from __future__ import annotations

from typing import Any, Dict, Iterator, List

import pytest

import llmobserve
from llmobserve import _context

from .fakes import CollectorServer, ProviderServer, serve

PROVIDERS = ("openai", "anthropic", "google", "bedrock", "cohere", "pinecone")


@pytest.fixture(scope="session")
def servers() -> Iterator[Dict[str, ProviderServer]]:
    srvs = {name: ProviderServer() for name in PROVIDERS + ("plain",)}
    for s in srvs.values():
        serve(s)
    yield srvs
    for s in srvs.values():
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="session")
def collector_server() -> Iterator[CollectorServer]:
    c = CollectorServer()
    serve(c)
    yield c
    c.shutdown()
    c.server_close()


class Obs:
    def __init__(self, collector: CollectorServer, servers: Dict[str, ProviderServer]) -> None:
        self.collector = collector
        self.servers = servers

    def url(self, provider: str) -> str:
        return self.servers[provider].url

    def observe(self, **kwargs: Any) -> None:
        opts: Dict[str, Any] = dict(
            collector_url=self.collector.url,
            api_key=self.collector.api_key,
            hosts={self.servers[p].host: p for p in PROVIDERS},
            flush_interval=30.0,
        )
        opts.update(kwargs)
        llmobserve.observe(**opts)

    def events(self) -> List[Dict[str, Any]]:
        assert llmobserve.flush(timeout=5)
        return self.collector.events()

    def one(self) -> Dict[str, Any]:
        evs = self.events()
        assert len(evs) == 1, evs
        return evs[0]


@pytest.fixture()
def obs(collector_server: CollectorServer, servers: Dict[str, ProviderServer]) -> Iterator[Obs]:
    collector_server.reset()
    for s in servers.values():
        s.requests.clear()
        s.chunk_delay = 0.0
    _context.reset_for_tests()
    o = Obs(collector_server, servers)
    o.observe()
    yield o
    llmobserve.shutdown(flush_timeout=0)
    _context.reset_for_tests()
    collector_server.reset()
