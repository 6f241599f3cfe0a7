"""The words of pit messages: names, refs, accounts, tickers, assets,
fingerprints, decimal numbers, rates and amounts, each read strictly, and
:class:`MessageError`, which names the line of the first fault.  The
request kinds (pit.kinds) and the messages (pit.message) are written in
these words.

>>> account("Alice:acme", 3)
'alice:ACME'
>>> number("1,5", 4, "quantity")
Traceback (most recent call last):
...
pit.grammar.MessageError: line 4: bad quantity '1,5': expected a decimal number like 12.50
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pit.record import replace
from pit.units import Currency, Instrument, format_rate, format_steps, parse_rate

__all__ = ["MessageError", "MAX_LINE", "show", "REF_RE", "TICKER_RE", "CURRENCY_RE",
           "ACCOUNT_RE", "FINGERPRINT_RE", "NUMBER_RE", "RATE_RE", "ref", "account",
           "ticker", "number", "is_number", "asset", "fingerprint", "step_text", "rates",
           "movement", "amount"]

MAX_LINE = 1000          # longest line accepted anywhere, in characters


class MessageError(ValueError):
    """A message that does not follow its grammar.  ``line`` is 1-based
    within the text that was parsed (the signed text for requests), or
    ``None`` when the fault is not on one line."""

    def __init__(self, line: int | None, reason: str):
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


def show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


REF_RE = re.compile(r"[A-Za-z0-9._-]{1,40}")
TICKER_RE = re.compile(r"[A-Z][A-Z0-9.]{0,11}")
CURRENCY_RE = re.compile(r"[A-Z][A-Z0-9]{1,9}")
ACCOUNT_RE = re.compile(r"[a-z][a-z0-9._-]{0,31}(?::[A-Z][A-Z0-9.]{0,11}(?:-[A-Z][A-Z0-9.]{0,11})?)?")
FINGERPRINT_RE = re.compile(r"[0-9A-F]{40}")
# Decimal text as a person writes it: 100, 12.5, .5, 1,000.00 (commas only
# as thousands separators, so "1,5" is refused rather than read as 15).
NUMBER_RE = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+")
RATE_RE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:%|bp)")


def ref(value: str, n: int) -> str:
    if not REF_RE.fullmatch(value):
        raise MessageError(n, f"bad ref {show(value)}: expected 1-40 letters, digits, '.', '_' or '-'")
    return value


def account(value: str, n: int) -> str:
    name, colon, ticker = value.partition(":")
    v = name.lower() + colon + ticker.upper()
    if not ACCOUNT_RE.fullmatch(v):
        raise MessageError(n, f"bad account {show(value)}: expected a name like 'alice' "
                              "(a letter, then up to 31 letters, digits, '.', '_', '-'), "
                              "optionally ':TICKER'")
    if "-" in ticker:
        if name.lower() != "specialist":
            raise MessageError(n, f"bad account {show(value)}: a ticker range such as A-M "
                                  "names a specialist's tickers (specialist:A-M), no other account")
        ticker_set([v.partition(":")[2]], n)
    return v


def ticker_set(words, n: int | None):
    """The pit.tickerset.TickerSet of *words*; its refusal a MessageError of line *n*."""
    from pit.tickerset import TickerSet, TickerSetError
    try:
        return TickerSet(words)
    except TickerSetError as e:
        raise MessageError(n, str(e)) from None


def ticker(value: str, n: int) -> str:
    v = value.upper()
    if not TICKER_RE.fullmatch(v):
        raise MessageError(n, f"bad ticker {show(value)}: expected 1-12 letters, digits or dots")
    return v


def number(tok: str | None, n: int, what: str) -> str:
    if tok is None:
        raise MessageError(n, f"missing {what}: expected a decimal number")
    if not NUMBER_RE.fullmatch(tok):
        raise MessageError(n, f"bad {what} {show(tok)}: expected a decimal number like 12.50")
    if not any(c in "123456789" for c in tok):
        raise MessageError(n, f"{what} {tok} must be positive")
    return tok


def is_number(tok: str) -> bool:
    return NUMBER_RE.fullmatch(tok) is not None


def asset(value: str, n: int) -> str:
    v = value.upper()
    if not TICKER_RE.fullmatch(v):
        raise MessageError(n, f"bad asset {show(value)}: expected a currency code or a ticker")
    return v


def fingerprint(text: str, n: int) -> str:
    fpr = text.replace(" ", "").upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    if not FINGERPRINT_RE.fullmatch(fpr):
        raise MessageError(n, f"bad fingerprint {show(text, 60)}: expected 40 hex digits")
    return fpr


def step_text(text: str, n: int, what: str) -> str:
    """Canonical decimal text of a positive step such as a tick or minor unit."""
    tok = number(text, n, what)
    from fractions import Fraction      # as pit.units does: where a Fraction is made
    return format_steps(1, Fraction(tok.replace(",", "")))


def rates(words: list[str], n: int) -> dict[str, str]:
    rates: dict[str, str] = {}
    if len(words) % 2:
        raise MessageError(n, "expected 'maker RATE taker RATE'")
    for name, rate in zip(words[::2], words[1::2]):
        name = name.lower()
        if name not in ("maker", "taker"):
            raise MessageError(n, f"unexpected {show(name)}: expected 'maker' or 'taker'")
        if name in rates:
            raise MessageError(n, f"{name} rate given twice")
        if not RATE_RE.fullmatch(rate.lower()):
            raise MessageError(n, f"bad {name} rate {show(rate)}: expected a rate like 0.1% or 10bp")
        rates[name] = format_rate(parse_rate(rate))
    if rates and len(rates) != 2:
        raise MessageError(n, "give both 'maker RATE' and 'taker RATE'")
    return rates


def movement(value: str, n: int, word: str, what: str) -> tuple[str, str, str]:
    parts = value.split()
    if len(parts) != 4 or parts[2].lower() != word:
        raise MessageError(n, f"expected '{what}: AMOUNT ASSET {word} ACCOUNT', found {show(value)}")
    return number(parts[0], n, "amount"), asset(parts[1], n), account(parts[3], n)


def amount(ins, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
           n: int | None):
    """*ins* (a transfer, deposit or withdrawal) with its amount read in
    its asset's units: minor units of a currency, lots of an instrument."""
    amount = ins.amount.replace(",", "")
    if ins.asset in currencies:
        cur = currencies[ins.asset]
        units = cur.amount(amount)
        text = cur.amount_text(units)
    elif ins.asset in instruments:
        inst = instruments[ins.asset]
        units = inst.qty(amount)
        text = inst.qty_text(units)
    else:
        raise MessageError(n, f"unknown asset {ins.asset}: not a currency or ticker of "
                              "this pit")
    if units <= 0:
        raise MessageError(n, f"amount {ins.amount} must be positive")
    return replace(ins, amount=text, units=units)
