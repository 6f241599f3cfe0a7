"""Member: the operator adds a member's key, owning accounts, or removes it.

    Member: add 9647B5B8FCC30BFBE8C790B08F9B3AE9A036F739 accounts alice, alice2
    Member: remove 9647B5B8FCC30BFBE8C790B08F9B3AE9A036F739

The operator's alone; an ``add`` carries the member's public key block
after the request (docs/kinds/member.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pit import grammar
from pit.grammar import MessageError
from pit.record import Record
from pit.units import Currency, Instrument

NAME = "member"
KEY = "Member"
SIGNER = "operator"
NUMBERS = False


class Member(Record, frozen=True):
    action: str                    # "add" | "remove"
    fingerprint: str               # 40 upper-case hex digits
    accounts: tuple[str, ...] = ()  # sorted; empty for remove


CLASSES = (Member,)
EXAMPLES = ("add 9647B5B8FCC30BFBE8C790B08F9B3AE9A036F739 accounts alice, bob",)       # canonical text, one of each class


def parse(value: str, n: int) -> Member:
    action, _, rest = value.strip().partition(" ")
    action = action.lower()
    if action == "remove":
        return Member("remove", grammar.fingerprint(rest, n))
    if action != "add":
        raise MessageError(n, f"expected 'add FINGERPRINT accounts A, B' or 'remove FINGERPRINT', "
                              f"found {grammar.show(value)}")
    m = re.fullmatch(r"(.*?)\s+accounts?\s+(.*)", rest, re.IGNORECASE)
    if not m:
        raise MessageError(n, "expected 'add FINGERPRINT accounts A, B'")
    names = [a.strip() for a in m.group(2).split(",")]
    accounts = [grammar.account(a, n) for a in names if a]
    if not accounts or len(accounts) != len(names):
        raise MessageError(n, "expected a comma-separated list of accounts after 'accounts'")
    if len(set(accounts)) != len(accounts):
        raise MessageError(n, "an account is listed twice")
    return Member("add", grammar.fingerprint(m.group(1), n), tuple(sorted(accounts)))


def text(ins: Member) -> str:
    if ins.action == "remove":
        return f"remove {ins.fingerprint}"
    return f"add {ins.fingerprint} accounts {', '.join(ins.accounts)}"


def resolve(ins: Member, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
            ticker: str | None, n: int | None) -> Member:
    return ins


def resolved(ins: Member) -> bool:
    return True
