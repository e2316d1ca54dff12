"""Display filters for money (integer pico-USD), shares, changes and durations. Never float maths on money."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ingestion.money import pico_display, pico_to_usd

register = template.Library()


@register.filter
def money(pico) -> str:
    """The one display rule (ingestion.money.pico_display): $1,234.56; four significant digits below $1."""
    return pico_display(pico)


@register.filter
def exact_usd(pico) -> str:
    return pico_to_usd(pico) or "unpriced"


@register.simple_tag
def cost(pico, calls=None, unpriced=0):
    """A cost cell: "unpriced" when every call is unpriced (never $0), else the amount plus an unpriced note."""
    calls = calls or 0
    unpriced = unpriced or 0
    if pico is None or (calls and unpriced >= calls and not pico):
        return mark_safe('<span class="badge warn" title="No price for this model yet">unpriced</span>')
    amount = format_html('<span title="${} exactly">{}</span>', pico_to_usd(pico), pico_display(pico))
    if unpriced:
        return format_html('{} <span class="badge warn" title="{} calls have no price">+{} unpriced</span>',
                           amount, unpriced, unpriced)
    return amount


@register.filter
def pct(share) -> str:
    """A 0–1 share as a percentage."""
    if share is None:
        return ""
    value = float(share) * 100
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else "<0.1%"


@register.filter
def pct100(share) -> float:
    """A 0–1 share as a 0–100 number for CSS widths."""
    return round(float(share or 0) * 100, 2)


@register.filter
def ratio(part, whole) -> float:
    """part / whole as 0–1 (0 when whole is 0)."""
    return (part or 0) / whole if whole else 0.0


@register.simple_tag
def change(value):
    """A change in percent as an arrow badge; red when spend went up."""
    if value is None:
        return mark_safe('<span class="muted">no previous data</span>')
    cls = "up" if value > 0 else "down" if value < 0 else "flat"
    arrow = "▲" if value > 0 else "▼" if value < 0 else "■"
    return format_html('<span class="change {}">{} {}%</span>', cls, arrow, f"{abs(value):.1f}")


@register.filter
def ms(value) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


@register.filter
def tokens(value) -> str:
    value = int(value or 0)
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,}"


@register.filter
def run_ms(run) -> float:
    """A run's wall time in ms (first call's start to the last byte)."""
    return (run.ended_at - run.started_at).total_seconds() * 1000


@register.filter
def agent_label(key) -> str:
    """"agent:researcher" → "researcher"; empty → "Untracked"."""
    from analytics.selectors import label_of

    return label_of("agent", key or None)


@register.filter
def percent_text(value) -> str:
    """A stored percent (Decimal("20.0000")) as people write it: "20", "12.5"."""
    if value is None:
        return ""
    text = format(Decimal(str(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
