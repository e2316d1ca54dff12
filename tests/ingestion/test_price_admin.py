"""The price admin as an analyst uses it, and the read-only event admins."""

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone as dj_timezone

from ingestion.models import EPOCH, HourlyRollup, ModelPrice, RawBatch, TraceEvent
from ingestion.price_services import price_save
from tests.factories import UserFactory

CHANGELIST = "admin:ingestion_modelprice_changelist"
HEADER = ("org,provider,match_kind,model_match,display_name,input_mtok,output_mtok,cached_input_mtok,"
          "cache_write_mtok,cache_write_1h_mtok,tiers,per_request_usd,per_unit_usd,unit_field,effective_from,source")


@pytest.fixture
def admin_client(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def invalidations(monkeypatch):
    calls = []
    monkeypatch.setattr("ingestion.price_services.prices_changed", lambda: calls.append(1))
    return calls


@pytest.fixture
def prices(org):
    return [
        price_save(provider="openai", model_match="gpt-4o", match_kind="prefix",
                                  input_mtok=Decimal("2.5"), output_mtok=Decimal("10"),
                                  cached_input_mtok=Decimal("1.25"), source="genai-prices"),
        price_save(provider="openai", model_match="gpt-4o-mini", match_kind="prefix",
                                  input_mtok=Decimal("0.15"), output_mtok=Decimal("0.6")),
        price_save(provider="anthropic", model_match="claude-sonnet-4", match_kind="prefix",
                                  input_mtok=3, output_mtok=15,
                                  tiers=[{"above": 200000, "input_mtok": "6", "output_mtok": "22.5"}]),
        price_save(provider="openai", model_match="gpt-4o", match_kind="prefix", org=org,
                                  input_mtok=2, output_mtok=8),
    ]


@pytest.mark.django_db
def test_changelist_loads_with_search_filters_and_tier_marker(admin_client, prices, org):
    url = reverse(CHANGELIST)
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "claude-sonnet-4" in body and "&gt; 200k" in body and "Import CSV" in body
    assert "= input" in body  # a missing cache price is shown as what it means

    found = admin_client.get(url, {"q": "mini"})
    assert found.status_code == 200 and list(found.context["cl"].result_list) == [prices[1]]
    for params, expected in [({"scope": "override"}, [prices[3]]), ({"provider": "anthropic"}, [prices[2]]),
                             ({"source": "genai-prices"}, [prices[0]]), ({"org__id__exact": org.pk}, [prices[3]]),
                             ({"effective_from__year": EPOCH.year}, prices)]:
        response = admin_client.get(url, params)
        assert response.status_code == 200, params
        assert sorted(response.context["cl"].result_list, key=lambda p: p.pk) == expected, params


@pytest.mark.django_db
def test_changelist_queries_are_bounded(admin_client, prices, django_assert_max_num_queries):
    for i in range(30):
        price_save(provider="mistral", model_match=f"m-{i}", org=prices[3].org)
    with django_assert_max_num_queries(15):
        assert admin_client.get(reverse(CHANGELIST)).status_code == 200


@pytest.mark.django_db
def test_csv_export_of_selected_rows(admin_client, prices, org):
    response = admin_client.post(reverse(CHANGELIST), {
        "action": "export_csv", "_selected_action": [prices[2].pk, prices[3].pk]})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["model_match"] for r in rows] == ["claude-sonnet-4", "gpt-4o"]
    assert rows[0]["org"] == "" and rows[1]["org"] == org.slug
    assert rows[0]["tiers"] == '[{"above": 200000, "input_mtok": "6", "output_mtok": "22.5"}]'
    assert rows[1]["input_mtok"] == "2" and rows[0]["cached_input_mtok"] == ""


@pytest.mark.django_db
def test_exported_csv_imports_back_unchanged(admin_client, prices):
    response = admin_client.post(reverse(CHANGELIST), {
        "action": "export_csv", "_selected_action": [p.pk for p in prices]})
    before = list(ModelPrice.objects.unscoped().order_by("pk").values())
    upload = SimpleUploadedFile("prices.csv", response.content, content_type="text/csv")
    result = admin_client.post(reverse("admin:ingestion_modelprice_import"), {"file": upload})
    assert result.status_code == 302
    after = list(ModelPrice.objects.unscoped().order_by("pk").values())
    for row in before + after:
        row.pop("updated_at")
    assert after == before


