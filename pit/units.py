"""Exact units: decimal text outside, integers inside, never floats.

A pit counts prices in *ticks*, quantities in *lots* and cash in the
currency's *minor units*.  This module is the one place where decimal
text ("12.50", "0.25") meets those integers.  Text that does not land
exactly on a step is refused, never rounded.

>>> usd = Currency("USD", "0.01")
>>> acme = Instrument("ACME", usd, tick="0.01", lot="1")
>>> acme.price("12.5"), acme.qty("100")
(1250, 100)
>>> acme.price_text(1250), acme.qty_text(100)
('12.50', '100')
>>> acme.notional(1250, 100)      # minor units (cents)
125000
>>> acme.price("12.505")
Traceback (most recent call last):
...
pit.units.UnitError: price 12.505 is not a multiple of the tick 0.01
"""

from __future__ import annotations

import re

# fractions (with decimal) is imported where a Fraction is made: `pit
# replay` imports this module for UnitError, and makes none before it
# writes its first byte (docs/pit-book.md, "Start-up").  (Annotations name
# Fraction as text.)

__all__ = [
    "UnitError", "Currency", "Instrument", "parse_decimal", "format_steps",
    "parse_rate", "format_rate", "fee", "PPM",
]

PPM = 1_000_000          # fee rates are integers in parts per million

_DECIMAL = re.compile(r"^[+]?(\d+)(?:\.(\d*))?$|^[+]?\.(\d+)$")


class UnitError(ValueError):
    """Text that is not an exact multiple of its step, or not a number."""


def _fraction(text: str, what: str) -> Fraction:
    from fractions import Fraction
    t = text.strip().replace("_", "").replace(",", "")
    m = _DECIMAL.match(t)
    if not m:
        raise UnitError(f"{what} {text!r} is not a decimal number")
    whole, frac, only = m.group(1) or "0", m.group(2) or "", m.group(3)
    if only is not None:
        frac = only
    return Fraction(int(whole + frac), 10 ** len(frac))


def _decimals(step: Fraction) -> int:
    """Digits after the point needed to print multiples of *step* exactly."""
    for d in range(19):
        if (step * 10 ** d).denominator == 1:
            return d
    raise UnitError(f"step {step} has no short decimal form")


def parse_decimal(text: str, step: Fraction, what: str = "value") -> int:
    """Return *text* as a whole number of *step*s; refuse anything else.  O(len(text))."""
    value = _fraction(text, what)
    n = value / step
    if n.denominator != 1:
        raise UnitError(f"{what} {text.strip()} is not a multiple of the "
                        f"{'tick' if what == 'price' else 'lot' if what == 'quantity' else 'step'} "
                        f"{format_steps(1, step)}")
    return n.numerator


class _Steps:
    """Integer-only conversions for one step (a tick, a lot, a minor unit):
    the hot path of every filter.  ``units`` is the step in units of
    10**-decimals (tick 0.05 with 2 decimals: 5).  Unusual text falls back
    to the exact Fraction path, so results are the same either way."""

    __slots__ = ("step", "decimals", "units", "what")

    def __init__(self, step: Fraction, what: str):
        self.step, self.what = step, what
        self.decimals = _decimals(step)
        self.units = (step * 10 ** self.decimals).numerator

    def parse(self, text: str) -> int:
        """Decimal text to whole steps; off-step is an error.  O(len(text))."""
        w, dot, f = text.partition(".")
        d = self.decimals
        if w.isdigit() and w.isascii() and len(f) <= d and (f.isdigit() or not f) and (dot or not f):
            q, r = divmod(int(w + f + "0" * (d - len(f))), self.units)
            if not r:
                return q
        return parse_decimal(text, self.step, self.what)

    def text(self, n: int) -> str:
        """Whole steps to canonical decimal text.  O(digits)."""
        d = self.decimals
        v = n * self.units
        if d == 0:
            return str(v)
        if v < 0:
            return "-" + self.text(-n)
        s = str(v).rjust(d + 1, "0")
        return f"{s[:-d]}.{s[-d:]}"


def format_steps(n: int, step: Fraction, decimals: int | None = None) -> str:
    """Canonical decimal text of *n* steps: fixed number of decimals, no sign for >= 0."""
    if decimals is None:
        decimals = _decimals(step)
    v = n * step * 10 ** decimals
    assert v.denominator == 1
    i = v.numerator
    sign = "-" if i < 0 else ""
    i = abs(i)
    if decimals == 0:
        return f"{sign}{i}"
    s = str(i).rjust(decimals + 1, "0")
    return f"{sign}{s[:-decimals]}.{s[-decimals:]}"


def parse_rate(text: str) -> int:
    """A fee rate such as ``0.1%`` or ``10bp`` as parts per million."""
    t = text.strip().lower()
    if t.endswith("%"):
        f = _fraction(t[:-1], "fee rate") * 10_000
    elif t.endswith("bp"):
        f = _fraction(t[:-2], "fee rate") * 100
    else:
        raise UnitError(f"fee rate {text!r} needs a unit: '0.1%' or '10bp'")
    if f.denominator != 1:
        raise UnitError(f"fee rate {text!r} is finer than one part per million")
    return f.numerator


