"""Price writes: the only way a `ModelPrice` row changes.

`price_save`, `price_delete`, `prices_import` (CSV) and `prices_sync` (the genai-prices registry)
validate with the same rules (`price_validate`) and end with `prices_changed()`: the price-table
version row is bumped in the same transaction (every process reloads its price book within a
second of the commit) and, after commit, unpriced events are re-priced. The admin, the
`sync_prices` command and the tests call only these.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from django import forms
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization

from .models import EPOCH, ModelPrice, PriceDiscount
from .price_text import (PriceTextError, time_windows_parse, time_windows_render, unit_prices_parse,
                         unit_prices_render, variants_parse, variants_render)
from .price_units import price_key_canonical
from .pricing import entry_build, prices_changed

CSV_COLUMNS = ["org", "provider", "match_kind", "model_match", "display_name", "input_mtok", "output_mtok",
               "cached_input_mtok", "cache_write_mtok", "cache_write_1h_mtok", "tiers", "per_request_usd",
               "per_unit_usd", "unit_field", "effective_from", "source", "unit_prices", "time_windows", "variants"]
TIER_KEYS = {"above", "input_mtok", "output_mtok", "cached_input_mtok", "cache_write_mtok", "cache_write_1h_mtok"}
MAX_IMPORT_BYTES = 5 * 1024 * 1024
SYNC_FIELDS = ["display_name", "input_mtok", "output_mtok", "cached_input_mtok", "cache_write_mtok",
               "cache_write_1h_mtok", "tiers", "per_request_usd", "per_unit_usd", "unit_field", "unit_prices",
               "time_windows", "variants"]


# --- Validation (one set of rules for every writer) -------------------------------------------------

def _tiers_errors(tiers) -> str | None:
    if not isinstance(tiers, list):
        return 'Tiers must be a JSON list, e.g. [{"above": 200000, "input_mtok": "6"}].'
    for i, tier in enumerate(tiers, start=1):
        if not isinstance(tier, dict) or "above" not in tier:
            return f'Tier {i} needs an "above" threshold (input tokens).'
        unknown = {k for k in set(tier) - TIER_KEYS if price_key_canonical(k) is None}
        if unknown:
            return f"Tier {i} has unknown keys: {', '.join(sorted(unknown))}."
        if not isinstance(tier["above"], int) or isinstance(tier["above"], bool) or tier["above"] < 0:
            return f'Tier {i}: "above" must be a whole number of tokens.'
    return None


def price_check(price: ModelPrice) -> None:
    """What the model's fields cannot say: tiers' shape, the regex, prices the engine can price exactly.

    Raises ValidationError keyed by field name.
    """
    errors: dict[str, str] = {}
    if (problem := _tiers_errors(price.tiers or [])) is not None:
        errors["tiers"] = problem
    if not isinstance(price.unit_prices or {}, dict):
        errors["unit_prices"] = 'Unit prices must be a JSON object, e.g. {"web_searches_kcount": "10"}.'
    else:
        unknown = sorted(k for k in (price.unit_prices or {}) if price_key_canonical(k) is None)
        if unknown:
            errors["unit_prices"] = f"Unknown price keys: {', '.join(unknown)} (docs/pricing.md lists them)."
    for name in ("time_windows", "variants"):
        value = getattr(price, name) or []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            errors[name] = f"{name.replace('_', ' ').capitalize()} must be a JSON list of objects."
    if price.match_kind == ModelPrice.MatchKind.REGEX and price.model_match:
        try:
            re.compile(price.model_match)
        except re.error as exc:
            errors["model_match"] = f"Not a valid regular expression: {exc}."
    if errors:
        raise ValidationError(errors)
    try:
        entry_build(price)
    except (ValueError, ArithmeticError, TypeError, KeyError, AttributeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ValidationError(f"Cannot price exactly with these values: {message}.") from exc


def price_normalize(price: ModelPrice) -> None:
    price.provider = (price.provider or "").strip().lower()
    price.model_match = (price.model_match or "").strip()
    price.unit_field = (price.unit_field or "").strip()
    price.tiers = price.tiers or []
    price.unit_prices = price.unit_prices or {}
    price.time_windows = price.time_windows or []
    price.variants = price.variants or []
    price.effective_from = price.effective_from or EPOCH


def price_validate(price: ModelPrice) -> None:
    """Normalise and validate a row before it is written (ValidationError on any problem)."""
    price_normalize(price)
    price_check(price)
    price.full_clean()


# --- Single rows ----------------------------------------------------------------------------------

def price_save(*, price: ModelPrice | None = None, **fields) -> ModelPrice:
    """Create (no `price`) or update a price row from `fields`; validated, then the price books reload."""
    price = price if price is not None else ModelPrice()
    for name, value in fields.items():
        setattr(price, name, value)
    price_validate(price)
    with transaction.atomic():
        price.save()
        prices_changed()
    return price


def price_delete(*, prices: Iterable[ModelPrice]) -> int:
    """Delete price rows (a queryset or model instances); the price books reload."""
    ids = [p.pk for p in prices if p.pk is not None]
    if not ids:
        return 0
    with transaction.atomic():
        deleted, _ = ModelPrice.objects.unscoped().filter(pk__in=ids).delete()
        prices_changed()
    return deleted


# --- The form the admin and the CSV importer parse with ----------------------------------------------

class _PriceTextField(forms.CharField):
    """A JSON column edited as readable lines (`ingestion.price_text`); JSON is accepted too."""

    def __init__(self, *, parse, render, empty, **kwargs):
        self.parse, self.render, self.empty = parse, render, empty
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "cols": 90, "class": "vLargeTextField mono"}))
        super().__init__(required=False, strip=True, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, (dict, list)):
            return self.render(value)
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                return self.render(self.parse(value))
            except PriceTextError:
                return value
        return value

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return self.empty()
        try:
            return self.parse(text)
        except PriceTextError as exc:
            raise ValidationError(str(exc)) from None


class ModelPriceForm(forms.ModelForm):
    """Parses a row; the rules are `price_check`'s (and the model's)."""

    unit_prices = _PriceTextField(
        parse=unit_prices_parse, render=unit_prices_render, empty=dict, label="Other units",
        help_text="One per line: <code>web_searches_kcount = 10</code> (USD per 1,000 searches), "
                  "<code>input_audio_mtok = 40</code> (USD per 1M audio input tokens). docs/pricing.md § Units.")
    time_windows = _PriceTextField(
        parse=time_windows_parse, render=time_windows_render, empty=list, label="Time windows (UTC)",
        help_text="One per line, first match wins, replaces every price: "
                  "<code>00:30-16:30 | input_mtok=0.27 output_mtok=1.1</code>.")
    variants = _PriceTextField(
        parse=variants_parse, render=variants_render, empty=list, label="Variants",
        help_text="One per line, first match per price wins: <code>processing=batch from 2026-10-14 | "
                  "input_mtok=1.25 output_mtok=5</code>; a tier: <code>| @200000 input_mtok=2.5</code>.")

    class Meta:
        model = ModelPrice
        fields = list(CSV_COLUMNS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["effective_from"].required = False  # empty: since forever (EPOCH)

    def clean_provider(self):
        return self.cleaned_data["provider"].strip().lower()

    def clean_model_match(self):
        return self.cleaned_data["model_match"].strip()

    def clean_effective_from(self):
        return self.cleaned_data.get("effective_from") or EPOCH

    def clean(self):
        data = super().clean()
        if not self.errors:
            names = {f.name for f in ModelPrice._meta.fields}
            probe = ModelPrice(**{k: v for k, v in data.items() if k in names})
            try:
                price_check(probe)
            except ValidationError as exc:
                self.add_error(None, exc)
        return data


class _CsvRowForm(ModelPriceForm):
    org = forms.CharField(required=False, help_text="Organisation slug; empty for a global price.")
    source = forms.CharField(required=False)

    def clean_org(self):
        slug = (self.cleaned_data.get("org") or "").strip()
        if not slug:
            return None
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            raise ValidationError(f"No organisation with slug {slug!r}.")
        return org

    def clean_source(self):
        return (self.cleaned_data.get("source") or "").strip() or "manual"


# --- CSV import / export ------------------------------------------------------------------------------

@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (CSV line number, message)

    @property
    def saved(self) -> int:
        return self.created + self.updated


def _form_errors(form) -> str:
    parts = []
    for name, errors in form.errors.items():
        label = "row" if name == "__all__" else name
        parts.append(f"{label}: {' '.join(errors)}")
    return "; ".join(parts)


def _validation_errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{'row' if k == '__all__' else k}: {' '.join(m for e in v for m in e.messages)}"
                         for k, v in exc.error_dict.items())
    return "row: " + " ".join(exc.messages)


def prices_import(*, upload) -> ImportResult:
    """Create or update prices from a CSV (keyed by org, provider, match kind, match, effective_from).

    Valid rows are saved; each invalid row is reported with its line number and left out.
    """
    result = ImportResult()
    raw = upload.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        result.errors.append((0, "The file is larger than 5 MB."))
        return result
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append((0, "The file is not UTF-8 text."))
        return result
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = {"provider", "model_match", "input_mtok", "output_mtok"} - set(header)
    if missing:
        result.errors.append((1, f"Missing columns: {', '.join(sorted(missing))}. Expected: {', '.join(CSV_COLUMNS)}."))
        return result
    unknown = set(header) - set(CSV_COLUMNS)
    if unknown:
        result.errors.append((1, f"Unknown columns ignored: {', '.join(sorted(unknown))}."))
    with transaction.atomic():
        for row in reader:
            line = reader.line_num
            data = {k.strip(): (v or "").strip() for k, v in row.items() if k and k.strip() in CSV_COLUMNS}
            data["match_kind"] = data.get("match_kind") or ModelPrice.MatchKind.EXACT
            data["tiers"] = data.get("tiers") or "[]"
            data["unit_prices"] = data.get("unit_prices") or "{}"
            data["time_windows"] = data.get("time_windows") or "[]"
            data["variants"] = data.get("variants") or "[]"
            form = _CsvRowForm(data=data)
            form.is_valid()
            cd = form.cleaned_data
            if all(k in cd for k in ("org", "provider", "match_kind", "model_match", "effective_from")):
                existing = ModelPrice.objects.unscoped().filter(
                    org=cd["org"], provider=cd["provider"], match_kind=cd["match_kind"],
                    model_match=cd["model_match"], effective_from=cd["effective_from"]).first()
                if existing is not None:  # the same rule and date: update it in place
                    form = _CsvRowForm(data=data, instance=existing)
            if not form.is_valid():
                result.errors.append((line, _form_errors(form)))
                continue
            price = form.save(commit=False)
            created = price.pk is None
            try:
                price_validate(price)
                with transaction.atomic():  # a row that fails at the database does not spoil the others
                    price.save()
            except ValidationError as exc:
                result.errors.append((line, _validation_errors(exc)))
                continue
            except IntegrityError as exc:
                result.errors.append((line, f"row: could not be saved ({exc})."))
                continue
            if created:
                result.created += 1
            else:
                result.updated += 1
        if result.saved:
            prices_changed()
    return result


# --- The genai-prices registry ------------------------------------------------------------------------

@dataclass
class SyncResult:
    version: str
    total: int
    created: int
    updated: int
    removed: int
    providers: int
    kept_manual: int
    rounded: int
    skipped: list[tuple[str, str, str]]
    seconds: float
    dry_run: bool
    unit_prices: int = 0  # prices of units beyond the token columns, over the synced rows
    variants: int = 0  # context variants (batch, service tiers, speed, …), over the synced rows
    time_windows: int = 0  # time-of-day prices, over the synced rows
    tiered: int = 0  # rows with long-context tiers


def prices_sync(*, dry_run: bool = False, now: datetime | None = None) -> SyncResult:
    """The genai-prices registry (shipped in the package, offline) → the global prices of source
    'genai-prices'. Idempotent; manual rows and org overrides are never touched."""
    from .price_registry import SOURCE, registry_load

    started = time.monotonic()
    now = now or timezone.now()
    registry = registry_load()
    wanted = {row.key: row for row in registry.rows}

    globals_ = ModelPrice.objects.unscoped().filter(org__isnull=True)
    synced = {(p.provider, p.match_kind, p.model_match, p.effective_from): p
              for p in globals_.filter(source=SOURCE)}
    manual_keys = set(globals_.exclude(source=SOURCE)
                      .values_list("provider", "match_kind", "model_match", "effective_from"))

    to_create, to_update, kept_manual = [], [], 0
    for key, row in wanted.items():
        if key in manual_keys:
            kept_manual += 1  # an analyst's own global row for this rule wins
            continue
        values = row.values()
        existing = synced.get(key)
        if existing is None:
            price = ModelPrice(provider=row.provider, match_kind=row.match_kind, model_match=row.model_match,
                               effective_from=row.effective_from, source=SOURCE, **values)
            price_check(price)  # the registry's rows obey the same rules as everyone's
            to_create.append(price)
        elif any(getattr(existing, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(existing, name, value)
            price_check(existing)
            existing.updated_at = now  # bulk_update does not apply auto_now
            to_update.append(existing)
    stale_ids = [p.pk for key, p in synced.items() if key not in wanted or key in manual_keys]
    synced_rows = [row for key, row in wanted.items() if key not in manual_keys]

    if not dry_run:
        with transaction.atomic():
            ModelPrice.objects.unscoped().filter(pk__in=stale_ids).delete()
            ModelPrice.objects.unscoped().bulk_create(to_create, batch_size=500)
            ModelPrice.objects.unscoped().bulk_update(to_update, SYNC_FIELDS + ["updated_at"], batch_size=500)
            prices_changed()

    return SyncResult(
        version=registry.version, total=len(wanted) - kept_manual, created=len(to_create),
        updated=len(to_update), removed=len(stale_ids), providers=len(registry.providers),
        kept_manual=kept_manual, rounded=sum(1 for r in registry.rows if r.rounded),
        unit_prices=sum(len(r.unit_prices) for r in synced_rows), variants=sum(len(r.variants) for r in synced_rows),
        time_windows=sum(len(r.time_windows) for r in synced_rows), tiered=sum(1 for r in synced_rows if r.tiers),
        skipped=list(registry.skipped), seconds=time.monotonic() - started, dry_run=dry_run,
    )


# --- An org's own overrides (Settings → Prices) -------------------------------------------------------

OVERRIDE_FIELDS = ("provider", "match_kind", "model_match", "display_name", "input_mtok", "output_mtok",
                   "cached_input_mtok", "cache_write_mtok", "effective_from")


def price_override_save(*, org: Organization, price_id: int | None = None, **fields) -> ModelPrice:
    """Create (no `price_id`) or update one of `org`'s price overrides; validated like every price write, the
    price version bumped. Another org's row or a global row raises ModelPrice.DoesNotExist (a 404 for a page)."""
    unknown = set(fields) - set(OVERRIDE_FIELDS)
    if unknown:
        raise TypeError(f"not an override field: {', '.join(sorted(unknown))}")
    price = None
    if price_id is not None:
        price = ModelPrice.objects.for_org(org).get(pk=price_id)
    else:
        fields = {"source": "override", **fields}
    return price_save(price=price, org=org, **fields)


