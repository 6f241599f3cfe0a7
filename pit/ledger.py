"""Accounts: balances per asset, holds for open orders, exact settlement.

A *ledger* maps (account, asset) to a balance and a held amount (a
:class:`Cell`).  Assets are
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

__all__ = ["Cell", "Insufficient", "Ledger"]


class Insufficient(Exception):
    """A debit or hold larger than what is available."""

    def __init__(self, account: str, asset: str, need: int, available: int):
        super().__init__(f"{account} needs {need} {asset}, has {available} available")
        self.account, self.asset, self.need, self.available = account, asset, need, available


class Cell:
    """What one account holds of one asset: its balance and the part of it
    set aside for open orders (``held``).  A :class:`Ledger` keeps one cell
    for each ``(account, asset)`` it has seen, for good: a caller may keep
    the cell and act on it without a look-up (the specialist's hot path,
    :meth:`Ledger.hold_cell` and the like)."""

    __slots__ = ("account", "asset", "balance", "held")

    def __init__(self, account: str, asset: str):
        self.account = account
        self.asset = asset
        self.balance = 0
        self.held = 0


class Ledger:
    """Balances and holds, a :class:`Cell` for each ``(account, asset)``."""

    __slots__ = ("cells",)

    def __init__(self):
        self.cells: dict[tuple[str, str], Cell] = {}

    def cell(self, account: str, asset: str) -> Cell:
        """The cell of *account*'s *asset*, made (empty) if there is none yet.  O(1)."""
        c = self.cells.get((account, asset))
        if c is None:
            c = self.cells[account, asset] = Cell(account, asset)
        return c

    def available(self, account: str, asset: str) -> int:
        c = self.cells.get((account, asset))
        return 0 if c is None else c.balance - c.held

    def credit(self, account: str, asset: str, n: int) -> None:
        if n < 0:
            raise ValueError("credit of a negative amount")
        self.cell(account, asset).balance += n

    def debit(self, account: str, asset: str, n: int) -> None:
        """Take *n* out of what is available (not out of holds)."""
        if n < 0:
            raise ValueError("debit of a negative amount")
        c = self.cell(account, asset)
        avail = c.balance - c.held
        if n > avail:
            raise Insufficient(account, asset, n, avail)
        c.balance -= n

    def hold(self, account: str, asset: str, n: int) -> None:
        """Set *n* aside for an open order."""
        self.hold_cell(self.cell(account, asset), n)

    def hold_cell(self, c: Cell, n: int) -> None:
        """:meth:`hold` on a cell of this ledger, for a caller that keeps it."""
        avail = c.balance - c.held
        if n > avail:
            raise Insufficient(c.account, c.asset, n, avail)
        c.held += n

    def release(self, account: str, asset: str, n: int) -> None:
        """Give back *n* of what was held."""
        self.release_cell(self.cell(account, asset), n)

    def release_cell(self, c: Cell, n: int) -> None:
        """:meth:`release` on a cell of this ledger, for a caller that keeps it."""
        h = c.held - n
        if h < 0:
            raise ValueError(f"release of {n} {c.asset} from {c.account} exceeds its holds")
        c.held = h

    def spend_held(self, account: str, asset: str, held: int, spent: int) -> None:
        """Settle a fill: *held* comes off the holds and *spent* (<= held) off the balance."""
        if spent > held:
            raise ValueError(f"{account} spends {spent} {asset} of a hold of {held}")
        c = self.cell(account, asset)
        self.release_cell(c, held)
        c.balance -= spent

    def settle(self, buyer: str, seller: str, fees_account: str, currency: str, asset: str,
               qty: int, held: int, cost: int, proceeds: int, fees: int) -> None:
        """Settle one trade: *held* comes off the buyer's holds of *currency*
        and *cost* off its balance, it receives *qty* of *asset*; the seller's
        hold and balance of *asset* lose *qty* and it receives *proceeds*;
        *fees_account* receives *fees*.  Exactly ``spend_held``, ``credit``,
        ``spend_held``, ``credit``, ``credit`` in that order, in one call.  O(1)."""
        cell = self.cell
        self.settle_cells(cell(buyer, currency), cell(buyer, asset), cell(seller, asset),
                          cell(seller, currency), cell(fees_account, currency),
                          qty, held, cost, proceeds, fees)

    def settle_cells(self, buyer_pays: Cell, buyer_gets: Cell, seller_pays: Cell,
                     seller_gets: Cell, fees_get: Cell, qty: int, held: int, cost: int,
                     proceeds: int, fees: int) -> None:
        """:meth:`settle` on the five cells of this ledger it touches (buyer
        and currency, buyer and asset, seller and asset, seller and
        currency, fees account and currency), for a caller that keeps them:
        the specialist's hot path.  O(1)."""
        if cost > held:
            raise ValueError(f"{buyer_pays.account} spends {cost} {buyer_pays.asset} "
                             f"of a hold of {held}")
        if qty < 0 or proceeds < 0 or fees < 0:
            raise ValueError("credit of a negative amount")
        self.release_cell(buyer_pays, held)
        buyer_pays.balance -= cost
        buyer_gets.balance += qty
        self.release_cell(seller_pays, qty)
        seller_pays.balance -= qty
        seller_gets.balance += proceeds
        fees_get.balance += fees

    def accounts(self) -> list[tuple[str, str, int, int]]:
        """``(account, asset, balance, held)`` for every non-zero entry, sorted."""
        cells = self.cells
        out = []
        for k in sorted(cells):
            c = cells[k]
            if c.balance or c.held:
                out.append((k[0], k[1], c.balance, c.held))
        return out

    def total(self, asset: str) -> int:
        """Sum of balances of *asset* over all accounts: conserved by trades.  O(n)."""
        return sum(c.balance for (_, a), c in self.cells.items() if a == asset)