@pytest.mark.django_db
def test_csv_import_saves_good_rows_reports_bad_ones_and_loses_nothing(admin_client, prices, org, invalidations):
    text = "\n".join([
        HEADER,
        ",openai,exact,gpt-4.1,,2,8,0.5,,,,,,,2025-04-14,",                    # new global price
        f"{org.slug},openai,prefix,gpt-4o,,1.9,7.5,,,,,,,,,manual",               # updates the override
        ",openai,regex,gpt-(4.1,,2,8,,,,,,,,,",                                  # bad regex
        ",anthropic,exact,claude-x,,abc,8,,,,,,,,,",                             # bad price
        "no-such-org,openai,exact,gpt-4.1,,2,8,,,,,,,,,",                        # unknown org
        ",google,prefix,gemini-2.5-pro,,1.25,10,0.31,,,\"[{\"\"above\"\": 200000, \"\"input_mtok\"\": \"\"2.5\"\"}]\",,,,,",
        ",google,prefix,gemini-x,,1,1,,,,\"[{\"\"input_mtok\"\": 2}]\",,,,,",  # tier without threshold
        ",cohere,exact,rerank-v3.5,,0,0,,,,,0.0000000000001,,,,",              # 13 decimals
    ]) + "\n"
    upload = SimpleUploadedFile("prices.csv", text.encode(), content_type="text/csv")
    response = admin_client.post(reverse("admin:ingestion_modelprice_import"), {"file": upload})
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.created, result.updated) == (2, 1)
    assert [line for line, _ in result.errors] == [4, 5, 6, 8, 9]
    body = response.content.decode()
    assert "Not a valid regular expression" in body and "No organisation with slug" in body
    assert "input_mtok" in dict(result.errors)[5]

    created = ModelPrice.objects.unscoped().get(provider="openai", model_match="gpt-4.1")
    assert created.effective_from == datetime(2025, 4, 14, tzinfo=timezone.utc)
    assert created.cached_input_mtok == Decimal("0.5") and created.source == "manual" and created.org is None
    prices[3].refresh_from_db()
    assert prices[3].input_mtok == Decimal("1.9")
    gemini = ModelPrice.objects.unscoped().get(model_match="gemini-2.5-pro")
    assert gemini.tiers == [{"above": 200000, "input_mtok": "2.5"}] and gemini.effective_from == EPOCH
    for untouched in prices[:3]:
        assert ModelPrice.objects.unscoped().filter(pk=untouched.pk, input_mtok=untouched.input_mtok).exists()
    assert ModelPrice.objects.unscoped().count() == len(prices) + 2
    assert invalidations == [1]


@pytest.mark.django_db
def test_import_page_is_linked_from_the_changelist_and_documents_the_format(admin_client):
    url = reverse("admin:ingestion_modelprice_import")
    assert f'href="{url}"' in admin_client.get(reverse(CHANGELIST)).content.decode()
    page = admin_client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'enctype="multipart/form-data"' in body and "cached_input_mtok" in body and "effective_from" in body


@pytest.mark.django_db
def test_csv_import_rejects_a_file_without_the_needed_columns(admin_client):
    upload = SimpleUploadedFile("prices.csv", b"name,price\nx,1\n", content_type="text/csv")
    response = admin_client.post(reverse("admin:ingestion_modelprice_import"), {"file": upload})
    assert response.status_code == 200
    assert "Missing columns" in response.content.decode()
    assert not ModelPrice.objects.unscoped().exists()


