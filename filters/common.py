"""What several filters keep alike: the pit's registry of currencies and
instruments, and its accounts.  Both are built from operator records in the
archive, so every filter (and the audit) derives the same view by replay."""

from __future__ import annotations

import functools
import re

from pit import kinds
from pit.units import Currency, Instrument, UnitError

__all__ = ["Registry", "Accounts", "amount_text", "parse_transferred", "TRANSFERRED"]

TRANSFERRED = re.compile(r"^transferred (\d+) (\S+) (\S+) (\S+) (\S+)$", re.M)


def parse_transferred(text: str):
    """``(from, to, amount, asset)`` of every ``transferred`` line of a report."""
    for m in TRANSFERRED.finditer(text):
        yield m.group(2), m.group(3), m.group(4), m.group(5)


def amount_text(registry: "Registry", asset: str, n: int) -> str:
    return registry.amount_text(asset, n)


# An instrument line as Registry.state() writes it (Instrument.describe()).
_INSTRUMENT_LINE = re.compile(r"instrument ([A-Z0-9][A-Z0-9._-]*) [A-Z0-9]+ tick [0-9.]+ lot [0-9.]+ "
                              r"maker [0-9.%-]+ taker [0-9.%-]+")


_INSTRUMENT_LINES = re.compile(r"^instrument ([A-Z0-9][A-Z0-9._-]*)( [A-Z0-9]+ tick [0-9.]+ lot [0-9.]+ "
                               r"maker [0-9.%-]+ taker [0-9.%-]+)$", re.M)
_INSTRUMENT_BLOCK = re.compile(r"(?:instrument [^\n]*\n)*")


class _Instruments(dict):
    """Instruments by ticker.  Those restored from a checkpoint are kept as
    their definition text (``lazy``) and read on first use: a specialist of
    one ticker in a pit of ten thousand reads one, not ten thousand.
    ``in``, ``[]`` and ``get`` see both kinds; iterating reads them all."""

    def __init__(self, registry: "Registry"):
        super().__init__()
        self.registry = registry
        self.lazy: dict[str, str] = {}

    def __missing__(self, ticker):
        text = self.lazy.pop(ticker)            # KeyError: no such instrument
        inst = self.registry.apply("instrument", text)
        return inst

    def __contains__(self, ticker) -> bool:
        return dict.__contains__(self, ticker) or ticker in self.lazy

    def get(self, ticker, default=None):
        try:
            return self[ticker]
        except KeyError:
            return default

    def read_all(self) -> None:
        for ticker in list(self.lazy):
            self[ticker]

    def __iter__(self):
        self.read_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self.lazy)

    def keys(self):
        self.read_all()
        return dict.keys(self)

    def values(self):
        self.read_all()
        return dict.values(self)

    def items(self):
        self.read_all()
        return dict.items(self)

    def lines(self) -> list[str]:
        """Every instrument's state line, by ticker, without reading the lazy ones."""
        out = {t: f"instrument {i.describe()}" for t, i in dict.items(self)}
        out.update((t, "instrument " + text) for t, text in self.lazy.items())
        return [out[t] for t in sorted(out)]


class Registry:
    """Currencies, instruments and the pit's default fee rates."""

    def __init__(self):
        self.currencies: dict[str, Currency] = {}
        self.instruments: dict[str, Instrument] = _Instruments(self)
        self.fees = None

    def apply(self, kind: str, text: str) -> Instrument | None:
        """Apply one operator record (canonical request text).  Returns the
        instrument defined, if any.  Raises MessageError or UnitError."""
        ins = kinds.parse(kind, text)
        if kind == "currency":
            self.currencies[ins.code] = ins.currency()
        elif kind == "fees":
            self.fees = ins
        elif kind == "instrument":
            if ins.currency not in self.currencies:
                raise UnitError(f"instrument {ins.ticker}: unknown currency {ins.currency}")
            inst = ins.instrument(self.currencies, self.fees)
            self.instruments.lazy.pop(inst.ticker, None)
            dict.__setitem__(self.instruments, inst.ticker, inst)
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
        if n < 0:
            raise UnitError(f"amount {text} must not be negative")
        return n

    def amount_text(self, asset: str, n: int) -> str:
        if asset in self.currencies:
            return self.currencies[asset].amount_text(n)
        return self.instruments[asset].qty_text(n)

    def state(self) -> list[str]:
        out = [f"currency {c.code} {c.amount_text(1)}" for _, c in sorted(self.currencies.items())]
        if self.fees is not None:
            out.append(f"fees maker {self.fees.maker} taker {self.fees.taker}")
        out += self.instruments.lines()
        return out

    def take_instruments(self, text: str) -> str:
        """Keep the block of instrument lines of state *text* (lines, each
        ending in a newline) to be read when used; return the rest of the
        text.  The text unchanged unless every line of the block is exactly
        as :meth:`state` writes it.  O(block), in C loops."""
        a = 0 if text.startswith("instrument ") else text.find("\ninstrument ") + 1
        if not a and not text.startswith("instrument "):
            return text
        end = _INSTRUMENT_BLOCK.match(text, a).end()
        block = text[a:end]
        found = _INSTRUMENT_LINES.findall(block)
        if len(found) != block.count("\n") or any(t in self.instruments for t, _ in found):
            return text
        self.instruments.lazy.update((t, t + rest) for t, rest in found)
        return text[:a] + text[end:]

    def restore_line(self, line: str) -> bool:
        kind, _, rest = line.partition(" ")
        if kind not in ("currency", "fees", "instrument"):
            return False
        m = _INSTRUMENT_LINE.fullmatch(line) if kind == "instrument" else None
        if m and m.group(1) not in self.instruments:
            self.instruments.lazy[m.group(1)] = rest       # read when first used
        else:
            self.apply(kind, rest)
        return True


