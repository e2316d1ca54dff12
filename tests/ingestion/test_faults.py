"""Fault injection on the real pipeline: gunicorn (web) + a Celery worker process + a private redis-server,
all with the deployment's environment (REDIS_URL = the private Redis, DATABASE_URL = this run's PostgreSQL
test database). The test kills Redis, SIGKILLs the worker and cuts every database connection mid-stream,
and checks through the read API that exactly the events that were sent are counted: none lost, none twice.

The sweeper is run the way beat runs it: its task message is published to the broker (`send_task
("ingestion.tasks.batches_sweep")`, every few seconds instead of beat's 60 s) and the real worker executes it.
"""

import gzip
import json
import re
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.processes import Beat, PrivateRedis, WebServer, Worker, app_env, require_postgres_and_redis_server

from .otlp_export import S, chat, new_trace_id, protobuf

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

BATCH = 20
RETRY_SECONDS = 1  # the circuit's pause after a Redis error (5 s by default), shortened to keep the test short
# gpt-4o in the `prices` fixture: $2.5 / 1M input, $10 / 1M output.
IN_PRICE, OUT_PRICE = Decimal("2.5"), Decimal("10")


@pytest.fixture
def stack(prices):
    require_postgres_and_redis_server()
    redis = PrivateRedis()
    redis.start()
    env = app_env(redis.url(), LLMOBSERVE_REDIS_RETRY_SECONDS=str(RETRY_SECONDS))
    web = WebServer(env)
    workers: list[Worker] = []

    def start_worker() -> Worker:
        worker = Worker(env)
        workers.append(worker)
        worker.start()
        return worker

    try:
        web.start()
        yield {"redis": redis, "web": web, "env": env, "start_worker": start_worker, "workers": workers}
    finally:
        for worker in workers:
            worker.stop()
        web.stop()
        redis.stop()


