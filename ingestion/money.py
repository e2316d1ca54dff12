"""Money: integer pico-USD (1e-12 USD) everywhere; this module is the only place that converts.

- `usd_to_pico`: a USD amount (string, Decimal, int) → integer pico-USD; exact by default.
- `pico_to_usd`: pico-USD → the API's plain decimal string, exact to 1e-12, never an exponent ("0.00472").
- `pico_display`: pico-USD → the one rounded display used on pages, e-mails, Slack text and insight titles.

The display rule (`pico_display`), rounding half up:
  * $1 or more: cents with thousands separators ("$1,234.57", "$12,000,000.00");
  * below $1: four significant digits, at least two decimals ("$0.675", "$0.50", "$0.004512");
  * below $0.000001 (but not zero): "<$0.000001"; zero: "$0.00"; None (no price): "unpriced".
Pages put the exact `pico_to_usd` value on hover.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

PICO_PER_USD = 10**12
_EXPONENT = -12  # pico = USD × 10**12
_ONE = Decimal(1)
_CENT = Decimal("0.01")
_DISPLAY_FLOOR = Decimal("0.000001")
_SIGNIFICANT = 4


def usd_to_pico(value: str | Decimal | int, *, exact: bool = True) -> int:
    """A USD amount → integer pico-USD.

    exact=True refuses anything finer than 1e-12 USD (ValueError); exact=False rounds to the nearest
    pico-USD (half-even). Not-a-number, infinities, floats and unparseable text raise ValueError.
    """
    if isinstance(value, float) or isinstance(value, bool):
        raise ValueError(f"amount {value!r} must be a decimal string, not a float")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    pico = amount.scaleb(-_EXPONENT)
    whole = pico.to_integral_value(rounding=ROUND_HALF_EVEN)
    if exact and whole != pico:
        raise ValueError(f"amount {value} USD has more than twelve decimals")
    return int(whole)


def pico_to_usd(pico: int | None) -> str | None:
    """Integer pico-USD → plain decimal string, exact, never an exponent ("0.00472"); None stays None."""
    if pico is None:
        return None
    text = format(Decimal(int(pico)).scaleb(_EXPONENT), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def pico_avg_to_usd(pico: int, n: int) -> str | None:
    """The average of `pico` over `n` as `pico_to_usd` prints it, rounded half-even to the pico; None when n == 0."""
    if not n:
        return None
    return pico_to_usd(int((Decimal(int(pico)) / n).quantize(Decimal(1))))


def pico_to_decimal(pico: int | None) -> Decimal | None:
    """Integer pico-USD → the exact Decimal (for form initial values); None stays None."""
    return None if pico is None else Decimal(pico_to_usd(pico))


def pico_display(pico: int | None) -> str:
    """The display rule for people (see the module docstring): one string for one amount on every surface."""
    if pico is None or pico == "":
        return "unpriced"
    pico = int(pico)
    if pico == 0:
        return "$0.00"
    sign = "-" if pico < 0 else ""
    value = Decimal(abs(pico)).scaleb(_EXPONENT)
    if value < _DISPLAY_FLOOR:
        return f"{sign}<${_DISPLAY_FLOOR:f}"
    if value < _ONE:
        # four significant digits: quantize to 10**(adjusted - 3) decimals
        rounded = value.quantize(Decimal(1).scaleb(value.adjusted() - (_SIGNIFICANT - 1)), rounding=ROUND_HALF_UP)
        if rounded < _ONE:
            text = format(rounded, "f").rstrip("0")
            decimals = len(text.split(".")[1])
            return f"{sign}${text}{'0' * max(0, 2 - decimals)}"
        value = rounded  # $0.99996 rounds up to $1.00
    return f"{sign}${value.quantize(_CENT, rounding=ROUND_HALF_UP):,}"
