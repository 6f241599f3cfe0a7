"""Rules: the operator moves the pit to a newer set of rules, from this record on.

    Rules: 2

Rules 1 are those every pit had before this record existed; rules 2 add
two refusals by the notary (docs/kinds/rules.md): a transfer to an account
that does not exist, and an asset other than T and T's currency into or out
of a trading account X:T.  With them a specialist's checkpoint holds its
own instruments, accounts and orders only.  Rules only go forward."""

from __future__ import annotations

from collections.abc import Mapping

from pit import grammar
from pit.grammar import MessageError
from pit.record import Record
from pit.units import Currency, Instrument

NAME = "rules"
KEY = "Rules"
SIGNER = "operator"
NUMBERS = False

LATEST = 2          # the newest rules this code knows; 1 is every pit's start


def genesis_rules(request: str) -> int:
    """The rules a genesis record's ``X-Pit-Request`` starts the pit under:
    ``notary F operator F`` (1, every pit made before rules) or ``notary F
    operator F rules N``; 0 when it says neither."""
    words = request.split(" ")
    if len(words) == 4:
        return 1
    if len(words) == 6 and words[4] == "rules" and words[5].isdigit() and words[5][0] != "0":
        return int(words[5])
    return 0


class Rules(Record, frozen=True):
    version: int


CLASSES = (Rules,)
EXAMPLES = ("2",)       # canonical text, one of each class


def parse(value: str, n: int) -> Rules:
    v = value.strip()
    if not (v.isascii() and v.isdigit()) or v.startswith("0"):
        raise MessageError(n, f"expected 'Rules: N', N the rules' number such as 2, "
                              f"found {grammar.show(value)}")
    return Rules(int(v))


def text(ins: Rules) -> str:
    return str(ins.version)


def resolve(ins: Rules, instruments: Mapping[str, Instrument], currencies: Mapping[str, Currency],
            ticker: str | None, n: int | None) -> Rules:
    return ins


def resolved(ins: Rules) -> bool:
    return True


def refusal(version: int, target: int) -> str | None:
    """Why a pit at rules *version* refuses a Rules record for *target*; None if it takes it."""
    if target <= version:
        return f"rules {target}: the pit's rules are {version} already; rules only go forward"
    if target > LATEST:
        return f"rules {target}: this notary knows rules 1 to {LATEST}"
    return None


def transfer_refusal(source: str, asset: str, to: str, instruments: Mapping[str, Instrument],
                     owned) -> str | None:
    """Why rules 2 refuse a transfer of *asset* from account *source* to
    account *to*; None when they allow it.  *owned(account)*: whether a
    member's key (not a filter's) owns the plain *account*.

    * the destination exists: a member's account, ``X:T`` of a member's X
      (not ``operator``, which signs no order) and an instrument T, or ``fees:T``;
    * a trading account ``X:T`` (either end) holds T and T's currency only.
    O(1) look-ups."""
    base, colon, t = to.partition(":")
    if not colon:
        if not owned(to):
            return f"transfer to {to}: no such account (no member owns {to})"
    else:
        if t not in instruments:
            return f"transfer to {to}: no such account ({t} is not an instrument of the pit)"
        if base == "operator":
            return f"transfer to {to}: no such account (the operator has no trading account)"
        if base != "fees" and not owned(base):
            return f"transfer to {to}: no such account (no member owns {base})"
    for end, what in ((source, "out of"), (to, "to")):
        _, colon, t = end.partition(":")
        if not colon:
            continue
        inst = instruments.get(t)
        if inst is None:
            return f"transfer out of {end}: {t} is not an instrument of the pit"
        if asset not in (t, inst.currency.code):
            return (f"transfer of {asset} {what} {end}: a trading account of {t} holds "
                    f"{t} and {inst.currency.code} only (rules 2)")
    return None
