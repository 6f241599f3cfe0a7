"""Transfer: a member moves an amount from one of its accounts to another.

    Transfer: 100.00 USD to alice:ACME

Signed by the member who owns the request's Account (the source); the
transfers filter executes it (docs/kinds/transfer.md)."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.record import Record
from pit.units import Currency, Instrument

NAME = "transfer"
KEY = "Transfer"
SIGNER = "owner"
NUMBERS = True


class Transfer(Record, frozen=True):
    """From the request's Account to ``to``.  ``asset`` is a currency code
    (``units`` in minor units) or a ticker (``units`` in lots)."""
    amount: str
    asset: str
    to: str
    units: int | None = None


CLASSES = (Transfer,)
EXAMPLES = ("100.00 USD to alice:ACME",)       # canonical text, one of each class


def parse(value: str, n: int) -> Transfer:
    return Transfer(*grammar.movement(value, n, "to", "Transfer"))


def text(ins: Transfer) -> str:
    return f"{ins.amount} {ins.asset} to {ins.to}"


def resolve(ins: Transfer, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
            ticker: str | None, n: int | None) -> Transfer:
    return grammar.amount(ins, instruments, currencies, n)


def resolved(ins: Transfer) -> bool:
    return ins.units is not None
