"""Deposit: the operator credits an account with money or an instrument
that came into the pit from outside.

    Deposit: 1000.00 USD to alice

The operator's alone; the transfers filter executes it (docs/kinds/deposit.md)."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.record import Record
from pit.units import Currency, Instrument

NAME = "deposit"
KEY = "Deposit"
SIGNER = "operator"
NUMBERS = True


class Deposit(Record, frozen=True):
    amount: str
    asset: str
    to: str
    units: int | None = None


CLASSES = (Deposit,)
EXAMPLES = ("1000.00 USD to alice",)       # canonical text, one of each class


def parse(value: str, n: int) -> Deposit:
    return Deposit(*grammar.movement(value, n, "to", "Deposit"))


def text(ins: Deposit) -> str:
    return f"{ins.amount} {ins.asset} to {ins.to}"


def resolve(ins: Deposit, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
            ticker: str | None, n: int | None) -> Deposit:
    return grammar.amount(ins, instruments, currencies, n)


def resolved(ins: Deposit) -> bool:
    return ins.units is not None
