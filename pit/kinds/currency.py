"""Currency: the operator defines a currency and its minor unit.

    Currency: USD 0.01

Amounts of the currency are whole minor units (docs/kinds/currency.md)."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.grammar import CURRENCY_RE, MessageError
from pit.record import Record
from pit.units import Currency, Instrument, UnitError

NAME = "currency"
KEY = "Currency"
SIGNER = "operator"
NUMBERS = False


class CurrencyDef(Record, frozen=True):
    code: str
    minor: str                     # canonical decimal text

    def currency(self) -> Currency:
        return Currency(self.code, self.minor)


CLASSES = (CurrencyDef,)
EXAMPLES = ("USD 0.01",)       # canonical text, one of each class


def parse(value: str, n: int) -> CurrencyDef:
    parts = value.split()
    if len(parts) != 2:
        raise MessageError(n, f"expected 'Currency: CODE MINOR-UNIT' such as 'USD 0.01', "
                              f"found {grammar.show(value)}")
    code = parts[0].upper()
    if not CURRENCY_RE.fullmatch(code):
        raise MessageError(n, f"bad currency code {grammar.show(parts[0])}: expected 2-10 capitals or digits")
    minor = grammar.step_text(parts[1], n, "minor unit")
    try:
        Currency(code, minor)
    except UnitError as e:
        raise MessageError(n, str(e)) from None
    return CurrencyDef(code, minor)


def text(ins: CurrencyDef) -> str:
    return f"{ins.code} {ins.minor}"


def resolve(ins: CurrencyDef, instruments: Mapping[str, Instrument],
            currencies: Mapping[str, Currency], ticker: str | None, n: int | None) -> CurrencyDef:
    return ins


def resolved(ins: CurrencyDef) -> bool:
    return True
