"""Accounts: balances per asset, holds for open orders, exact settlement.

A *ledger* maps (account, asset) to a balance and a held amount.  Assets are
currency codes (amounts in minor units) and tickers (amounts in lots); the
ledger itself only sees integers.  ``available = balance - held`` and no
operation ever lets a balance or an available amount go below zero: a debit or
hold that does not fit raises :class:`Insufficient` and changes nothing.

Who owns which balance (the design that keeps specialists independent):

* a plain account (``alice``) lives in the ``transfers`` filter's ledger;
* a trading account (``alice:ACME``) lives in the ledger of the specialist
  for ACME, and only that specialist ever debits it.

A transfer is executed by the owner of its *source* account, which checks
the funds, debits, and reports ``transferred``; the owner of the destination
credits when it reads that report from the archive.  Every unit of value sits
in exactly one ledger at a time and every ledger is a single serial filter
over the archive, so no account can overspend, however many tickers it
trades: to spend cash on ACME it must first have moved it to ``alice:ACME``.

Every operation is O(1).
"""

from __future__ import annotations

__all__ = ["Insufficient", "Ledger"]


class Insufficient(Exception):
    """A debit or hold larger than what is available."""

    def __init__(self, account: str, asset: str, need: int, available: int):
        super().__init__(f"{account} needs {need} {asset}, has {available} available")
        self.account, self.asset, self.need, self.available = account, asset, need, available


class Ledger:
    """Balances and holds, keyed by ``(account, asset)``."""

    __slots__ = ("balance", "held")

    def __init__(self):
        self.balance: dict[tuple[str, str], int] = {}
        self.held: dict[tuple[str, str], int] = {}

    def available(self, account: str, asset: str) -> int:
        k = (account, asset)
        return self.balance.get(k, 0) - self.held.get(k, 0)

    def credit(self, account: str, asset: str, n: int) -> None:
        if n < 0:
            raise ValueError("credit of a negative amount")
        k = (account, asset)
        self.balance[k] = self.balance.get(k, 0) + n

    def debit(self, account: str, asset: str, n: int) -> None:
        """Take *n* out of what is available (not out of holds)."""
        if n < 0:
            raise ValueError("debit of a negative amount")
        k = (account, asset)
        avail = self.balance.get(k, 0) - self.held.get(k, 0)
        if n > avail:
            raise Insufficient(account, asset, n, avail)
        self.balance[k] -= n

    def hold(self, account: str, asset: str, n: int) -> None:
        """Set *n* aside for an open order."""
        self.hold_key((account, asset), n)

    def hold_key(self, k: tuple[str, str], n: int) -> None:
        """:meth:`hold` by the key ``(account, asset)``, for a caller that keeps it."""
        held = self.held
        h = held.get(k, 0)
        avail = self.balance.get(k, 0) - h
        if n > avail:
            raise Insufficient(k[0], k[1], n, avail)
        held[k] = h + n

    def release(self, account: str, asset: str, n: int) -> None:
        """Give back *n* of what was held."""
        self.release_key((account, asset), n)

    def release_key(self, k: tuple[str, str], n: int) -> None:
        """:meth:`release` by the key ``(account, asset)``, for a caller that keeps it."""
        h = self.held.get(k, 0) - n
        if h < 0:
            raise ValueError(f"release of {n} {k[1]} from {k[0]} exceeds its holds")
        if h:
            self.held[k] = h
        else:
            self.held.pop(k, None)

    def spend_held(self, account: str, asset: str, held: int, spent: int) -> None:
        """Settle a fill: *held* comes off the holds and *spent* (<= held) off the balance."""
        if spent > held:
            raise ValueError(f"{account} spends {spent} {asset} of a hold of {held}")
        self.release(account, asset, held)
        k = (account, asset)
        self.balance[k] = self.balance.get(k, 0) - spent

    def settle(self, buyer: str, seller: str, fees_account: str, currency: str, asset: str,
               qty: int, held: int, cost: int, proceeds: int, fees: int) -> None:
        """Settle one trade: *held* comes off the buyer's holds of *currency*
        and *cost* off its balance, it receives *qty* of *asset*; the seller's
        hold and balance of *asset* lose *qty* and it receives *proceeds*;
        *fees_account* receives *fees*.  Exactly ``spend_held``, ``credit``,
        ``spend_held``, ``credit``, ``credit`` in that order, in one call.  O(1)."""
        self.settle_keys((buyer, currency), (buyer, asset), (seller, asset), (seller, currency),
                         (fees_account, currency), qty, held, cost, proceeds, fees)

    def settle_keys(self, buyer_pays: tuple[str, str], buyer_gets: tuple[str, str],
                    seller_pays: tuple[str, str], seller_gets: tuple[str, str],
                    fees_get: tuple[str, str], qty: int, held: int, cost: int, proceeds: int,
                    fees: int) -> None:
        """:meth:`settle` by the five keys ``(account, asset)`` it touches
        (buyer and currency, buyer and asset, seller and asset, seller and
        currency, fees account and currency), for a caller that keeps them:
        the specialist's hot path.  O(1)."""
        if cost > held:
            raise ValueError(f"{buyer_pays[0]} spends {cost} {buyer_pays[1]} of a hold of {held}")
        if qty < 0 or proceeds < 0 or fees < 0:
            raise ValueError("credit of a negative amount")
        balance, holds = self.balance, self.held
        k = buyer_pays
        left = holds.get(k, 0) - held
        if left < 0:
            raise ValueError(f"release of {held} {k[1]} from {k[0]} exceeds its holds")
        if left:
            holds[k] = left
        else:
            holds.pop(k, None)
        balance[k] = balance.get(k, 0) - cost
        k = buyer_gets
        balance[k] = balance.get(k, 0) + qty
        k = seller_pays
        left = holds.get(k, 0) - qty
        if left < 0:
            raise ValueError(f"release of {qty} {k[1]} from {k[0]} exceeds its holds")
        if left:
            holds[k] = left
        else:
            holds.pop(k, None)
        balance[k] = balance.get(k, 0) - qty
        k = seller_gets
        balance[k] = balance.get(k, 0) + proceeds
        k = fees_get
        balance[k] = balance.get(k, 0) + fees

    def accounts(self) -> list[tuple[str, str, int, int]]:
        """``(account, asset, balance, held)`` for every non-zero entry, sorted."""
        keys = set(self.balance) | set(self.held)
        out = []
        for k in sorted(keys):
            b, h = self.balance.get(k, 0), self.held.get(k, 0)
            if b or h:
                out.append((k[0], k[1], b, h))
        return out

    def total(self, asset: str) -> int:
        """Sum of balances of *asset* over all accounts: conserved by trades.  O(n)."""
        return sum(v for (_, a), v in self.balance.items() if a == asset)
