"""What several filters keep alike: the pit's registry of currencies and
instruments, and its accounts.  Both are built from operator records in the
archive, so every filter (and the audit) derives the same view by replay."""

from __future__ import annotations

import re

from pit import message
from pit.units import Currency, Instrument, UnitError, format_rate

__all__ = ["Registry", "Accounts", "amount_text", "parse_transferred", "TRANSFERRED"]

TRANSFERRED = re.compile(r"^transferred (\d+) (\S+) (\S+) (\S+) (\S+)$", re.M)


def parse_transferred(text: str):
    """``(from, to, amount, asset)`` of every ``transferred`` line of a report."""
    for m in TRANSFERRED.finditer(text):
        yield m.group(2), m.group(3), m.group(4), m.group(5)


def amount_text(registry: "Registry", asset: str, n: int) -> str:
    return registry.amount_text(asset, n)


class Registry:
    """Currencies, instruments and the pit's default fee rates."""

    def __init__(self):
        self.currencies: dict[str, Currency] = {}
        self.instruments: dict[str, Instrument] = {}
        self.maker_ppm, self.taker_ppm = 1000, 2000

    def apply(self, kind: str, text: str) -> Instrument | None:
        """Apply one operator record (canonical request text).  Returns the
        instrument defined, if any.  Raises MessageError or UnitError."""
        if kind == "currency":
            code, minor = message.parse_currency(text)
            self.currencies[code] = Currency(code, minor)
        elif kind == "fees":
            self.maker_ppm, self.taker_ppm = message.parse_fees(text)
        elif kind == "instrument":
            d = message.parse_instrument(text)
            cur = self.currencies.get(d.currency)
            if cur is None:
                raise UnitError(f"instrument {d.ticker}: unknown currency {d.currency}")
            inst = Instrument(d.ticker, cur, d.tick, d.lot,
                              self.maker_ppm if d.maker_ppm is None else d.maker_ppm,
                              self.taker_ppm if d.taker_ppm is None else d.taker_ppm)
            self.instruments[d.ticker] = inst
            return inst
        return None

    def amount(self, asset: str, text: str) -> int:
        """Decimal *text* of *asset* as an integer (minor units or lots)."""
        if asset in self.currencies:
            n = self.currencies[asset].amount(text)
        elif asset in self.instruments:
            n = self.instruments[asset].qty(text)
        else:
            raise UnitError(f"unknown asset {asset}")
        if n <= 0:
            raise UnitError(f"amount {text} must be positive")
        return n

    def amount_text(self, asset: str, n: int) -> str:
        if asset in self.currencies:
            return self.currencies[asset].amount_text(n)
        return self.instruments[asset].qty_text(n)

    def state(self) -> list[str]:
        out = [f"currency {c.code} {c.amount_text(1)}" for _, c in sorted(self.currencies.items())]
        out.append(f"fees maker {format_rate(self.maker_ppm)} taker {format_rate(self.taker_ppm)}")
        out += [f"instrument {i.describe()}" for _, i in sorted(self.instruments.items())]
        return out

    def restore_line(self, line: str) -> bool:
        w = line.split(" ", 1)
        if w[0] == "currency":
            self.apply("currency", w[1])
        elif w[0] == "fees":
            self.apply("fees", w[1])
        elif w[0] == "instrument":
            self.apply("instrument", w[1])
        else:
            return False
        return True


class Accounts:
    """Members (key fingerprints) and the accounts they own."""

    RESERVED = ("operator",)

    def __init__(self):
        self.members: dict[str, tuple[str, ...]] = {}
        self.known: set[str] = set(self.RESERVED)

    def apply(self, text: str) -> None:
        m = message.parse_member(text)
        if m.action == "add":
            self.members[m.fingerprint] = tuple(m.accounts)
            self.known.update(m.accounts)
        else:
            self.members.pop(m.fingerprint, None)

    def exists(self, account: str, registry: Registry) -> bool:
        base, colon, ticker = account.partition(":")
        if base == "fees":
            return ticker in registry.instruments
        if base not in self.known:
            return False
        return not colon or ticker in registry.instruments

    def state(self) -> list[str]:
        out = [f"member {f} {','.join(a)}" for f, a in sorted(self.members.items())]
        extra = sorted(self.known - set(self.RESERVED) - {a for v in self.members.values() for a in v})
        out += [f"account {a}" for a in extra]
        return out

    def restore_line(self, line: str) -> bool:
        w = line.split(" ")
        if w[0] == "member":
            self.members[w[1]] = tuple(w[2].split(","))
            self.known.update(self.members[w[1]])
        elif w[0] == "account":
            self.known.add(w[1])
        else:
            return False
        return True


def report_owns(reporter: str, account: str) -> bool:
    """May the filter whose account is *reporter* move money out of *account*?
    Plain accounts belong to ``transfers``; ``X:T`` to the specialist of T."""
    base, colon, ticker = account.partition(":")
    if not colon:
        return reporter == "transfers"
    kind, _, tickers = reporter.partition(":")
    return kind == "specialist" and ticker in tickers.split("+")
