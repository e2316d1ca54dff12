"""The price services: one set of rules for every writer, and every write reaches every process's price book."""

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection

from ingestion import pricing
from ingestion.models import ModelPrice
from ingestion.price_services import CSV_COLUMNS, price_delete, price_save, prices_import
from ingestion.pricing import price_book_get, price_version_get

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def _gpt4o_cost(book, tokens=1_000_000):
    priced = book.price(org_id=None, provider="openai", model="gpt-4o", at=NOW, input_tokens=tokens, output_tokens=0)
    return None if priced is None else priced[1]


@pytest.mark.django_db
def test_every_writer_bumps_the_price_version_and_reloads_the_book():
    v0 = price_version_get()
    book = price_book_get()
    assert _gpt4o_cost(book) is None
    price = price_save(provider="OpenAI ", model_match=" gpt-4o", input_mtok="2.5", output_mtok="10")
    assert (price.provider, price.model_match) == ("openai", "gpt-4o")  # normalised the same way everywhere
    assert price_version_get() == v0 + 1
    assert _gpt4o_cost(price_book_get()) == 2_500_000 * 1_000_000

    price_save(price=price, input_mtok="3")
    assert price_version_get() == v0 + 2 and _gpt4o_cost(price_book_get()) == 3 * 10**12

    csv_text = ",".join(CSV_COLUMNS) + "\n,openai,exact,gpt-4o-mini,,0.15,0.6,,,,,,,,,\n"
    result = prices_import(upload=SimpleUploadedFile("p.csv", csv_text.encode()))
    assert (result.created, result.errors) == (1, [])
    assert price_version_get() == v0 + 3

    call_command("sync_prices", stdout=StringIO(), stderr=StringIO())
    assert price_version_get() == v0 + 4

    assert price_delete(prices=ModelPrice.objects.unscoped().filter(model_match="gpt-4o", org__isnull=True,
                                                                     source="manual")) == 1
    assert price_version_get() == v0 + 5
    assert _gpt4o_cost(price_book_get()) is None  # the manual row had kept the registry's out …
    call_command("sync_prices", stdout=StringIO(), stderr=StringIO())
    assert _gpt4o_cost(price_book_get()) == 2_500_000 * 1_000_000  # … which the next sync brings in


@pytest.mark.django_db
def test_the_service_the_importer_and_the_admin_refuse_the_same_rows_with_the_same_words(admin_client):
    v0 = price_version_get()
    with pytest.raises(ValidationError) as bad_regex:
        price_save(provider="openai", match_kind="regex", model_match="gpt-(4", input_mtok="1", output_mtok="1")
    with pytest.raises(ValidationError) as bad_tier:
        price_save(provider="openai", model_match="x", input_mtok="1", output_mtok="1", tiers=[{"input_mtok": "2"}])
    with pytest.raises(ValidationError) as inexact:
        price_save(provider="openai", model_match="y", input_mtok="1", output_mtok="1",
                   tiers=[{"above": 10, "cache_write_1h_mtok": "0.0000001"}])
    assert "Not a valid regular expression" in str(bad_regex.value)
    assert 'needs an "above" threshold' in str(bad_tier.value)
    assert "Cannot price exactly" in str(inexact.value)

    header = ",".join(CSV_COLUMNS)
    csv_text = "\n".join([header, ",openai,regex,gpt-(4,,1,1,,,,,,,,,",
                          ',openai,exact,x,,1,1,,,,"[{""input_mtok"": ""2""}]",,,,,']) + "\n"
    result = prices_import(upload=SimpleUploadedFile("p.csv", csv_text.encode()))
    assert result.saved == 0
    errors = dict(result.errors)
    assert "Not a valid regular expression" in errors[2] and 'needs an "above" threshold' in errors[3]

    page = admin_client.post("/admin/ingestion/modelprice/add/", {
        "provider": "openai", "match_kind": "regex", "model_match": "gpt-(4", "display_name": "",
        "effective_from_0": "", "effective_from_1": "", "source": "manual", "input_mtok": "1", "output_mtok": "1",
        "tiers": "[]"})
    assert page.status_code == 200 and "Not a valid regular expression" in page.content.decode()
    assert not ModelPrice.objects.unscoped().exists()
    assert price_version_get() == v0  # nothing written, nothing invalidated


@pytest.mark.django_db
def test_a_one_hour_tier_price_is_accepted_by_the_admin_and_round_trips_through_csv(admin_client):
    response = admin_client.post("/admin/ingestion/modelprice/add/", {
        "provider": "anthropic", "match_kind": "prefix", "model_match": "claude-sonnet-4-5", "display_name": "",
        "effective_from_0": "", "effective_from_1": "", "source": "manual", "input_mtok": "3", "output_mtok": "15",
        "cache_write_mtok": "3.75", "cache_write_1h_mtok": "6",
        "tiers": '[{"above": 200000, "input_mtok": "6", "cache_write_1h_mtok": "12"}]'})
    assert response.status_code == 302
    price = ModelPrice.objects.unscoped().get()
    priced = price_book_get().price(org_id=None, provider="anthropic", model="claude-sonnet-4-5", at=NOW,
                                    input_tokens=250_000, output_tokens=0, cache_write_tokens=250_000,
                                    cache_write_1h_tokens=250_000)
    assert priced == (price.pk, 250_000 * 12 * 10**6)


@pytest.fixture
def admin_client(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db
def test_a_price_written_elsewhere_reaches_this_process_within_a_second_without_a_shared_cache(monkeypatch):
    """Another process bumps the version row (no cache involved): this process reloads on its next check."""
    from django.core.cache import cache

    price_save(provider="openai", model_match="gpt-4o", input_mtok="2.5", output_mtok="10")
    book = price_book_get()
    # What another process's write leaves behind in the database (its own book, its own cache, are not ours).
    ModelPrice.objects.unscoped().filter(model_match="gpt-4o").update(input_mtok="5")
    from django.db.models import F

    from ingestion.models import PriceVersion
    PriceVersion.objects.filter(pk=1).update(version=F("version") + 1)
    cache.clear()  # whatever the cache holds plays no part
    assert price_book_get() is book  # checked at most once a second
    monkeypatch.setattr(pricing, "_book_checked_at", time.monotonic() - pricing.VERSION_CHECK_SECONDS)
    assert _gpt4o_cost(price_book_get()) == 5 * 10**12


@pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
                    reason="another process needs a database it can share: the SQLite test database is in memory")
@pytest.mark.django_db(transaction=True)
def test_a_price_saved_in_another_process_in_embedded_mode_reaches_a_running_process(monkeypatch):
    """A shell (or `sync_prices`) in another process, with the per-process memory cache (no REDIS_URL), writes a
    price: this running process prices with it within a second, with no restart."""
    # this process checked the version under the previous test less than a second ago, maybe: check it now
    monkeypatch.setattr(pricing, "_book_checked_at", time.monotonic() - pricing.VERSION_CHECK_SECONDS)
    book = price_book_get()
    assert _gpt4o_cost(book) is None
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # embedded mode: LocMemCache there
    env["DATABASE_URL"] = (f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
                           f"{db['PORT'] or 5432}/{db['NAME']}")
    script = ("from ingestion.price_services import price_save; "
              "price_save(provider='openai', model_match='gpt-4o', input_mtok='2.5', output_mtok='10')")
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    time.sleep(pricing.VERSION_CHECK_SECONDS + 0.1)
    assert _gpt4o_cost(price_book_get()) == 2_500_000 * 1_000_000
