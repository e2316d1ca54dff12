"""Admin: the price table a pricing analyst edits (search, filters, CSV export/import), and read-only
views of events, raw batches and rollups. Every price write goes through `ingestion.price_services`."""

from __future__ import annotations

import csv
import json
import logging
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from accounts.models import Organization
from accounts.tasking import enqueue

from .money import pico_to_usd
from .models import HourlyRollup, ModelPrice, RawBatch, TraceEvent
from .price_services import CSV_COLUMNS, ModelPriceForm, price_delete, price_save, prices_import
from .services import batches_retry

logger = logging.getLogger(__name__)



def _plain(value) -> str:
    """A Decimal without trailing zeros or exponent: 2.500000 → 2.5."""
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


def usd_from_pico(pico: int | None) -> str:
    if pico is None:
        return "unpriced"
    return "$" + pico_to_usd(pico)


# --- Prices ---------------------------------------------------------------------------------------

class ScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("global", "Global price"), ("override", "Organisation override")]

    def queryset(self, request, queryset):
        if self.value() == "global":
            return queryset.filter(org__isnull=True)
        if self.value() == "override":
            return queryset.filter(org__isnull=False)
        return queryset


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    form = ModelPriceForm
    change_list_template = "admin/ingestion/modelprice/change_list.html"
    list_display = ["provider", "model_match", "match_kind", "input_price", "output_price", "cache_read_price",
                    "cache_write_price", "tier_marker", "effective_from", "scope", "source"]
    list_display_links = ["model_match"]
    list_filter = [ScopeFilter, "provider", "match_kind", "source", ("org", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["provider", "model_match", "display_name"]
    date_hierarchy = "effective_from"
    list_select_related = ["org"]
    list_per_page = 100
    raw_id_fields = ["org"]
    readonly_fields = ["updated_at"]
    actions = ["export_csv"]
    fieldsets = [
        (None, {"fields": ["org", "provider", "match_kind", "model_match", "display_name", "effective_from",
                           "source"]}),
        ("USD per 1M tokens", {"fields": ["input_mtok", "output_mtok", "cached_input_mtok", "cache_write_mtok",
                                          "cache_write_1h_mtok", "tiers"]}),
        ("Non-token prices", {"fields": ["per_request_usd", "per_unit_usd", "unit_field"],
                              "classes": ["collapse"]}),
        (None, {"fields": ["updated_at"]}),
    ]

    def get_queryset(self, request):
        return ModelPrice.objects.unscoped().select_related("org")

    @admin.display(description="input $/1M", ordering="input_mtok")
    def input_price(self, obj):
        return _plain(obj.input_mtok)

    @admin.display(description="output $/1M", ordering="output_mtok")
    def output_price(self, obj):
        return _plain(obj.output_mtok)

    @admin.display(description="cache read $/1M", ordering="cached_input_mtok")
    def cache_read_price(self, obj):
        return _plain(obj.cached_input_mtok) or "= input"

    @admin.display(description="cache write $/1M", ordering="cache_write_mtok")
    def cache_write_price(self, obj):
        return _plain(obj.cache_write_mtok) or "= input"

    @admin.display(description="tiers")
    def tier_marker(self, obj):
        thresholds = [t.get("above") for t in obj.tiers or [] if isinstance(t, dict)]
        return ", ".join(f"> {_k(a)}" for a in sorted(thresholds)) if thresholds else ""

    @admin.display(description="org", ordering="org__name")
    def scope(self, obj):
        return obj.org.slug if obj.org_id else "global"

    # Every write goes through the price services: validated, price books reloaded, unpriced events re-priced.
    def save_model(self, request, obj, form, change):
        price_save(price=obj)

    def delete_model(self, request, obj):
        price_delete(prices=[obj])

    def delete_queryset(self, request, queryset):
        price_delete(prices=queryset)

    @admin.action(description="Export selected prices as CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="model-prices-{stamp}.csv"'
        prices_csv_write(response, queryset.select_related("org").order_by("provider", "model_match",
                                                                           "effective_from"))
        return response

    def get_urls(self):
        custom = [path("import/", self.admin_site.admin_view(self.import_view), name="ingestion_modelprice_import"),
                  path("reprice/", self.admin_site.admin_view(self.reprice_view), name="ingestion_modelprice_reprice")]
        return custom + super().get_urls()

    def reprice_view(self, request):
        return _reprice_view(self, request)

    def import_view(self, request):
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        result = None
        form = PriceImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            result = prices_import(upload=form.cleaned_data["file"])
            if result.saved:
                messages.success(request, f"Imported {result.created} new and {result.updated} updated prices.")
            if result.errors:
                messages.error(request, f"{len(result.errors)} rows were not imported; see below.")
            if not result.errors:
                return _redirect(reverse("admin:ingestion_modelprice_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import prices from CSV",
            "form": form,
            "result": result,
            "columns": CSV_COLUMNS,
        }
        return TemplateResponse(request, "admin/ingestion/modelprice/import.html", context)


class RepriceForm(forms.Form):
    since = forms.DateTimeField(help_text="UTC, e.g. 2026-11-01 00:00")
    until = forms.DateTimeField(help_text="UTC, exclusive")
    org = forms.ModelChoiceField(queryset=Organization.objects.all(), required=False,
                                 help_text="Empty: every organisation.")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["until"] <= cleaned["since"]:
            raise forms.ValidationError("until must be after since.")
        return cleaned


def _reprice_view(model_admin, request):
    """Re-price a time range with today's price table (events otherwise keep the price they had)."""
    from django.core.exceptions import PermissionDenied

    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    form = RepriceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        since, until, org = form.cleaned_data["since"], form.cleaned_data["until"], form.cleaned_data["org"]
        # Nothing was written, so nothing to wait for: queue now, and say so if the broker is down.
        if enqueue("ingestion.tasks.events_reprice_range", since.isoformat(), until.isoformat(),
                   org.pk if org else None):
            scope = org.slug if org else "every organisation"
            messages.success(request, f"Re-pricing events of {scope} from {since:%Y-%m-%d %H:%M} to "
                                      f"{until:%Y-%m-%d %H:%M} UTC with the current prices.")
            return _redirect(reverse("admin:ingestion_modelprice_changelist"))
        messages.error(request, "The re-pricing task could not be queued: the task broker (Redis) is "
                                "unavailable, see /health. Nothing was changed; submit again once it is back.")
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta,
               "title": "Re-price events in a time range", "form": form}
    return TemplateResponse(request, "admin/ingestion/modelprice/reprice.html", context)


def _redirect(url):
    from django.http import HttpResponseRedirect

    return HttpResponseRedirect(url)


def _k(tokens) -> str:
    if isinstance(tokens, int) and tokens >= 1000 and tokens % 1000 == 0:
        return f"{tokens // 1000}k"
    return str(tokens)


def prices_csv_write(stream, queryset) -> None:
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for p in queryset:
        writer.writerow([
            p.org.slug if p.org_id else "", p.provider, p.match_kind, p.model_match, p.display_name,
            _plain(p.input_mtok), _plain(p.output_mtok), _plain(p.cached_input_mtok), _plain(p.cache_write_mtok),
            _plain(p.cache_write_1h_mtok), json.dumps(p.tiers) if p.tiers else "", _plain(p.per_request_usd),
            _plain(p.per_unit_usd), p.unit_field, p.effective_from.isoformat(), p.source,
        ])


class PriceImportForm(forms.Form):
    file = forms.FileField(help_text=f"UTF-8 CSV with a header row: {', '.join(CSV_COLUMNS)}.")


# --- Read-only views of the event tables ------------------------------------------------------------

class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by ingestion: look, never add or edit here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TraceEvent)
class TraceEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "org", "provider", "model", "section_path", "input_tokens", "output_tokens",
                    "cost", "status"]
    list_filter = ["provider", "status", "span_type"]
    search_fields = ["=event_id", "=run_id"]
    list_select_related = ["org"]
    show_full_result_count = False  # no COUNT(*) over the whole event table on each page
    ordering = ["-id"]
    raw_id_fields = ["org"]

    def get_queryset(self, request):
        return TraceEvent.objects.unscoped().select_related("org")

    @admin.display(description="cost", ordering="cost_pico")
    def cost(self, obj):
        return usd_from_pico(obj.cost_pico)


class BatchStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("quarantined", "Quarantined"), ("processed", "Processed")]

    def queryset(self, request, queryset):
        unprocessed = queryset.filter(processed_at__isnull=True)
        return {
            "pending": unprocessed.filter(quarantined_at__isnull=True),
            "quarantined": unprocessed.filter(quarantined_at__isnull=False),
            "processed": queryset.filter(processed_at__isnull=False),
        }.get(self.value(), queryset)


