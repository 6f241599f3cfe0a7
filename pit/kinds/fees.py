"""Fees: the operator sets the pit's default maker and taker fee rates.

    Fees: maker 0.1% taker 0.2%

Instruments defined without rates of their own take these (docs/kinds/fees.md)."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.grammar import MessageError
from pit.record import Record
from pit.units import Currency, Instrument, parse_rate

NAME = "fees"
KEY = "Fees"
SIGNER = "operator"
NUMBERS = False


class Fees(Record, frozen=True):
    maker: str                     # canonical rate text, e.g. "0.1%"
    taker: str

    @property
    def maker_ppm(self) -> int:
        return parse_rate(self.maker)

    @property
    def taker_ppm(self) -> int:
        return parse_rate(self.taker)


CLASSES = (Fees,)
EXAMPLES = ("maker 0.1% taker 0.2%",)       # canonical text, one of each class


def parse(value: str, n: int) -> Fees:
    rates = grammar.rates(value.split(), n)
    if not rates:
        raise MessageError(n, "expected 'Fees: maker RATE taker RATE'")
    return Fees(rates["maker"], rates["taker"])


def text(ins: Fees) -> str:
    return f"maker {ins.maker} taker {ins.taker}"


def resolve(ins: Fees, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
            ticker: str | None, n: int | None) -> Fees:
    return ins


def resolved(ins: Fees) -> bool:
    return True