def format_rate(ppm: int) -> str:
    """Canonical text of a rate in parts per million, as a percentage: ``0.1%``."""
    from fractions import Fraction
    s = format_steps(ppm, Fraction(1, 10_000), 4).rstrip("0").rstrip(".")
    return s + "%"


def fee(notional: int, ppm: int) -> int:
    """Fee in minor units on *notional* minor units at *ppm*.

    Rounding rule: rounded **up** to the next whole minor unit, so the pit
    never under-collects and the result is exact in integers.  O(1).

    >>> fee(125000, 1000), fee(1, 1000), fee(0, 2000)
    (125, 1, 0)
    """
    return -(-notional * ppm // PPM)


class Currency:
    """A quote currency: a code and its minor unit (``USD`` at ``0.01``)."""

    __slots__ = ("code", "minor", "decimals", "_steps")

    def __init__(self, code: str, minor: str | Fraction = "0.01"):
        if not re.fullmatch(r"[A-Z][A-Z0-9]{1,9}", code):
            raise UnitError(f"currency code {code!r} must be 2-10 capitals or digits")
        from fractions import Fraction
        self.code = code
        self.minor = _fraction(minor, "minor unit") if isinstance(minor, str) else Fraction(minor)
        if self.minor <= 0:
            raise UnitError(f"minor unit of {code} must be positive")
        self.decimals = _decimals(self.minor)
        self._steps = _Steps(self.minor, "amount")

    def amount(self, text: str) -> int:
        """Decimal text to minor units, exactly.  O(len(text))."""
        return self._steps.parse(text)

    def amount_text(self, n: int) -> str:
        return self._steps.text(n)

    def __repr__(self) -> str:
        return f"Currency({self.code!r}, {format_steps(1, self.minor)!r})"

    def __eq__(self, other):
        return isinstance(other, Currency) and (self.code, self.minor) == (other.code, other.minor)

    def __hash__(self):
        return hash((self.code, self.minor))


class Instrument:
    """A ticker with its quote currency, tick size, lot size and fee rates.

    ``multiplier`` is the value of one tick times one lot in the currency's
    minor units; it must be a whole number so that every notional is exact.
    """

    __slots__ = ("ticker", "currency", "tick", "lot", "maker_ppm", "taker_ppm",
                 "multiplier", "price_decimals", "qty_decimals", "_ticks", "_lots")

    def __init__(self, ticker: str, currency: Currency, tick: str = "0.01", lot: str = "1",
                 maker_ppm: int = 1000, taker_ppm: int = 2000):
        if not re.fullmatch(r"[A-Z][A-Z0-9.]{0,11}", ticker):
            raise UnitError(f"ticker {ticker!r} must be 1-12 capitals, digits or dots")
        from fractions import Fraction
        self.ticker = ticker
        self.currency = currency
        self.tick = _fraction(tick, "tick") if isinstance(tick, str) else Fraction(tick)
        self.lot = _fraction(lot, "lot") if isinstance(lot, str) else Fraction(lot)
        if self.tick <= 0 or self.lot <= 0:
            raise UnitError(f"{ticker}: tick and lot must be positive")
        m = self.tick * self.lot / currency.minor
        if m.denominator != 1:
            raise UnitError(
                f"{ticker}: tick {format_steps(1, self.tick)} x lot {format_steps(1, self.lot)} "
                f"is not a whole number of {currency.code} minor units "
                f"({format_steps(1, currency.minor)}); choose a coarser tick or lot")
        self.multiplier = m.numerator
        self.maker_ppm = maker_ppm
        self.taker_ppm = taker_ppm
        self.price_decimals = _decimals(self.tick)
        self.qty_decimals = _decimals(self.lot)
        self._ticks = _Steps(self.tick, "price")
        self._lots = _Steps(self.lot, "quantity")

    def price(self, text: str) -> int:
        """Decimal price text to ticks; off-tick is an error.  O(len(text))."""
        n = self._ticks.parse(text)
        if n <= 0:
            raise UnitError(f"price {text.strip()} must be positive")
        return n

    def qty(self, text: str) -> int:
        """Decimal quantity text to lots; off-lot is an error.  O(len(text))."""
        n = self._lots.parse(text)
        if n <= 0:
            raise UnitError(f"quantity {text.strip()} must be positive")
        return n

    def price_text(self, ticks: int) -> str:
        return self._ticks.text(ticks)

    def qty_text(self, lots: int) -> str:
        return self._lots.text(lots)

    def notional(self, ticks: int, lots: int) -> int:
        """Value of *lots* at *ticks* in minor units of the quote currency.  O(1)."""
        return ticks * lots * self.multiplier

    def describe(self) -> str:
        """Canonical one-line definition, as written in the archive."""
        return (f"{self.ticker} {self.currency.code} tick {format_steps(1, self.tick)} "
                f"lot {format_steps(1, self.lot)} maker {format_rate(self.maker_ppm)} "
                f"taker {format_rate(self.taker_ppm)}")

    def __repr__(self) -> str:
        return f"Instrument({self.describe()!r})"
