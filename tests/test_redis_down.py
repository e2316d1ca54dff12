"""Redis down never turns into a 500: the collector (gunicorn, REDIS_URL = a private redis-server) keeps
answering while the test kills or freezes that Redis. Events are stored durably in PostgreSQL meanwhile,
and throttling falls back to a per-process in-memory limiter at the same rate.
"""

import gzip
import json
import statistics
import time

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.services import api_key_create
from ingestion.models import RawBatch
from tests.factories import MembershipFactory, UserFactory
from tests.processes import PrivateRedis, WebServer, app_env, require_postgres_and_redis_server

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"
CODE = "import openai\n\ndef research(q):\n    return openai.chat.completions.create(model='gpt-4o', messages=[])\n"


@pytest.fixture
def redis_server():
    require_postgres_and_redis_server()
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_web(redis_server):
    """Start the collector with REDIS_URL pointing at the private Redis (plus any extra settings)."""
    servers = []

    def _start(**env):
        server = WebServer(app_env(redis_server.url(), **env))
        servers.append(server)
        server.start()
        return server

    yield _start
    for server in servers:
        server.stop()


def with_server_password(user):
    """The test settings hash with MD5, which the server does not accept: store a PBKDF2 hash it knows."""
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "faultsalt", iterations=1000)
    user.save(update_fields=["password"])
    return user


@pytest.fixture
def tenant(db):
    membership = MembershipFactory()
    with_server_password(membership.user)
    org = membership.org
    return {"org": org, "user": membership.user,
            "ingest": api_key_create(org=org, name="ingest", scope="ingest").raw_key,
            "read": api_key_create(org=org, name="read", scope="read").raw_key}


def post_events(web, key, events):
    body = gzip.compress(json.dumps({"events": events}).encode())
    return web.post("/v1/events", key, data=body, timeout=10,
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})


def event(i, **fields):
    return {"event_id": f"ev-{i}", "run_id": f"run-{i % 4}", "provider": "openai", "model": "gpt-4o",
            "input_tokens": 1000, "output_tokens": 100, "section_path": "agent:bot", **fields}


def login(web, path, email, data_field="login"):
    """Sign in through the real form (allauth for the dashboard, Django's for the admin)."""
    web.get(path)
    token = web.http.cookies["csrftoken"]
    return web.post(path, data={data_field: email, "password": PASSWORD, "csrfmiddlewaretoken": token},
                    headers={"Referer": web.base + path}, allow_redirects=False)


