"""pit-transfers : custody accounts, deposits, withdrawals and transfers.

Holds the pit's plain accounts (``alice``).  Executes deposits and
withdrawals recorded by the operator and transfers out of plain accounts;
credits plain accounts with transfers that a specialist reports out of its
trading accounts.  See pit.ledger for why every balance has exactly one
owner and so no account can overspend across tickers.
"""

from __future__ import annotations

import sys

from filters.common import Accounts, Registry, parse_transferred, report_owns, reporter
from pit import kinds, message
from pit.filter import Filter, main as filter_main, signed_text
from pit.ledger import Insufficient, Ledger
from pit.units import UnitError

__all__ = ["Transfers", "main"]


class Transfers(Filter):
    """pit-transfers

    Deposits, withdrawals and transfers between plain accounts and into
    trading accounts; reports each one as deposited/withdrawn/transferred
    or rejected with its reason."""

    name = "transfers"

    def __init__(self, args=None):
        super().__init__(args)
        if self.args:
            raise ValueError("usage: pit-transfers (no arguments)")
        self.registry = Registry()
        self.accounts = Accounts()
        self.ledger = Ledger()

    def wants(self, stamp: dict) -> bool:
        kind = stamp.get("x-pit-kind")
        if kind == "transfer":
            return ":" not in stamp.get("x-pit-account", ":")
        if kind == "report":
            return stamp.get("x-pit-account", "").startswith("specialist:")
        return kind in kinds.OPERATOR

    def apply(self, seq: int, stamp: dict, msg: bytes) -> None:
        kind, account = stamp["x-pit-kind"], stamp.get("x-pit-account", "")
        text = stamp.get("x-pit-request", "")
        ref = stamp.get("x-pit-ref") or "-"       # rejected lines name the request's ref
        try:
            if kind == "member":
                self.accounts.apply(text)
            elif kind in ("currency", "instrument", "fees"):
                self.registry.apply(kind, text)
            elif kind == "report":
                self.credit_reported(reporter(stamp), signed_text(msg))
            elif account != "operator" and kind in ("deposit", "withdrawal"):
                self.say(f"rejected {seq} {account} {ref} only the operator records {kind}s")
            elif kind == "deposit":
                d = kinds.parse("deposit", text)
                if not self.accounts.exists(d.to, self.registry) or ":" in d.to:
                    return self.say(f"rejected {seq} {account} {ref} unknown account {d.to}")
                n = self.registry.amount(d.asset, d.amount)
                self.ledger.credit(d.to, d.asset, n)
                self.say(f"deposited {seq} {d.to} {self.registry.amount_text(d.asset, n)} {d.asset}")
            elif kind == "withdrawal":
                d = kinds.parse("withdrawal", text)
                if not self.accounts.exists(d.frm, self.registry) or ":" in d.frm:
                    return self.say(f"rejected {seq} {account} {ref} unknown account {d.frm}")
                n = self.registry.amount(d.asset, d.amount)
                self.ledger.debit(d.frm, d.asset, n)
                self.say(f"withdrawn {seq} {d.frm} {self.registry.amount_text(d.asset, n)} {d.asset}")
            elif kind == "transfer":
                t = kinds.parse("transfer", text)
                n = self.registry.amount(t.asset, t.amount)
                if not self.accounts.exists(t.to, self.registry):
                    return self.say(f"rejected {seq} {account} {ref} unknown account {t.to}")
                if not self.accounts.exists(account, self.registry):
                    return self.say(f"rejected {seq} {account} {ref} unknown account {account}")
                self.ledger.debit(account, t.asset, n)
                if ":" not in t.to:
                    self.ledger.credit(t.to, t.asset, n)
                self.say(f"transferred {seq} {account} {t.to} "
                         f"{self.registry.amount_text(t.asset, n)} {t.asset}")
        except Insufficient as e:
            self.say(f"rejected {seq} {account} {ref} insufficient funds: {e.account} needs "
                     f"{self.registry.amount_text(e.asset, e.need)} {e.asset}, has "
                     f"{self.registry.amount_text(e.asset, e.available)} available")
        except (message.MessageError, UnitError) as e:
            self.say(f"rejected {seq} {account} {ref} {e}")

    def credit_reported(self, reporter: str, text: str) -> None:
        for src, dst, amount, asset in parse_transferred(text):
            if ":" not in dst and report_owns(reporter, src):
                self.ledger.credit(dst, asset, self.registry.amount(asset, amount))

    def state(self) -> list[str]:
        lines = self.registry.state() + self.accounts.state()
        lines += [f"balance {a} {asset} {b}" for a, asset, b, _ in self.ledger.accounts()]
        return lines

    def restore(self, lines: list[str]) -> None:
        for i, line in enumerate(lines):
            if line.startswith("balance "):
                _, a, asset, b = line.split(" ")
                self.ledger.cell(a, asset).balance = int(b)
            elif not (self.registry.restore_line(line) or self.accounts.restore_line(line)):
                raise ValueError(f"line {i + 5}: unexpected {line[:40]!r}")


def main(argv=None) -> int:
    return filter_main(Transfers, argv)


if __name__ == "__main__":
    sys.exit(main())