class Stream:
    """An SDK-like sender: numbered batches of distinct events; it remembers what it got a 202 for."""

    def __init__(self, web, key):
        self.web, self.key = web, key
        self.sent: dict[str, tuple[int, int]] = {}
        self.next_batch = 0
        self.started = datetime.now(timezone.utc) - timedelta(minutes=10)

    def events(self, n: int) -> list[dict]:
        # Each event carries its own call time, as the SDK's do: a re-send repeats it, so the (org, event_id,
        # timestamp) key stores it once.
        return [{"event_id": f"b{n}-e{i}", "run_id": f"run-{n}", "provider": "openai", "model": "gpt-4o",
                 "input_tokens": 1000 + 37 * n + i, "output_tokens": 100 + i, "section_path": "agent:bot",
                 "timestamp": (self.started + timedelta(seconds=n, milliseconds=i)).isoformat()}
                for i in range(BATCH)]

    def big_batch(self) -> list[dict]:
        """1,000 events (the per-request maximum): long enough to process that a fault can land inside it."""
        self.next_batch += 1
        return [{**e, "event_id": f"big{self.next_batch}-{i}"}
                for i, e in enumerate(self.events(self.next_batch) * (1000 // BATCH))]

    def post(self, events: list[dict]) -> None:
        body = gzip.compress(json.dumps({"events": events}).encode())
        response = self.web.post("/v1/events", self.key, data=body, timeout=15,
                                 headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == len(events)
        self.sent.update({e["event_id"]: (e["input_tokens"], e["output_tokens"]) for e in events})

    def send(self, batches: int) -> None:
        for _ in range(batches):
            self.post(self.events(self.next_batch))
            self.next_batch += 1

    def expected(self) -> tuple[int, str]:
        return expected_of(self.sent)


def expected_of(sent: dict[str, tuple[int, int]]) -> tuple[int, str]:
    """(calls, cost in USD as the read API writes it) of gpt-4o calls of these (input, output) tokens."""
    cost = sum((inp * IN_PRICE + out * OUT_PRICE) / 10**6 for inp, out in sent.values())
    return len(sent), format(cost.normalize(), "f")


class OtlpStream:
    """An OpenTelemetry exporter's sends: traces of an agent's root span and its chat calls, exported as a
    BatchSpanProcessor does (the calls end first; their root, in the next export). It remembers every call it got a
    200 for, and which have their root sent."""

    CALLS = 3

    def __init__(self, web, key):
        self.web, self.key = web, key
        self.sent: dict[str, tuple[int, int]] = {}
        self.rooted: dict[str, tuple[int, int]] = {}  # the calls whose root was sent
        self.roots: list[tuple[S, list[str]]] = []  # sent next, with their calls
        self.calls = 0
        self.started = datetime.now(timezone.utc) - timedelta(minutes=10)

    def export(self, traces: int) -> None:
        spans = [root for root, _ in self.roots]
        for root, calls in self.roots:
            self.rooted.update({call: self.sent[call] for call in calls})
        self.roots = []
        for _ in range(traces):
            trace, start = new_trace_id(), self.started + timedelta(milliseconds=self.calls)
            root = S("invoke_agent bot", trace, start=start, scope="app", attrs={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot"})
            calls = []
            for i in range(self.CALLS):
                self.calls += 1
                inp, out = 1000 + 37 * self.calls, 100 + self.calls % 50
                call = chat(trace, parent=root.span_id, input_tokens=inp, output_tokens=out, start=start,
                            **{"gen_ai.response.id": f"resp-{trace}-{i}"})
                spans.append(call)
                calls.append(call.span_id)
                self.sent[call.span_id] = (inp, out)
            self.roots.append((root, calls))
        response = self.web.post("/v1/otlp/v1/traces", self.key, data=gzip.compress(protobuf(spans)), timeout=15,
                                 headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text
        assert not ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans

    def flush(self) -> None:
        """The last roots, alone."""
        self.export(0)

    def expected(self) -> tuple[int, str]:
        return expected_of(self.sent)


def settle(stack, read_key, stream, timeout=150.0) -> dict:
    """Publish the sweeper's task every few seconds (as beat would, faster) until the counts match."""
    web, expected_calls = stack["web"], stream.expected()[0]
    deadline = time.monotonic() + timeout
    beat = Beat(stack["redis"].url())
    try:
        while time.monotonic() < deadline:
            if web.get("/v1/stats/summary", read_key).json()["calls"] >= expected_calls:
                break
            beat.send("ingestion.tasks.batches_sweep")
            time.sleep(3)
    finally:
        beat.close()
    time.sleep(2)  # anything still queued (a duplicate, a redelivery) must not add to the counts
    return web.get("/v1/stats/summary", read_key).json()


def worker_log(stack) -> str:
    return "\n".join(w.output() for w in stack["workers"])


def wait_calls(stack, read_key, calls: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while stack["web"].get("/v1/stats/summary", read_key).json()["calls"] < calls:
        assert time.monotonic() < deadline, f"the worker never got to {calls} calls\n{worker_log(stack)[-4000:]}"
        time.sleep(0.2)


def test_redis_killed_and_worker_sigkilled_mid_stream_lose_and_double_count_nothing(stack, ingest_key, read_key):
    stream = Stream(stack["web"], ingest_key)
    first = stack["start_worker"]()
    first.wait_ready()
    stream.send(6)
    wait_calls(stack, read_key, 6 * BATCH)  # the normal path: queued, processed by the worker

    stack["redis"].kill()  # broker and cache gone, with every message in them
    stream.send(6)  # answered 202: stored in PostgreSQL, not queued
    stack["redis"].start()  # an empty Redis on the same port
    time.sleep(RETRY_SECONDS + 0.5)  # the web's broker circuit lets the next publish try again
    stream.send(6)
    # The same worker reconnected; each new batch's task also takes pending batches of the org along.
    wait_calls(stack, read_key, 18 * BATCH)

    received = first.log_count("] received")
    stream.post(stream.big_batch())
    first.wait_received(received + 1)
    first.sigkill()  # the moment it took the 1,000-event batch: mid-batch, its message unacknowledged
    assert first.log_count("] received") > first.log_count("] succeeded"), "the kill did not land inside a task"
    stream.send(4)  # queued, no worker
    second = stack["start_worker"]()
    second.wait_ready()
    stream.send(6)
    stream.post(stream.events(3))  # an SDK retry of a batch already stored: accepted, counted once
    # The second worker drained everything so far (the killed task's batch too: a drain takes the org's oldest
    # pending batch), so no task is running or queued when Redis goes again.
    wait_calls(stack, read_key, stream.expected()[0])
    second.wait_idle()  # the drain that counted them has returned (it could still take a batch sent below)

    stack["redis"].kill()  # once more at the end: no later batch of the org will take these along,
    stream.send(3)  # only the sweeper can process them
    stack["redis"].start()

    summary = settle(stack, read_key, stream)
    calls, cost = stream.expected()
    assert calls == 31 * BATCH + 1000
    got = (summary["calls"], summary["cost_usd"], summary["unpriced_calls"])
    assert got == (calls, cost, 0), worker_log(stack)[-4000:]
    swept = [int(n) for n in re.findall(r"batches_sweep\[[^]]+\] succeeded in [^:]+: (\d+)", second.output())]
    assert sum(swept) >= 3 * BATCH, swept


def test_worker_and_web_recover_when_every_database_connection_is_cut(stack, ingest_key, read_key):
    """Not a PostgreSQL restart (the server is shared): every backend of the test database is terminated
    with pg_terminate_backend while web and worker hold connections, which they see as a dropped connection."""
    stream = Stream(stack["web"], ingest_key)
    stack["start_worker"]()
    stream.send(5)
    assert settle(stack, read_key, stream)["calls"] == 5 * BATCH

    for _ in range(2):
        stream.post(stream.big_batch())
        # Right behind a 1,000-event batch: the worker is likely inside its processing transaction.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            assert cursor.fetchall(), "web and worker held no connection to cut"
        stream.send(5)

    summary = settle(stack, read_key, stream)
    calls, cost = stream.expected()
    got = (summary["calls"], summary["cost_usd"], summary["unpriced_calls"])
    assert got == (calls, cost, 0), worker_log(stack)[-4000:]
    assert "OperationalError" in worker_log(stack)  # the worker did lose its connection, and got over it


def test_otlp_exports_with_redis_killed_and_the_worker_sigkilled_lose_and_double_count_no_call(stack, ingest_key,
                                                                                                read_key):
    """The OTLP path under the same faults: its exports are batches of their own kind, drained, swept and retried
    as /v1/events' are, and their calls resolve (children before their root, across exports) exactly once."""
    stream = OtlpStream(stack["web"], ingest_key)
    first = stack["start_worker"]()
    first.wait_ready()
    stream.export(5)
    stream.export(5)
    wait_calls(stack, read_key, len(stream.rooted))  # the first export's calls, resolved once their roots came

    stack["redis"].kill()
    stream.export(5)  # answered 200: stored in PostgreSQL, not queued
    stack["redis"].start()
    time.sleep(RETRY_SECONDS + 0.5)
    stream.export(5)
    wait_calls(stack, read_key, len(stream.rooted))

    received = first.log_count("] received")
    stream.export(400)  # 1,200 calls and the last roots: long enough to process that the kill lands inside it
    first.wait_received(received + 1)
    first.sigkill()
    assert first.log_count("] received") > first.log_count("] succeeded"), "the kill did not land inside a task"
    stream.export(5)  # queued, no worker
    second = stack["start_worker"]()
    second.wait_ready()
    stream.export(5)
    wait_calls(stack, read_key, len(stream.rooted))
    second.wait_idle()

    stack["redis"].kill()  # at the end: only the sweeper can process these
    stream.export(5)
    stream.flush()
    stack["redis"].start()

    summary = settle(stack, read_key, stream)
    calls, cost = stream.expected()
    assert calls == 435 * OtlpStream.CALLS
    got = (summary["calls"], summary["cost_usd"], summary["unpriced_calls"])
    assert got == (calls, cost, 0), worker_log(stack)[-4000:]
