"""WSGI / Flask / ASGI / Django middleware: one run per incoming request."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from llmobserve.integrations import (
    LLMObserveASGIMiddleware,
    LLMObserveDjangoMiddleware,
    LLMObserveWSGIMiddleware,
    instrument_flask,
)


def llm(obs):
    httpx.post(obs.url("openai") + "/v1/chat/completions", json={"model": "gpt-4o"})


def environ(headers=None):
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t", "SERVER_PORT": "80",
           "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http"}
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    return env


def test_wsgi_one_run_per_request_including_streamed_bodies(obs):
    def app(env, start_response):
        llm(obs)
        start_response("200 OK", [])

        def body():
            llm(obs)
            yield b"x"

        return body()

    mw = LLMObserveWSGIMiddleware(app)
    for _ in range(2):
        assert b"".join(mw(environ(), lambda *a: None)) == b"x"
    evs = obs.events()
    assert len(evs) == 4
    assert evs[0]["run_id"] == evs[1]["run_id"] != evs[2]["run_id"] == evs[3]["run_id"]


def test_wsgi_ignores_context_headers_unless_trusted(obs):
    hdrs = {"X-LLMObserve-Run-ID": "up-1", "X-LLMObserve-Customer-ID": "c7", "X-LLMObserve-Section": "agent:a"}

    def app(env, start_response):
        llm(obs)
        start_response("200 OK", [])
        return [b""]

    list(LLMObserveWSGIMiddleware(app)(environ(hdrs), lambda *a: None))
    list(LLMObserveWSGIMiddleware(app, trust_headers=True)(environ(hdrs), lambda *a: None))
    untrusted, trusted = obs.events()
    assert untrusted["run_id"] != "up-1" and untrusted["customer_id"] is None
    assert (trusted["run_id"], trusted["customer_id"], trusted["section_path"]) == ("up-1", "c7", "agent:a")


def test_flask(obs):
    flask = pytest.importorskip("flask")

    app = flask.Flask("t")

    @app.route("/")
    def index():
        llm(obs)
        llm(obs)
        return "ok"

    instrument_flask(app)
    c = app.test_client()
    assert c.get("/").data == b"ok"
    assert c.get("/").data == b"ok"
    runs = [e["run_id"] for e in obs.events()]
    assert runs[0] == runs[1] != runs[2] == runs[3]


def test_asgi(obs):
    async def app(scope, receive, send):
        async with httpx.AsyncClient() as c:
            await c.post(obs.url("openai") + "/v1/chat/completions", json={"model": "gpt-4o"})
            await c.post(obs.url("openai") + "/v1/chat/completions", json={"model": "gpt-4o"})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = LLMObserveASGIMiddleware(app)
    sent = []

    async def send(msg):
        sent.append(msg)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def main():
        await asyncio.gather(*(mw({"type": "http", "headers": []}, receive, send) for _ in range(2)))

    asyncio.run(main())
    evs = obs.events()
    assert len(evs) == 4 and len({e["run_id"] for e in evs}) == 2
    assert sent[-1]["body"] == b"ok"


class FakeRequest:
    def __init__(self, meta=None):
        self.META = meta or {}


def test_django_sync_and_async(obs):
    def get_response(request):
        llm(obs)
        llm(obs)
        return "resp"

    mw = LLMObserveDjangoMiddleware(get_response)
    assert mw(FakeRequest()) == "resp"

    async def aget_response(request):
        async with httpx.AsyncClient() as c:
            await c.post(obs.url("openai") + "/v1/chat/completions", json={"model": "gpt-4o"})
        return "aresp"

    amw = LLMObserveDjangoMiddleware(aget_response)
    assert asyncio.run(amw(FakeRequest())) == "aresp"
    a, b, c = obs.events()
    assert a["run_id"] == b["run_id"] != c["run_id"]


def test_customer_set_in_one_request_does_not_leak_into_the_next(obs):
    from llmobserve import set_customer_id

    seen = []

    def app(env, start_response):
        if env.get("HTTP_X_WHO"):
            set_customer_id(env["HTTP_X_WHO"])
        llm(obs)
        start_response("200 OK", [])
        return [b""]

    mw = LLMObserveWSGIMiddleware(app)
    list(mw(environ({"X-Who": "acme"}), lambda *a: None))
    list(mw(environ(), lambda *a: None))  # same thread, next request
    seen = [e["customer_id"] for e in obs.events()]
    assert seen == ["acme", None]


DJANGO_APP = r'''
import sys, json
import django
from django.conf import settings
settings.configure(
    DEBUG=True, SECRET_KEY="x", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["llmobserve.integrations.LLMObserveDjangoMiddleware"], INSTALLED_APPS=[],
    DATABASES={},
)
django.setup()
import httpx
import llmobserve
from django.http import HttpResponse
from django.urls import path
from django.test import Client

provider, collector = sys.argv[1], sys.argv[2]

def view(request):
    for _ in range(2):
        httpx.post(provider + "/v1/chat/completions", json={"model": "gpt-4o"})
    return HttpResponse("ok")

urlpatterns = [path("", view)]
llmobserve.observe(collector_url=collector, api_key="llmo_test",
                   hosts={provider.split("//")[1]: "openai"}, flush_interval=30)
c = Client()
assert c.get("/").content == b"ok"
assert c.get("/").content == b"ok"
assert llmobserve.flush(5)
'''


def test_django_end_to_end_in_a_subprocess(obs, tmp_path):
    pytest.importorskip("django")
    import subprocess
    import sys

    script = tmp_path / "djapp.py"
    script.write_text(DJANGO_APP)
    llm_host = obs.url("openai")
    env = {k: v for k, v in __import__("os").environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run([sys.executable, str(script), llm_host, obs.collector.url], capture_output=True,
                          text=True, timeout=60, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    runs = [e["run_id"] for e in obs.collector.events()]
    assert len(runs) == 4 and runs[0] == runs[1] != runs[2] == runs[3]