_MEMBER_BLOCK = re.compile(r"(?:(?:member|account) [^\n]*\n)*")
_MEMBER_LINES = re.compile(r"^member ([0-9A-F]{40}) [a-z][^ \n]*$", re.M)
_ACCOUNT_LINES = re.compile(r"^account [a-z][^ \n]*$", re.M)


class Accounts:
    """Members (key fingerprints) and the accounts they own.

    A checkpoint's block of member lines (one a member: a million at a
    million members) can be kept as text (``take_block``) and read only
    when a member record or an account lookup needs it; ``state`` writes
    it back unchanged meanwhile.  A specialist's run of orders never does."""

    RESERVED = ("operator",)

    def __init__(self):
        self.members: dict[str, tuple[str, ...]] = {}
        self.known: set[str] = set(self.RESERVED)
        self._block: str | None = None       # state lines kept as text, unread

    def take_block(self, text: str) -> str:
        """Keep the block of member and account lines of state *text*
        (lines, each ending in a newline) unread; return the rest.  The text
        unchanged unless the block is exactly as :meth:`state` writes it.
        O(block), in C loops."""
        if self._block is not None or self.members or len(self.known) > len(self.RESERVED):
            return text
        if text.startswith(("member ", "account ")):
            a = 0
        else:
            a = min((i for i in (text.find("\nmember "), text.find("\naccount ")) if i >= 0),
                    default=-1) + 1
            if not a:
                return text
        end = _MEMBER_BLOCK.match(text, a).end()
        block = text[a:end]
        members = _MEMBER_LINES.findall(block)
        accounts = len(_ACCOUNT_LINES.findall(block))
        first_account = ("\n" + block).find("\naccount ")
        if len(members) + accounts != block.count("\n") or members != sorted(set(members)) \
                or (first_account >= 0 and ("\n" + block).rfind("\nmember ") > first_account):
            return text
        self._block = block
        return text[:a] + text[end:]

    def _read_block(self) -> None:
        block, self._block = self._block, None
        if block:
            for line in block[:-1].split("\n"):
                self.restore_line(line)

    def apply(self, text: str) -> None:
        if self._block is not None:
            self._read_block()
        m = kinds.parse("member", text)
        if m.action == "add":
            self.members[m.fingerprint] = tuple(m.accounts)
            self.known.update(m.accounts)
        else:
            self.members.pop(m.fingerprint, None)

    def exists(self, account: str, registry: Registry) -> bool:
        if self._block is not None:
            self._read_block()
        base, colon, ticker = account.partition(":")
        if base == "fees":
            return ticker in registry.instruments
        if base not in self.known:
            return False
        return not colon or ticker in registry.instruments

    def state(self) -> list[str]:
        if self._block is not None:
            return self._block[:-1].split("\n") if self._block else []
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


def reporter(stamp: dict) -> str:
    """The name of the filter whose report a record is (``specialist ACME``)."""
    return stamp.get("x-pit-request", "").rpartition(" ")[0]


def report_owns(filter_name: str, account: str) -> bool:
    """May the filter *filter_name* move money out of *account*?  Plain
    accounts belong to ``transfers``; ``X:T`` to the specialist whose
    tickers (pit.tickerset: tickers and ranges) hold T."""
    base, colon, ticker = account.partition(":")
    if not colon:
        return filter_name == "transfers"
    kind, _, words = filter_name.partition(" ")
    if kind != "specialist":
        return False
    served = _served(words)
    return served is not None and ticker in served


@functools.lru_cache(maxsize=1024)
def _served(words: str):
    """The TickerSet of a specialist's name after ``specialist ``; None if
    the name is not one (a report so named never reaches the archive)."""
    from pit.tickerset import TickerSet, TickerSetError
    try:
        return TickerSet(words.split(" "))
    except TickerSetError:
        return None
