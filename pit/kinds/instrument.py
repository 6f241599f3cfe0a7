"""Instrument: the operator defines an instrument: its ticker, the currency
it trades in, its tick and lot, and optionally its own fee rates.

    Instrument: ACME USD tick 0.01 lot 1
    Instrument: BTC EUR tick 0.5 lot 0.1 maker 0.05% taker 0.1%

A tick times a lot must be whole minor units of the currency, which must
be defined first (docs/kinds/instrument.md)."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.grammar import CURRENCY_RE, MessageError
from pit.record import Record
from pit.units import Currency, Instrument, parse_rate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pit.kinds.fees import Fees

NAME = "instrument"
KEY = "Instrument"
SIGNER = "operator"
NUMBERS = False


class InstrumentDef(Record, frozen=True):
    """``maker``/``taker`` are canonical rate text, or both ``None`` for the
    pit-wide default schedule."""
    ticker: str
    currency: str
    tick: str
    lot: str
    maker: str | None = None
    taker: str | None = None

    def instrument(self, currencies: Mapping[str, Currency],
                   fees: "Fees | None" = None) -> Instrument:
        """Build the units.Instrument; fees default to *fees*, then to units' defaults."""
        cur = currencies[self.currency]
        if self.maker is not None:
            rates = {"maker_ppm": parse_rate(self.maker), "taker_ppm": parse_rate(self.taker)}
        elif fees is not None:
            rates = {"maker_ppm": fees.maker_ppm, "taker_ppm": fees.taker_ppm}
        else:
            rates = {}
        return Instrument(self.ticker, cur, self.tick, self.lot, **rates)


CLASSES = (InstrumentDef,)
EXAMPLES = ("ACME USD tick 0.01 lot 1",)       # canonical text, one of each class


def parse(value: str, n: int) -> InstrumentDef:
    w = value.split()
    if len(w) < 6 or w[2].lower() != "tick" or w[4].lower() != "lot":
        raise MessageError(n, "expected 'Instrument: TICKER CURRENCY tick STEP lot STEP "
                              f"[maker RATE taker RATE]', found {grammar.show(value, 60)}")
    ticker = grammar.ticker(w[0], n)
    code = w[1].upper()
    if not CURRENCY_RE.fullmatch(code):
        raise MessageError(n, f"bad currency code {grammar.show(w[1])}: expected 2-10 capitals or digits")
    rates = grammar.rates(w[6:], n)
    return InstrumentDef(ticker, code, grammar.step_text(w[3], n, "tick"), grammar.step_text(w[5], n, "lot"),
                         rates.get("maker"), rates.get("taker"))


def text(ins: InstrumentDef) -> str:
    text = f"{ins.ticker} {ins.currency} tick {ins.tick} lot {ins.lot}"
    if ins.maker is not None:
        text += f" maker {ins.maker} taker {ins.taker}"
    return text


def resolve(ins: InstrumentDef, instruments: Mapping[str, Instrument],
            currencies: Mapping[str, Currency], ticker: str | None,
            n: int | None) -> InstrumentDef:
    """Checks that its currency is defined and tick x lot is whole minor units."""
    if ins.currency not in currencies:
        raise MessageError(n, f"unknown currency {ins.currency}")
    ins.instrument(currencies)
    return ins


def resolved(ins: InstrumentDef) -> bool:
    return True
