"""Per-key request limits: a sliding window over the last minute (accounts.ratelimit), through the endpoints.

Run on both backends: the embedded defaults count in the process's memory cache, CI's PostgreSQL + Redis run
counts in Redis with one pipelined round trip a request."""

from datetime import datetime, timedelta, timezone

import pytest
import time_machine

# The last seconds of a month: the window that follows starts a new day and a new month.
MONTH_END = datetime(2026, 11, 30, 23, 59, 50, tzinfo=timezone.utc)


def at(moment):
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def rate(settings):
    settings.LLMOBSERVE_INGEST_RATE = 10
    settings.LLMOBSERVE_READ_RATE = 10
    return 10


def test_the_previous_minute_counts_by_the_share_of_it_the_last_60_seconds_still_cover(ingest_key, post_events, rate):
    with at(MONTH_END):  # 10 s before the window ends
        assert [post_events(ingest_key, []).status_code for _ in range(rate)] == [202] * rate
        refused = post_events(ingest_key, [])
    # In the next window these 10 weigh 10 × (60 − 10) / 60 = 8.33 at 10 s in: room for one more until 12 s in.
    assert refused.status_code == 429 and refused["Retry-After"] == str(10 + 6)  # 10 × (1 − 9/10) = 6 s in
    with at(MONTH_END + timedelta(seconds=16)):
        assert post_events(ingest_key, []).status_code == 202  # 10 × 54/60 + 1 = 10
        refused = post_events(ingest_key, [])
    assert refused.status_code == 429 and refused["Retry-After"] == "6"  # 10 × (60 − 12)/60 + 2 = 10 at 12 s in
    with at(MONTH_END + timedelta(seconds=20)):  # 10 s in: 10 × 50/60 + 2 > 10
        assert post_events(ingest_key, []).status_code == 429
    with at(MONTH_END + timedelta(seconds=22)):  # 12 s in: 10 × 48/60 + 2 = 10, as the refused hits did not count
        assert post_events(ingest_key, []).status_code == 202
        assert post_events(ingest_key, []).status_code == 429
    with at(MONTH_END + timedelta(seconds=70)):  # 0 s into the third window: the second's 2 hits weigh fully
        assert [post_events(ingest_key, []).status_code for _ in range(9)] == [202] * 8 + [429]


def test_keys_and_endpoints_have_budgets_of_their_own(org, ingest_key, read_key, other_read_key, post_events, api,
                                                      rate):
    from accounts.services import api_key_create

    second = api_key_create(org=org, name="second", scope="ingest").raw_key
    with at(MONTH_END):
        for _ in range(rate):
            assert post_events(ingest_key, []).status_code == 202
        assert post_events(ingest_key, []).status_code == 429
        assert post_events(second, []).status_code == 202  # the same org, another key
        for _ in range(rate):
            assert api(read_key).get("/v1/stats/summary").status_code == 200  # the read limit is its own
        response = api(read_key).get("/v1/stats/summary")
        assert response.status_code == 429 and response["Retry-After"] == "16"
        assert api(other_read_key).get("/v1/stats/summary").status_code == 200


def test_a_limit_of_one_a_minute(ingest_key, post_events, settings):
    """The estimate is conservative for tiny limits: a hit late in one window still weighs on the next."""
    settings.LLMOBSERVE_INGEST_RATE = 1
    start = datetime(2026, 12, 31, 23, 40, tzinfo=timezone.utc)
    with at(start + timedelta(seconds=30)):
        assert post_events(ingest_key, []).status_code == 202
        refused = post_events(ingest_key, [])
    # Not in the next window (1 × (60 − e)/60 + 1 > 1 all along it), only in the one after: 30 + 60 s.
    assert refused.status_code == 429 and refused["Retry-After"] == "90"
    for later in (60, 119):
        with at(start + timedelta(seconds=later)):
            assert post_events(ingest_key, []).status_code == 429
    with at(start + timedelta(seconds=120)):
        assert post_events(ingest_key, []).status_code == 202
