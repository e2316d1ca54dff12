"""Settings → Prices forms: they parse; the rules are the price services' (`ingestion.price_services`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

from django import forms

from .models import EPOCH, ModelPrice, PRICE_DIGITS

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


class _UtcDateTimeField(forms.DateTimeField):
    """A date (midnight UTC) or a date and time, read as UTC whatever the browser's zone."""

    def __init__(self, **kwargs):
        kwargs.setdefault("input_formats", DATE_FORMATS)
        kwargs.setdefault("widget", forms.TextInput(attrs={"placeholder": "YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)"}))
        super().__init__(**kwargs)

    def to_python(self, value):
        value = (value or "").strip() if isinstance(value, str) else value
        if not value:
            return None
        if isinstance(value, str):
            for fmt in DATE_FORMATS:
                try:
                    return datetime.strptime(value, fmt).replace(tzinfo=dt_timezone.utc)
                except ValueError:
                    continue
            raise forms.ValidationError("Enter a date (YYYY-MM-DD) or a date and time (YYYY-MM-DD HH:MM), UTC.")
        return super().to_python(value)


def _price(label: str, required: bool) -> forms.DecimalField:
    return forms.DecimalField(label=label, required=required, min_value=0, max_digits=PRICE_DIGITS["max_digits"],
                              decimal_places=PRICE_DIGITS["decimal_places"],
                              widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 8}))


class PriceOverrideForm(forms.Form):
    provider = forms.CharField(max_length=64, widget=forms.TextInput(attrs={"placeholder": "openai", "size": 10}))
    match_kind = forms.ChoiceField(choices=ModelPrice.MatchKind.choices, initial=ModelPrice.MatchKind.EXACT)
    model_match = forms.CharField(label="Model", max_length=256,
                                  widget=forms.TextInput(attrs={"placeholder": "gpt-4o", "size": 16}))
    input_mtok = _price("Input $/1M", True)
    output_mtok = _price("Output $/1M", True)
    cached_input_mtok = _price("Cache read $/1M", False)
    cache_write_mtok = _price("Cache write $/1M", False)
    effective_from = _UtcDateTimeField(required=False, label="Effective from (UTC)",
                                       help_text="Empty: for every call, past and future.")

    @classmethod
    def initial_for(cls, price: ModelPrice) -> dict:
        data = {name: getattr(price, name) for name in cls.base_fields}
        data["effective_from"] = ("" if price.effective_from == EPOCH
                                  else price.effective_from.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M"))
        return data

    def values(self) -> dict:
        data = dict(self.cleaned_data)
        data["effective_from"] = data.get("effective_from") or EPOCH
        return data


class PriceDiscountForm(forms.Form):
    provider = forms.CharField(max_length=64, widget=forms.TextInput(attrs={"placeholder": "openai", "size": 10}))
    match_kind = forms.ChoiceField(choices=ModelPrice.MatchKind.choices, initial=ModelPrice.MatchKind.PREFIX)
    model_match = forms.CharField(label="Models", max_length=256, required=False,
                                  widget=forms.TextInput(attrs={"placeholder": "every model", "size": 14}))
    percent = forms.DecimalField(label="Discount %", min_value=0, max_value=100, max_digits=7, decimal_places=4,
                                 widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 6}))
    effective_from = _UtcDateTimeField(required=False, label="Effective from (UTC)")
    note = forms.CharField(max_length=256, required=False, widget=forms.TextInput(attrs={"size": 16}))

    @classmethod
    def initial_for(cls, discount) -> dict:
        data = {name: getattr(discount, name) for name in cls.base_fields}
        text = format(discount.percent, "f")
        data["percent"] = text.rstrip("0").rstrip(".") if "." in text else text  # 20.0000 → 20
        data["effective_from"] = ("" if discount.effective_from == EPOCH
                                  else discount.effective_from.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M"))
        return data

    def values(self) -> dict:
        data = dict(self.cleaned_data)
        data["effective_from"] = data.get("effective_from") or EPOCH
        return data


class RepriceForm(forms.Form):
    since = _UtcDateTimeField(label="From (UTC)")
    until = _UtcDateTimeField(label="Until (UTC, excluded)")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            raise forms.ValidationError("“Until” must be after “from”.")
        return data

    @staticmethod
    def initial_for(now: datetime) -> dict:
        """This UTC month so far: from the 1st to tomorrow (00:00 UTC)."""
        today = now.astimezone(dt_timezone.utc).date()
        return {"since": today.replace(day=1).isoformat(), "until": (today + timedelta(days=1)).isoformat()}
