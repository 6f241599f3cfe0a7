"""pit-positions [--at SEQ] : positions and balances of every account.

Reads the reports of the other filters (deposits, withdrawals, transfers,
trades and their fees) and keeps, for every account, its balance of every
asset.  ``--at SEQ`` stops at the state as of record SEQ: a report line
counts when the record that caused it is at or below SEQ.
"""

from __future__ import annotations

import re
import sys

from filters.common import Registry
from pit.filter import Filter, main as filter_main, signed_text
from pit.units import UnitError

__all__ = ["Positions", "main"]

TRADE = re.compile(r"^trade (\d+) (\S+) (\S+) at (\S+) (\S+) buyer (\S+) \S+ seller (\S+) \S+ "
                   r"maker \S+ fees (\S+) (\S+)$")


class Positions(Filter):
    """pit-positions [--at SEQ]

    Balances of every account and asset from the filters' reports."""

    name = "positions"

    def __init__(self, args=None):
        super().__init__(args)
        self.at = None
        if self.args[:1] == ["--at"] and len(self.args) == 2 and self.args[1].isdigit():
            self.at = int(self.args[1])
        elif self.args:
            raise ValueError("usage: pit-positions [--at SEQ]")
        self.registry = Registry()
        self.balance: dict[tuple[str, str], int] = {}

    def wants(self, stamp: dict) -> bool:
        kind = stamp.get("x-pit-kind")
        if kind == "report":
            acct = stamp.get("x-pit-account", "")
            return acct == "transfers" or acct.startswith("specialist:")
        return kind in ("currency", "instrument", "fees")

    def apply(self, seq: int, stamp: dict, msg: bytes) -> None:
        kind = stamp["x-pit-kind"]
        if kind != "report":
            if self.at is None or seq <= self.at:
                self.registry.apply(kind, stamp.get("x-pit-request", ""))
            return
        for line in signed_text(msg).split("\n"):
            w = line.split(" ", 2)
            if len(w) < 3 or not w[1].isdigit():
                continue
            if self.at is not None and int(w[1]) > self.at:
                continue
            try:
                self.line(line)
            except (UnitError, KeyError, ValueError) as e:
                self.say(f"unreadable {seq} {e}: {line[:60]}")

    def add(self, account: str, asset: str, n: int) -> None:
        k = (account, asset)
        v = self.balance.get(k, 0) + n
        if v:
            self.balance[k] = v
        else:
            self.balance.pop(k, None)

    def line(self, line: str) -> None:
        w = line.split(" ")
        r = self.registry
        if w[0] == "deposited":
            self.add(w[2], w[4], r.amount(w[4], w[3]))
        elif w[0] == "withdrawn":
            self.add(w[2], w[4], -r.amount(w[4], w[3]))
        elif w[0] == "transferred":
            n = r.amount(w[5], w[4])
            self.add(w[2], w[5], -n)
            self.add(w[3], w[5], n)
        elif w[0] == "trade":
            m = TRADE.match(line)
            if not m:
                raise ValueError("trade line out of shape")
            _, t, q, p, cur, buyer, seller, bf, sf = m.groups()
            inst = r.instruments[t]
            qty, price = inst.qty(q), inst.price(p)
            n = inst.notional(price, qty)
            c = inst.currency
            bfee, sfee = c.amount(bf) if bf != "0" else 0, c.amount(sf) if sf != "0" else 0
            self.add(f"{buyer}:{t}", t, qty)
            self.add(f"{buyer}:{t}", cur, -(n + bfee))
            self.add(f"{seller}:{t}", t, -qty)
            self.add(f"{seller}:{t}", cur, n - sfee)
            self.add(f"fees:{t}", cur, bfee + sfee)

    def table(self) -> list[tuple[str, str, str]]:
        """``(account, asset, amount text)``, sorted; trading accounts included."""
        return [(a, asset, self.registry.amount_text(asset, n))
                for (a, asset), n in sorted(self.balance.items())]

    def state(self) -> list[str]:
        return self.registry.state() + [f"balance {a} {asset} {n}"
                                        for (a, asset), n in sorted(self.balance.items())]

    def restore(self, lines: list[str]) -> None:
        for i, line in enumerate(lines):
            if line.startswith("balance "):
                _, a, asset, n = line.split(" ")
                self.balance[a, asset] = int(n)
            elif not self.registry.restore_line(line):
                raise ValueError(f"line {i + 5}: unexpected {line[:40]!r}")


def main(argv=None) -> int:
    return filter_main(Positions, argv)


if __name__ == "__main__":
    sys.exit(main())
