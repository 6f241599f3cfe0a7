"""Withdrawal: the operator debits an account for what leaves the pit.

    Withdrawal: 50.00 USD from alice

The operator's alone; the transfers filter executes it, refusing it
when the account's free balance is short (docs/kinds/withdrawal.md)."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.record import Record
from pit.units import Currency, Instrument

NAME = "withdrawal"
KEY = "Withdrawal"
SIGNER = "operator"
NUMBERS = True


class Withdrawal(Record, frozen=True):
    amount: str
    asset: str
    frm: str
    units: int | None = None


CLASSES = (Withdrawal,)
EXAMPLES = ("50.00 USD from alice",)       # canonical text, one of each class


def parse(value: str, n: int) -> Withdrawal:
    return Withdrawal(*grammar.movement(value, n, "from", "Withdrawal"))


def text(ins: Withdrawal) -> str:
    return f"{ins.amount} {ins.asset} from {ins.frm}"


def resolve(ins: Withdrawal, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
            ticker: str | None, n: int | None) -> Withdrawal:
    return grammar.amount(ins, instruments, currencies, n)


def resolved(ins: Withdrawal) -> bool:
    return ins.units is not None