@admin.register(RawBatch)
class RawBatchAdmin(ReadOnlyAdmin):
    """Accepted requests as stored; a batch that keeps failing is quarantined here with its error."""

    list_display = ["id", "org", "kind", "received_at", "event_count", "state", "attempts", "failed_events",
                    "next_attempt_at", "short_error"]
    list_filter = [BatchStateFilter, "kind"]
    list_select_related = ["org"]
    show_full_result_count = False
    ordering = ["-id"]
    exclude = ["payload"]
    actions = ["retry"]

    def get_queryset(self, request):
        return RawBatch.objects.unscoped().select_related("org").defer("payload")

    def has_retry_permission(self, request):
        return request.user.is_active and request.user.is_staff and request.user.has_perm("ingestion.change_rawbatch")

    @admin.display(description="last error")
    def short_error(self, obj):
        return (obj.last_error or "")[:80]

    @admin.action(description="Retry processing (quarantined or failing batches)", permissions=["retry"])
    def retry(self, request, queryset):
        count = batches_retry(batch_ids=queryset.values_list("pk", flat=True))
        messages.success(request, f"{count} batch(es) queued for processing again.")


@admin.register(HourlyRollup)
class HourlyRollupAdmin(ReadOnlyAdmin):
    list_display = ["hour", "org", "provider", "model", "section_path", "customer_id", "calls", "errors",
                    "unpriced_calls", "cost"]
    list_filter = ["provider"]
    search_fields = ["model", "section_path", "customer_id"]
    list_select_related = ["org"]
    show_full_result_count = False
    ordering = ["-hour"]

    def get_queryset(self, request):
        return HourlyRollup.objects.unscoped().select_related("org")

    @admin.display(description="cost", ordering="cost_pico")
    def cost(self, obj):
        return usd_from_pico(obj.cost_pico)


