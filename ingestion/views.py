"""Settings → Prices (docs/pricing.md § Settings → Prices): an org's price overrides, negotiated discounts and
re-pricing. Every member reads it; owners and admins change it. Writes go through `ingestion.price_services`."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import org_member_required
from accounts.models import Membership
from accounts.tasking import enqueue
from ingestion.money import pico_to_usd

from . import price_services, selectors
from .forms import PriceDiscountForm, PriceOverrideForm, RepriceForm
from .models import ModelPrice, PriceDiscount
from .services import events_reprice_preview


def _errors_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{'' if k == '__all__' else k.replace('_', ' ') + ': '}{m}"
                        for k, v in exc.message_dict.items() for m in v)
    return " ".join(exc.messages)


def _page(request, *, override_form=None, discount_form=None, reprice_form=None, editing=None, preview=None,
          editing_discount=None, status=200):
    org = request.org
    now = timezone.now()
    if reprice_form is None:
        reprice_form = RepriceForm(initial=RepriceForm.initial_for(now))
    return render(request, "ingestion/settings_prices.html", {
        "org": org, "nav": "settings", "tab": "prices",
        "overrides": selectors.org_price_overrides(org=org), "discounts": selectors.org_price_discounts(org=org),
        "override_form": override_form or PriceOverrideForm(), "discount_form": discount_form or PriceDiscountForm(),
        "reprice_form": reprice_form, "editing": editing, "preview": preview, "editing_discount": editing_discount,
    }, status=status)


@org_member_required(write_roles=Membership.MANAGER_ROLES)
def settings_prices(request):
    """The page; `?edit=<id>` / `?edit_discount=<id>` fill the override / discount form with one of the org's
    rows; `?since=&until=` (managers) shows the re-price dry run of that range for the org."""
    editing = editing_discount = None
    override_form = discount_form = None
    if request.GET.get("edit_discount") and request.membership.can_manage:
        try:
            editing_discount = PriceDiscount.objects.for_org(request.org).get(pk=int(request.GET["edit_discount"]))
        except (ValueError, PriceDiscount.DoesNotExist):
            raise Http404("No such discount") from None
        discount_form = PriceDiscountForm(initial=PriceDiscountForm.initial_for(editing_discount))
    if request.GET.get("edit") and request.membership.can_manage:
        try:
            editing = ModelPrice.objects.for_org(request.org).get(pk=int(request.GET["edit"]))
        except (ValueError, ModelPrice.DoesNotExist):
            raise Http404("No such price override") from None
        override_form = PriceOverrideForm(initial=PriceOverrideForm.initial_for(editing))
    reprice_form = preview = None
    if "since" in request.GET and request.membership.can_manage:
        reprice_form = RepriceForm(request.GET)
        if reprice_form.is_valid():
            preview = _preview(org=request.org, **reprice_form.cleaned_data)
    return _page(request, override_form=override_form, editing=editing, reprice_form=reprice_form, preview=preview,
                 discount_form=discount_form, editing_discount=editing_discount)


def _preview(*, org, since, until) -> dict:
    rows, read, truncated = events_reprice_preview(since=since, until=until, org_id=org.pk)
    return {"rows": [{"row": r, "old": pico_to_usd(r.old_pico), "new": pico_to_usd(r.new_pico),
                      "delta": pico_to_usd(r.delta_pico)} for r in rows],
            "read": read, "truncated": truncated, "changed": sum(r.changed for r in rows),
            "old": pico_to_usd(sum(r.old_pico for r in rows)), "new": pico_to_usd(sum(r.new_pico for r in rows)),
            "since": since, "until": until}


@org_member_required(manage=True)
@require_POST
def price_override_save(request, price_id: int | None = None):
    form = PriceOverrideForm(request.POST)
    editing = None
    if price_id is not None:
        editing = ModelPrice.objects.for_org(request.org).filter(pk=price_id).first()
        if editing is None:
            raise Http404("No such price override")
    if form.is_valid():
        try:
            price = price_services.price_override_save(org=request.org, price_id=price_id, **form.values())
        except ValidationError as exc:
            form.add_error(None, _errors_text(exc))
        else:
            messages.success(request, f"Price override {price.provider}/{price.model_match} saved. New calls are "
                                      f"priced with it; preview and apply a re-price for calls already stored.")
            return redirect("settings_prices", slug=request.org.slug)
    return _page(request, override_form=form, editing=editing, status=400)


@org_member_required(manage=True)
@require_POST
def price_override_delete(request, price_id: int):
    if not price_services.price_override_delete(org=request.org, price_id=price_id):
        raise Http404("No such price override")
    messages.success(request, "Price override deleted.")
    return redirect("settings_prices", slug=request.org.slug)


@org_member_required(manage=True)
@require_POST
def price_discount_save(request, discount_id: int | None = None):
    form = PriceDiscountForm(request.POST)
    editing = None
    if discount_id is not None:
        editing = PriceDiscount.objects.for_org(request.org).filter(pk=discount_id).first()
        if editing is None:
            raise Http404("No such discount")
    if form.is_valid():
        try:
            discount = price_services.discount_save(org=request.org, discount=editing, **form.values())
        except ValidationError as exc:
            form.add_error(None, _errors_text(exc))
        else:
            messages.success(request, f"Discount of {discount} saved. New calls are priced net of it; preview and "
                                      f"apply a re-price for calls already stored.")
            return redirect("settings_prices", slug=request.org.slug)
    return _page(request, discount_form=form, editing_discount=editing, status=400)


@org_member_required(manage=True)
@require_POST
def price_discount_delete(request, discount_id: int):
    if not price_services.discount_delete(org=request.org, discount_id=discount_id):
        raise Http404("No such discount")
    messages.success(request, "Discount deleted.")
    return redirect("settings_prices", slug=request.org.slug)


@org_member_required(manage=True)
@require_POST
def prices_reprice(request):
    """Apply: queue the re-pricing of the org's calls in the range (what the preview showed)."""
    form = RepriceForm(request.POST)
    if not form.is_valid():
        return _page(request, reprice_form=form, status=400)
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    if enqueue("ingestion.tasks.events_reprice_range", since.isoformat(), until.isoformat(), request.org.pk):
        messages.success(request, f"Re-pricing your calls from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC "
                                  f"with the current prices and discounts.")
    else:
        messages.error(request, "The re-pricing could not be queued (the task broker is unavailable). Nothing was "
                                "changed; try again in a minute.")
    return redirect("settings_prices", slug=request.org.slug)