def test_redis_killed_ingest_read_dashboard_admin_and_health_keep_answering(redis_server, start_web, tenant):
    web = start_web()
    org = tenant["org"]
    assert post_events(web, tenant["ingest"], [event(0)]).status_code == 202  # Redis up: the normal path

    redis_server.kill()

    response = post_events(web, tenant["ingest"], [event(i) for i in range(1, 6)] + [{"span_type": "bogus"}])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 5 and [r["index"] for r in body["rejected"]] == [5]
    # Durable in PostgreSQL, waiting for the sweeper (nothing could be queued).
    pending = RawBatch.objects.for_org(org).filter(processed_at__isnull=True).order_by("pk").last()
    assert pending.event_count == 5

    for path in ("/v1/stats/summary", "/v1/runs", "/v1/stats/breakdown?by=agent", "/v1/export?format=json"):
        response = web.get(path, tenant["read"], timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])

    assert web.post("/v1/ai-instrument", tenant["ingest"], json={"code": CODE, "file_path": "agent.py"},
                    timeout=10).status_code == 200

    health = web.get("/health", timeout=10)
    body = health.json()
    assert health.status_code == 200 and {k: body[k] for k in ("status", "database", "broker")} == {
        "status": "degraded", "database": "ok", "broker": "down"}
    assert body["batches"]["pending"] >= 1 and body["batches"]["quarantined"] == 0  # stored, waiting for the queue

    # Sign in (allauth's login rate limit lives in the cache) and read the dashboard.
    response = login(web, "/accounts/login/", tenant["user"].email)
    assert response.status_code == 302, response.text[:500]
    for path in (f"/o/{org.slug}/", f"/o/{org.slug}/runs/", f"/o/{org.slug}/customers/", f"/o/{org.slug}/settings/"):
        response = web.get(path, timeout=10)
        assert response.status_code in (200, 302), (path, response.status_code)
        assert response.status_code != 302 or "/accounts/login" not in response.headers.get("Location", "")

    # A price edit in the admin (it bumps the price version in the cache and queues a re-price).
    admin = with_server_password(UserFactory(is_staff=True, is_superuser=True))
    web.http.cookies.clear()
    # The admin signs in through allauth's login (its failed-login limit lives in the cache too).
    assert login(web, "/accounts/login/?next=/admin/", admin.email).status_code == 302
    assert web.get("/admin/", allow_redirects=False, timeout=10).status_code == 200
    response = web.post("/admin/ingestion/modelprice/add/", data={
        "provider": "openai", "match_kind": "exact", "model_match": "gpt-4o", "display_name": "",
        "effective_from_0": "2000-01-01", "effective_from_1": "00:00:00", "source": "manual",
        "input_mtok": "2.5", "output_mtok": "10", "cached_input_mtok": "", "cache_write_mtok": "",
        "cache_write_1h_mtok": "", "tiers": "[]", "per_request_usd": "", "per_unit_usd": "", "unit_field": "",
        "csrfmiddlewaretoken": web.http.cookies["csrftoken"]}, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:500]
    # Re-pricing a range is a queued task: with the broker down the admin is told so, not shown a 500.
    response = web.post("/admin/ingestion/modelprice/reprice/", data={
        "since": "2026-01-01 00:00", "until": "2026-01-02 00:00", "org": "",
        "csrfmiddlewaretoken": web.http.cookies["csrftoken"]}, timeout=10)
    assert response.status_code == 200 and "could not be queued" in response.text, response.text[:500]

    # Redis is back: the same process finds it again (health says so, ingestion queues again).
    redis_server.start()
    deadline = time.monotonic() + 15
    while web.get("/health").json()["broker"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.2)
    body = web.get("/health").json()
    assert {k: body[k] for k in ("status", "database", "broker")} == {"status": "ok", "database": "ok", "broker": "ok"}
    assert post_events(web, tenant["ingest"], [event(99)]).status_code == 202


def test_throttles_fall_back_to_a_per_process_limiter_at_the_same_rate(redis_server, start_web, tenant):
    web = start_web(LLMOBSERVE_INGEST_RATE="3", LLMOBSERVE_READ_RATE="3", LLMOBSERVE_INSTRUMENT_RATE_PER_ORG="2")
    redis_server.kill()

    statuses = [post_events(web, tenant["ingest"], [event(i)]).status_code for i in range(4)]
    assert statuses == [202, 202, 202, 429]
    throttled = post_events(web, tenant["ingest"], [event(9)])
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 120  # a sliding window
    assert RawBatch.objects.for_org(tenant["org"]).count() == 3  # what was answered 202 is stored

    assert [web.get("/v1/stats/summary", tenant["read"]).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [web.post("/v1/ai-instrument", tenant["ingest"], json={"code": CODE, "file_path": "a.py"}).status_code
            for _ in range(3)] == [200, 200, 429]


def test_a_hung_redis_costs_at_most_one_timeout_not_one_per_request(redis_server, start_web, tenant):
    """A frozen Redis (SIGSTOP: connections are accepted, nothing answers) must not hang requests."""
    web = start_web()
    assert post_events(web, tenant["ingest"], [event(0)]).status_code == 202  # pooled connections exist
    redis_server.freeze()
    try:
        timings = []
        for i in range(1, 13):
            started = time.monotonic()
            response = post_events(web, tenant["ingest"], [event(i)])
            timings.append(time.monotonic() - started)
            assert response.status_code == 202, response.text
        read = web.get("/v1/stats/summary", tenant["read"], timeout=10)
        assert read.status_code == 200
    finally:
        redis_server.thaw()
    assert RawBatch.objects.for_org(tenant["org"]).count() == 13
    # The first request pays the short socket timeouts (cache, then broker); the open circuit spares the rest.
    print("request timings with a hung Redis:", [round(t, 3) for t in timings])
    assert max(timings) < 5, timings
    assert statistics.median(timings) < 0.3, timings
    assert sum(timings) < 8, timings
