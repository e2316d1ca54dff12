from pathlib import Path

import pytest
from django.core.cache import cache

from .anthropic_server import FakeAnthropic

SAMPLES = Path(__file__).parent / "samples"
URL = "/v1/ai-instrument"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache: each test starts with an empty minute."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_claude_by_default(settings, monkeypatch):
    """The static engine unless a test asks for Claude; never the real Anthropic API."""
    settings.ANTHROPIC_API_KEY = ""
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def _fake_anthropic_server():
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def fake_anthropic(_fake_anthropic_server, settings):
    """A local Messages API, with the server's settings pointing the real anthropic SDK at it."""
    server = _fake_anthropic_server
    server.replies.clear()
    server.requests.clear()
    settings.ANTHROPIC_API_KEY = "sk-ant-test-key"
    settings.LLMOBSERVE_INSTRUMENT_BASE_URL = server.url
    settings.LLMOBSERVE_INSTRUMENT_MAX_RETRIES = 0
    settings.LLMOBSERVE_INSTRUMENT_TIMEOUT = 5.0
    yield server
    server.replies.clear()


@pytest.fixture
def crew_code():
    return (SAMPLES / "crew.py").read_text()