@pytest.mark.django_db
def test_import_page_needs_staff(client, member):
    client.force_login(member)
    response = client.get(reverse("admin:ingestion_modelprice_import"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_saving_and_deleting_in_the_admin_invalidates_the_price_books(admin_client, prices, invalidations):
    price = prices[1]
    response = admin_client.post(reverse("admin:ingestion_modelprice_change", args=[price.pk]), {
        "provider": "openai", "match_kind": "prefix", "model_match": "gpt-4o-mini", "display_name": "",
        "effective_from_0": "2000-01-01", "effective_from_1": "00:00:00", "source": "manual",
        "input_mtok": "0.16", "output_mtok": "0.6", "cached_input_mtok": "", "cache_write_mtok": "",
        "cache_write_1h_mtok": "", "tiers": "[]", "per_request_usd": "", "per_unit_usd": "", "unit_field": "",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    price.refresh_from_db()
    assert price.input_mtok == Decimal("0.16")
    assert invalidations == [1]
    admin_client.post(reverse("admin:ingestion_modelprice_delete", args=[price.pk]), {"post": "yes"})
    assert not ModelPrice.objects.unscoped().filter(pk=price.pk).exists()
    assert invalidations == [1, 1]


@pytest.mark.django_db
def test_admin_form_rejects_tiers_it_cannot_price(admin_client, prices):
    response = admin_client.post(reverse("admin:ingestion_modelprice_change", args=[prices[1].pk]), {
        "provider": "openai", "match_kind": "prefix", "model_match": "gpt-4o-mini",
        "effective_from_0": "2000-01-01", "effective_from_1": "00:00:00", "source": "manual",
        "input_mtok": "0.15", "output_mtok": "0.6", "tiers": '[{"above": 1000, "input_mtok": "0.0000001"}]',
    })
    assert response.status_code == 200
    assert "more than six decimals" in response.content.decode()


@pytest.mark.django_db
def test_event_tables_are_read_only_and_listed(admin_client, org):
    now = dj_timezone.now()
    event = TraceEvent.objects.create(org=org, event_id="ev-1", run_id="run-1", provider="openai",
                                      model="gpt-4o", timestamp=now, cost_pico=4_720_000_000)
    TraceEvent.objects.create(org=org, event_id="ev-2", run_id="run-2", provider="openai", model="gpt-x",
                              timestamp=now, cost_pico=None)
    RawBatch.objects.create(org=org, payload=b"[]", event_count=0)
    HourlyRollup.objects.create(org=org, hour=now.replace(minute=0, second=0, microsecond=0), dims_hash="x" * 40,
                                calls=2, cost_pico=4_720_000_000)

    events = admin_client.get(reverse("admin:ingestion_traceevent_changelist"))
    body = events.content.decode()
    assert events.status_code == 200 and "$0.00472" in body and "unpriced" in body
    searched = admin_client.get(reverse("admin:ingestion_traceevent_changelist"), {"q": "run-1"})
    assert list(searched.context["cl"].result_list) == [event]
    assert admin_client.get(reverse("admin:ingestion_traceevent_change", args=[event.pk])).status_code == 200
    for name in ("traceevent", "rawbatch", "hourlyrollup"):
        assert admin_client.get(reverse(f"admin:ingestion_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:ingestion_{name}_add")).status_code == 403
    assert admin_client.post(reverse("admin:ingestion_traceevent_change", args=[event.pk]),
                             {"model": "changed"}).status_code == 403


@pytest.mark.django_db
def test_units_windows_and_variants_are_edited_as_readable_lines(admin_client, prices):
    price = prices[1]
    url = reverse("admin:ingestion_modelprice_change", args=[price.pk])
    form = {
        "provider": "openai", "match_kind": "prefix", "model_match": "gpt-4o-mini",
        "effective_from_0": "2000-01-01", "effective_from_1": "00:00:00", "source": "manual",
        "input_mtok": "0.15", "output_mtok": "0.6", "tiers": "[]",
        "unit_prices": "web_searches_kcount = 10\ninput_audio_mtok = 40",
        "time_windows": "00:30-16:30 | input_mtok=0.3 output_mtok=1.2",
        "variants": "processing=batch from 2026-10-14 | input_mtok=0.075 output_mtok=0.3 | @200000 input_mtok=0.15",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    price.refresh_from_db()
    assert price.unit_prices == {"web_searches_kcount": "10", "input_audio_mtok": "40"}
    assert price.time_windows == [{"start": "00:30", "end": "16:30",
                                   "prices": {"input_mtok": "0.3", "output_mtok": "1.2"}}]
    assert price.variants == [{"when": {"processing": "batch"}, "from": "2026-10-14",
                               "prices": {"input_mtok": "0.075", "output_mtok": "0.3"},
                               "tiers": [{"above": 200000, "input_mtok": "0.15"}]}]
    page = admin_client.get(url).content.decode()
    assert "web_searches_kcount = 10" in page and "processing=batch from 2026-10-14 | " in page
    assert "00:30-16:30 | input_mtok=0.3 output_mtok=1.2" in page

    bad = admin_client.post(url, {**form, "unit_prices": "web_searchez_kcount = 10",
                                  "variants": "processing=batch | inputt_mtok=1"})
    assert bad.status_code == 200
    text = bad.content.decode()
    assert "line 1: unknown price key &#x27;web_searchez_kcount&#x27;" in text
    assert "unknown price key &#x27;inputt_mtok&#x27;" in text


@pytest.mark.django_db
def test_every_synced_row_reads_back_from_its_readable_lines():
    from django.core.management import call_command

    from ingestion.price_text import (time_windows_parse, time_windows_render, unit_prices_parse,
                                      unit_prices_render, variants_parse, variants_render)

    call_command("sync_prices", verbosity=0)
    checked = 0
    for row in ModelPrice.objects.unscoped().exclude(unit_prices={}, time_windows=[], variants=[]):
        assert unit_prices_parse(unit_prices_render(row.unit_prices)) == row.unit_prices
        assert time_windows_parse(time_windows_render(row.time_windows)) == row.time_windows
        assert variants_parse(variants_render(row.variants)) == row.variants
        checked += 1
    assert checked > 500