def price_override_delete(*, org: Organization, price_id: int) -> int:
    """Delete one of `org`'s overrides (another org's or a global id deletes nothing)."""
    return price_delete(prices=ModelPrice.objects.for_org(org).filter(pk=price_id))


# --- Negotiated discounts (docs/pricing.md § Discounts) ------------------------------------------------

def discount_save(*, org: Organization, discount: PriceDiscount | None = None, **fields) -> PriceDiscount:
    """Create (no `discount`) or update one of `org`'s discounts; validated; the price books reload.

    Future calls are priced net of it; stored calls keep their cost until re-priced (`events_reprice_range`)."""
    discount = discount if discount is not None else PriceDiscount(org=org)
    if discount.org_id != org.pk:
        raise PriceDiscount.DoesNotExist  # someone else's row: the same answer as a missing one
    fields.pop("org", None)
    for name, value in fields.items():
        setattr(discount, name, value)
    discount.provider = (discount.provider or "").strip().lower()
    discount.model_match = (discount.model_match or "").strip()
    discount.effective_from = discount.effective_from or EPOCH
    if discount.match_kind == ModelPrice.MatchKind.REGEX and discount.model_match:
        try:
            re.compile(discount.model_match)
        except re.error as exc:
            raise ValidationError({"model_match": f"Not a valid regular expression: {exc}."}) from None
    discount.full_clean()
    with transaction.atomic():
        discount.save()
        prices_changed()
    return discount


def discount_delete(*, org: Organization, discount_id: int) -> int:
    """Delete one of `org`'s discounts (another org's id deletes nothing); the price books reload."""
    with transaction.atomic():
        deleted, _ = PriceDiscount.objects.for_org(org).filter(pk=discount_id).delete()
        if deleted:
            prices_changed()
    return deleted
