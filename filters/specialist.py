"""pit-specialist TICKER... : match orders, settle trades, keep trading accounts.

Reads the pit's records on stdin (its checkpoint first), writes its report
and a fresh checkpoint on stdout: see docs/pit-filter.7.md.  One specialist
serves one or more tickers; each ticker has exactly one specialist.

Funds.  The specialist holds the trading accounts of its tickers
(``alice:ACME``) in its own ledger and checks every order against them
before the matching core sees it, so it never asks any other filter:

* a sell holds its quantity of the instrument;
* a buy with a limit price (limit, IOC, FOK, stop-limit) holds, per lot,
  the notional of one lot at the limit plus the larger fee rate on it rounded
  up; no fill can cost more, whatever it splits into;
* a market buy holds everything available and is capped so that notional
  plus fees cannot exceed it; a stop-loss or take-profit buy holds its
  quantity at the stop price plus a 5% collar and is capped at that;
* what a filled or cancelled order did not spend is released at once.

Fees are maker-taker (``pit.units.fee``: rounded up to a whole minor unit),
paid in the quote currency to the account ``fees:TICKER``.
"""

from __future__ import annotations

import re
import sys

from filters.common import Accounts, Registry, amount_text, parse_transferred, report_owns, reporter
from pit import book, bookstate, kinds, message
from pit.kinds.rules import genesis_rules
from pit.message import MessageError, parse_canonical_order, _CANON_CANCEL
from pit.book import BUY, SELL, Engine
from pit.filter import Filter, main as filter_main, signed_text
from pit.ledger import Insufficient, Ledger
from pit.tickerset import TickerSet
from pit.units import PPM, UnitError, fee

__all__ = ["Specialist", "main"]

STOP_COLLAR_PPM = 50_000          # 5%: funding of a stop that becomes a market buy
_LIMIT = book.LIMIT
_NEW = book.NEW                   # the event of an accepted order
_LIMIT_TYPES = frozenset((book.LIMIT, book.IOC, book.FOK, book.STOP_LIMIT))   # hold per lot
_CACHE_LIMIT = 4096               # entries per text cache (repeated prices and quantities)
_FIGURES_LIMIT = 65536            # new-order texts whose figures are kept (about 16 MB at most)
_INT = r"(?:0|-?[1-9][0-9]*)"


def _order_lines() -> re.Pattern:
    """A checkpoint's order line exactly as Order.line writes it (integers
    in their canonical form, the side buy or sell, no field holding a
    space): its oid, account, ref and ticker."""
    return re.compile(rf"^order ({_INT}) ([^ \n]*) ([^ \n]*) ([A-Z][A-Z0-9.]*) "
                      rf"(?:buy|sell) [^ \n]* {_INT} {_INT} {_INT}$", re.M)


class _Units:
    """An instrument's figures the hot path needs, looked up once, and
    caches of the decimal text it reads and writes again and again (the
    same prices and quantities recur).  Only successful conversions are
    cached, so results and errors are exactly those of :mod:`pit.units`;
    each cache stops growing at ``_CACHE_LIMIT`` entries."""

    __slots__ = ("inst", "ledger", "cur", "multiplier", "maker", "taker", "rate", "fees",
                 "prices", "qtys", "price_texts", "qty_texts", "amount_texts",
                 "buy_cells", "sell_cells")

    def __init__(self, inst, ledger: Ledger):
        self.inst = inst
        self.ledger = ledger
        self.cur = inst.currency.code
        self.multiplier = inst.multiplier
        self.maker, self.taker = inst.maker_ppm, inst.taker_ppm
        self.rate = max(inst.maker_ppm, inst.taker_ppm)
        self.fees = ledger.cell("fees:" + inst.ticker, self.cur)    # the ledger's cell of its fees
        self.prices: dict[str, int] = {}
        self.qtys: dict[str, int] = {}
        self.price_texts: dict[int, str] = {}
        self.qty_texts: dict[int, str] = {}
        self.amount_texts: dict[int, str] = {}
        # account -> (acct, the ledger's cell of what an order holds, the
        # cell of what it receives), one dict a side: looked up once per
        # trading account rather than an f-string and two ledger look-ups
        # per order and trade.
        self.buy_cells: dict[str, tuple] = {}
        self.sell_cells: dict[str, tuple] = {}

    def cells(self, account: str, side: str) -> tuple:
        """``(acct, hold cell, receive cell)`` of *account*'s orders on *side*."""
        acct = f"{account}:{self.inst.ticker}"
        cur, tick = self.ledger.cell(acct, self.cur), self.ledger.cell(acct, self.inst.ticker)
        self.buy_cells[account] = (acct, cur, tick)
        self.sell_cells[account] = (acct, tick, cur)
        return self.buy_cells[account] if side == BUY else self.sell_cells[account]

    def price(self, text: str) -> int:
        n = self.prices.get(text)
        if n is None:
            n = self.inst.price(text)
            if len(self.prices) < _CACHE_LIMIT:
                self.prices[text] = n
        return n

    def qty(self, text: str) -> int:
        n = self.qtys.get(text)
        if n is None:
            n = self.inst.qty(text)
            if len(self.qtys) < _CACHE_LIMIT:
                self.qtys[text] = n
        return n

    def price_text(self, n: int) -> str:
        t = self.price_texts.get(n)
        if t is None:
            t = self.inst.price_text(n)
            if len(self.price_texts) < _CACHE_LIMIT:
                self.price_texts[n] = t
        return t

    def qty_text(self, n: int) -> str:
        t = self.qty_texts.get(n)
        if t is None:
            t = self.inst.qty_text(n)
            if len(self.qty_texts) < _CACHE_LIMIT:
                self.qty_texts[n] = t
        return t

    def amount_text(self, n: int) -> str:
        t = self.amount_texts.get(n)
        if t is None:
            t = self.inst.currency.amount_text(n)
            if len(self.amount_texts) < _CACHE_LIMIT:
                self.amount_texts[n] = t
        return t


class Order:
    """What the specialist remembers of an open order beyond the book: who,
    which ref, what it holds.  ``unit`` is the hold per lot for limit-type
    buys and sells; 0 for market-type buys, whose hold is a pool."""

    __slots__ = ("account", "ref", "ticker", "side", "kind", "rem", "hold", "unit", "acct",
                 "cell", "gcell", "rkey")

    def __init__(self, account, ref, ticker, side, kind, rem, hold, unit, acct, cell, gcell, rkey):
        # (one attribute a line: four at once would build and free a tuple)
        self.account = account
        self.ref = ref
        self.ticker = ticker
        self.side = side
        self.kind = kind
        self.rem = rem
        self.hold = hold
        self.unit = unit
        self.acct = acct            # the trading account it holds in
        self.cell = cell            # the ledger's cell of its hold: acct's currency or ticker
        self.gcell = gcell          # the cell of what it receives: acct's ticker or currency;
                                    # None for a sell read before its currency was known
        self.rkey = rkey            # (account, ref)

    def line(self, oid: int) -> str:
        side = "buy" if self.side == BUY else "sell"
        return (f"order {oid} {self.account} {self.ref} {self.ticker} {side} "
                f"{self.kind} {self.rem} {self.hold} {self.unit}")


class Specialist(Filter):
    """pit-specialist TICKER|LO-HI [...]

    Matches the orders for its tickers through the matching core (pit.book),
    checks and settles funds in the trading accounts ACCOUNT:TICKER, and
    executes transfers out of those accounts.  Its tickers are named by
    tickers and ranges (A-M: every ticker from A to M, as in a phone book;
    pit.tickerset), at most 32 words whatever their number."""

    def __init__(self, args):
        super().__init__(args)
        if not args:
            raise ValueError("usage: pit-specialist TICKER|LO-HI [TICKER|LO-HI...]")
        self.serves = TickerSet(args)           # TickerSetError (a ValueError): bad arguments
        self.tickers = self.serves.words        # the words of its name: tickers and ranges
        # wants() and apply() below agree on these orders
        self.order_tickers = self.tickers if self.serves.finite else self.serves
        self._order_lines = None  # its checkpoint's order lines: _order_lines(), see prepare()
        self.name = "specialist " + " ".join(self.tickers)
        self.registry = Registry()
        self.accounts = Accounts()
        self.rules = 1            # the pit's rules (pit.kinds.rules): 2 once a Rules record says so
        self.engine = Engine()
        self.ledger = Ledger()
        self.orders: dict[int, Order] = {}
        self.refs: dict[tuple[str, str], int] = {}
        # Open orders read from the checkpoint that this run has not touched,
        # as their checkpoint lines (see restore); each open order is either
        # here or in ``orders``.  _open() reads one when it is needed.
        self._kept: dict[int, str] = {}
        self._kept_currency: dict[str, str] = {}  # ticker -> currency, as the kept lines were read
        self._pending = None      # (oid, new hold, new unit, extra held) during a modify
        self._text = ""           # canonical text of the order being placed
        self._units: dict[str, _Units] = {}   # tickers with an instrument and a book
        self._figures: dict[str, tuple] = {}  # new-order text -> what _new_figures gives for it
        # account -> the one string object of that name that the orders and
        # the core hold (pit.book: a million resting orders share a few
        # names; docs/pit-book.md, "The replay and the specialist on one core")
        self._names: dict[str, str] = {}

    def _refresh_units(self) -> None:
        """Drop the hot path's view of the instruments after the registry
        or the books changed (operator records, a restore: rare); it is
        built again a ticker at a time as orders come (:meth:`_unit`), so a
        specialist of ten thousand tickers reads the few a run trades."""
        self._units = {}
        self._figures = {}

    def _unit(self, ticker: str):
        """The _Units of one of our tickers with a book and an instrument
        (None for any other), made and kept.  O(1)."""
        instruments = self.registry.instruments
        if not (self.engine.has_book(ticker) and ticker in instruments):
            return None
        u = self._units[ticker] = _Units(instruments[ticker], self.ledger)
        return u

    @property
    def account(self) -> str:
        return "specialist:" + self.tickers[0]     # its first word: a ticker or a range

    # -- business ---------------------------------------------------------------
    def wants(self, stamp: dict) -> bool:
        kind = stamp.get("x-pit-kind")
        if kind == "order":
            return stamp.get("x-pit-ticker", "") in self.serves
        if kind in ("instrument", "currency", "fees", "member", "rules", "genesis"):
            return True
        if kind == "transfer":
            src = stamp.get("x-pit-account", "")
            return ":" in src and src.rpartition(":")[2] in self.serves
        if kind == "report":
            acct = stamp.get("x-pit-account", "")
            return acct != self.account and (acct == "transfers" or acct.startswith("specialist:"))
        return False

    def apply(self, seq: int, stamp: dict, msg: bytes) -> None:
        kind = stamp["x-pit-kind"]
        if kind == "order":
            self.order(seq, stamp["x-pit-account"], stamp.get("x-pit-ref", ""),
                       stamp["x-pit-request"])
        elif kind == "transfer":
            self.transfer_out(seq, stamp["x-pit-account"], stamp["x-pit-request"],
                              stamp.get("x-pit-ref") or "-")
        elif kind == "report":
            self.credits(reporter(stamp), signed_text(msg), seq)
        elif kind == "member":
            if self.rules < 2:                  # rules 2: the notary checks destinations
                self.accounts.apply(stamp["x-pit-request"])
        elif kind == "rules":
            self.switch(seq, kinds.parse("rules", stamp["x-pit-request"]).version)
        elif kind == "genesis":                 # a pit made under rules 2 says so here
            self.switch(seq, genesis_rules(stamp.get("x-pit-request", "")))
        elif kind == "instrument" and self.rules >= 2 \
                and stamp["x-pit-request"].partition(" ")[0] not in self.serves:
            return                              # rules 2: another specialist's instrument
        else:
            try:
                added = self.registry.apply(kind, stamp["x-pit-request"])
                if added is not None and added.ticker in self.serves \
                        and not self.engine.has_book(added.ticker):
                    self.engine.add_book(added.ticker)
            finally:
                self._refresh_units()

    # -- orders -----------------------------------------------------------------
    def order(self, seq: int, account: str, ref: str, text: str) -> None:
        """Place, cancel or modify one order.  The hot path: O(1) plus the
        core's work.  A new order's figures are looked up by its text (the
        same side, size and price recur): everything up to the funds check
        in one dict lookup."""
        account = self._names.setdefault(account, account)   # one string per account
        f = self._figures.get(text)
        rkey = (account, ref)
        if f is None or rkey in self.refs:
            f = self._new_figures(seq, account, ref, text)
            if f is None:
                return                  # a cancel, a modify or a rejection: done
        ticker, side, kind, asset, qty, price, stop, hold, unit, cap, cells = f
        acct, c, g = cells.get(account) or self._units[ticker].cells(account, side)
        try:
            self.ledger.hold_cell(c, hold)
        except Insufficient as e:
            return self.say(f"rejected {seq} {account} {ref} {self._short(e)}")
        orders = self.orders
        orders[seq] = Order(account, ref, ticker, side, kind, qty, hold, unit, acct, c, g, rkey)
        self.refs[rkey] = seq
        self._text = text
        engine = self.engine
        ev = engine.events
        engine.new(seq, seq, account, ticker, side, kind, qty, price, stop, cap)
        e = ev[0] if ev else ("",)
        if e[0] == _NEW and e[2] == seq:
            self.lines.append(f"accepted {e[1]} {account} {ref} {text}")
            if len(ev) == 1:
                ev.clear()
                if kind == _LIMIT:
                    return    # the commonest outcome: accepted and resting
            else:
                del ev[0]
                self.events()
        else:
            self.events()
        if seq in orders and engine.order(seq) is None:
            self._close(seq)          # a market order's unspent pool

    apply_order = order             # Filter.apply_order: the driver's fast path

    def _new_figures(self, seq: int, account: str, ref: str, text: str) -> tuple | None:
        """``(ticker, side, kind, asset, qty, price, stop, hold, unit, cap,
        cells)`` of a new order (*cells*: its side's dict of _Units.cells),
        checked in this order: canonical text, known ticker, no open order
        with its ref, units, funding; None when the text is a cancel or a
        modify (done here) or the order is rejected (said here).
        Figures that are the same for every account (a sell, a buy with a
        limit price) are kept for the text; the set is started afresh when
        full, so it follows prices that drift."""
        if text[:7] == "cancel ":     # a third of the orders: read as parse_canonical_order would
            m = _CANON_CANCEL(text)
            if m is not None:
                return self.cancel(seq, account, ref, m[1])
        try:
            o = parse_canonical_order(text)
        except MessageError as e:
            return self.say(f"rejected {seq} {account} {ref} {e}")
        verb = o[0]
        if verb == "cancel":
            return self.cancel(seq, account, ref, o[1])
        if verb == "modify":
            return self.modify(seq, account, ref, *o[1:])
        side_text, qty_text, ticker, kind, price_text, stop_text = o
        u = self._units.get(ticker) or self._unit(ticker)
        if u is None:
            return self.say(f"rejected {seq} {account} {ref} unknown ticker {ticker}")
        refs = self.refs
        if (account, ref) in refs:
            return self.say(f"rejected {seq} {account} {ref} duplicate ref {ref}: "
                            f"order {refs[account, ref]} is open")
        try:
            qty = u.qty(qty_text)
            price = u.price(price_text) if price_text else 0
            stop = u.price(stop_text) if stop_text else 0
        except UnitError as e:
            return self.say(f"rejected {seq} {account} {ref} {e}")
        if side_text == "buy":
            if kind not in _LIMIT_TYPES:        # the hold depends on the account's funds
                try:
                    hold, unit, cap = self.funding(f"{account}:{ticker}", u.inst, BUY, kind,
                                                   qty, price, stop)
                except Insufficient as e:
                    return self.say(f"rejected {seq} {account} {ref} {self._short(e)}")
                return ticker, BUY, kind, u.cur, qty, price, stop, hold, unit, cap, u.buy_cells
            n = price * u.multiplier            # funding() for a limit price, inlined
            unit = n - (-n * u.rate // PPM)
            f = (ticker, BUY, kind, u.cur, qty, price, stop, qty * unit, unit, 0, u.buy_cells)
        else:
            f = (ticker, SELL, kind, ticker, qty, price, stop, qty, 1, 0, u.sell_cells)
        if len(self._figures) >= _FIGURES_LIMIT:
            self._figures = {}
        self._figures[text] = f
        return f

    def funding(self, acct, inst, side, kind, qty, price, stop):
        """What a new order holds: ``(hold, unit, cap)``.  O(1)."""
        if side == SELL:
            return qty, 1, 0
        rate = max(inst.maker_ppm, inst.taker_ppm)
        if kind in (book.LIMIT, book.IOC, book.FOK, book.STOP_LIMIT):
            unit = self.unit_cost(inst, price, rate)
            return qty * unit, unit, 0
        if kind == book.MARKET:
            pool = self.ledger.available(acct, inst.currency.code)
        else:
            pool = self.stop_pool(inst, qty, stop, rate)
        # cost <= multiplier * sum(price*qty) * (1 + taker rate) + one minor unit a lot
        cap = (pool - qty) * PPM // (inst.multiplier * (PPM + inst.taker_ppm))
        if cap <= 0:
            raise Insufficient(acct, inst.currency.code, pool + qty * inst.multiplier, pool)
        return pool, 0, cap

    @staticmethod
    def stop_pool(inst, qty: int, stop: int, rate: int) -> int:
        return -(-qty * Specialist.unit_cost(inst, stop, rate) * (PPM + STOP_COLLAR_PPM) // PPM)

    @staticmethod
    def unit_cost(inst, price: int, rate: int) -> int:
        """Most one lot at *price* can cost: notional plus its fee rounded up.
        Fees of split fills never exceed the per-lot fee times the lots."""
        n = inst.notional(price, 1)
        return n + fee(n, rate)

    def cancel(self, seq, account, ref, target):
        oid = self.refs.get((account, target))
        if oid is None:
            return self.say(f"rejected {seq} {account} {ref} cancel {target}: "
                            f"no open order {target} of {account}")
        if oid in self._kept:
            self._open(oid)
        engine = self.engine
        ev = engine.events
        engine.cancel(seq, oid, account)
        if len(ev) == 1:
            e = ev[0]
            if e[0] == "cancelled" and e[2] == oid:
                od = self.orders.pop(oid, None)
                if od is not None:
                    # The commonest outcome, as events() would write it and close it.
                    u = self._units.get(od.ticker) or _Units(self.registry.instruments[od.ticker], self.ledger)
                    q = e[3]
                    self.lines.append(f"cancelled {e[1]} {od.account} {od.ref} "
                                      f"{u.qty_texts.get(q) or u.qty_text(q)} {e[4]}")
                    self._gone(od)
                    ev.clear()
                    return
        self.events()

    def modify(self, seq, account, ref, target, qty_text, price_text, stop_text):
        oid = self.refs.get((account, target))
        if oid is None:
            return self.say(f"rejected {seq} {account} {ref} modify {target}: "
                            f"no open order {target} of {account}")
        od = self._open(oid)
        inst = self.registry.instruments[od.ticker]
        _, _, live_kind, _, rem, price, stop = self.engine.order(oid)
        resting = live_kind == book.LIMIT
        try:
            qty = inst.qty(qty_text) if qty_text else rem
            price = inst.price(price_text) if price_text else price
            stop = inst.price(stop_text) if stop_text else stop
        except UnitError as e:
            return self.say(f"rejected {seq} {account} {ref} {e}")
        if resting and stop_text:
            return self.say(f"rejected {seq} {account} {ref} modify {target}: "
                            f"the order is on the book; it has no stop to change")
        if not resting and price_text and od.kind != book.STOP_LIMIT:
            return self.say(f"rejected {seq} {account} {ref} modify {target}: "
                            f"a {od.kind} order has no limit price; change its stop")
        acct = f"{account}:{od.ticker}"
        rate = max(inst.maker_ppm, inst.taker_ppm)
        if od.side == SELL:
            new_hold, unit = qty, 1
        elif od.unit:
            unit = self.unit_cost(inst, price, rate)
            new_hold = qty * unit
        else:
            new_hold, unit = max(od.hold, self.stop_pool(inst, qty, stop, rate)), 0
        extra = max(new_hold - od.hold, 0)
        try:
            if extra:
                self.ledger.hold(acct, inst.currency.code if od.side == BUY else od.ticker, extra)
        except Insufficient as e:
            return self.say(f"rejected {seq} {account} {ref} {self._short(e)}")
        self._pending = (oid, new_hold, unit, extra)
        if resting:
            self.engine.modify(seq, oid, account, qty, price)
        else:
            self.engine.modify(seq, oid, account, qty, stop,
                               price if od.kind == book.STOP_LIMIT else 0)
        self.events()
        self._pending = None

    def _short(self, e: Insufficient) -> str:
        return (f"insufficient funds: {e.account} needs {self._amount(e.asset, e.need)} "
                f"{e.asset}, has {self._amount(e.asset, e.available)} available")

    # -- events from the core ---------------------------------------------------
    def events(self) -> None:
        """Turn the core's events into report lines and settle them.  O(events)."""
        ev = self.engine.events
        if not ev:
            return
        orders = self.orders
        say = self.lines.append
        for e in ev:
            k = e[0]
            if k == "trade":
                self._settle(e, orders, say)
                continue
            oid = e[2]
            od = orders.get(oid) or self._open(oid)
            if od is None:                        # cannot happen: every oid is ours
                say(f"{k} {e[1]} - - order {oid}")
                continue
            if k == _NEW:
                say(f"accepted {e[1]} {od.account} {od.ref} {self._text}")
                continue
            u = self._units.get(od.ticker) or _Units(self.registry.instruments[od.ticker], self.ledger)
            if k == "cancelled":
                q = e[3]
                say(f"cancelled {e[1]} {od.account} {od.ref} "
                    f"{u.qty_texts.get(q) or u.qty_text(q)} {e[4]}")
                del orders[oid]
                self._gone(od)
                continue
            head = f"{k} {e[1]} {od.account} "
            if k == "rejected":
                if oid == e[1]:                   # a new order: nothing of it stays
                    say(f"{head}{od.ref} {e[3]}")
                    self._close(oid)
                else:                             # a cancel or modify of order oid
                    say(f"{head}{od.ref} {e[3]}")
                    if self._pending and self._pending[0] == oid and self._pending[3]:
                        self.ledger.release_cell(od.cell, self._pending[3])
            elif k == "triggered":
                say(f"{head}{od.ref} stop {u.price_text(e[3])} last {u.price_text(e[4])}")
            elif k == "modified":
                _, seq, _, qty, price, stop, kept = e[:7]
                od.rem = qty
                if self._pending and self._pending[0] == oid:
                    _, new_hold, unit, _ = self._pending
                    if new_hold < od.hold:
                        self.ledger.release_cell(od.cell, od.hold - new_hold)
                    od.hold, od.unit = new_hold, unit
                    self._pending = None
                what = f"qty {u.qty_text(qty)}"
                if price:
                    what += f" price {u.price_text(price)}"
                if stop:
                    what += f" stop {u.price_text(stop)}"
                say(f"{head}{od.ref} {what} priority {'kept' if kept else 'lost'}")
        del ev[:]

    def trade(self, e) -> None:
        """Settle one fill: the buyer pays notional and fee out of its hold,
        the seller delivers out of its hold, the fees go to ``fees:TICKER``.  O(1)."""
        self._settle(e, self.orders, self.lines.append)

    def _settle(self, e, orders, say) -> None:
        """:meth:`trade` with what the events loop already holds."""
        _, seq, ticker, price, qty, maker, taker, maker_owner, taker_owner, taker_side = e[:10]
        u = self._units.get(ticker) or _Units(self.registry.instruments[ticker], self.ledger)
        cur = u.cur
        n = price * qty * u.multiplier
        maker_fee, taker_fee = -(-n * u.maker // PPM), -(-n * u.taker // PPM)
        if taker_side == BUY:
            buy, sell = taker, maker
            buy_fee, sell_fee = taker_fee, maker_fee
        else:
            buy, sell = maker, taker
            buy_fee, sell_fee = maker_fee, taker_fee
        try:
            b, s = orders[buy], orders[sell]
        except KeyError:                          # a maker kept as its checkpoint line
            b, s = self._open(buy), self._open(sell)
        cost = n + buy_fee
        part = qty * b.unit if b.unit else cost
        ledger = self.ledger
        ledger.settle_cells(b.cell, b.gcell, s.cell, s.gcell or ledger.cell(s.acct, cur), u.fees,
                            qty, part, cost, n - sell_fee, buy_fee + sell_fee)
        b.hold -= part
        s.hold -= qty
        amount_texts = u.amount_texts
        say(
            f"trade {seq} {ticker} {u.qty_texts.get(qty) or u.qty_text(qty)} at "
            f"{u.price_texts.get(price) or u.price_text(price)} {cur} "
            f"buyer {b.account} {b.ref} seller {s.account} {s.ref} "
            f"maker {'sell' if taker_side == BUY else 'buy'} "
            f"fees {amount_texts.get(buy_fee) or u.amount_text(buy_fee)} "
            f"{amount_texts.get(sell_fee) or u.amount_text(sell_fee)}")
        b.rem -= qty
        if b.rem == 0:
            self._gone(orders.pop(buy))
        s.rem -= qty
        if s.rem == 0:
            self._gone(orders.pop(sell))

    def _open(self, oid: int) -> Order | None:
        """The open order *oid* (None if there is none), read from its
        checkpoint line if this run has not touched it yet.  O(1)."""
        od = self.orders.get(oid)
        if od is None:
            line = self._kept.pop(oid, None)
            if line is not None:
                od = self.orders[oid] = self._read_order(line.split(" "), self._kept_currency)
        return od

    def open_orders(self) -> dict[int, Order]:
        """Every open order by its id.  O(open orders)."""
        for oid in list(self._kept):
            self._open(oid)
        return self.orders

    def _close(self, oid: int) -> None:
        """The order has left the book: give back what it did not spend.  O(1)."""
        self._gone(self.orders.pop(oid))

    def _gone(self, od: Order) -> None:
        """:meth:`_close` of an order already taken out of ``orders``."""
        self.refs.pop(od.rkey, None)
        if od.hold:
            self.ledger.release_cell(od.cell, od.hold)

    # -- transfers --------------------------------------------------------------
    def transfer_out(self, seq: int, account: str, text: str, ref: str = "-") -> None:
        try:
            t = kinds.parse("transfer", text)
            amount = self.registry.amount(t.asset, t.amount)
        except (message.MessageError, UnitError, KeyError) as e:
            return self.say(f"rejected {seq} {account} {ref} {e}")
        if self.rules < 2 and not self.accounts.exists(t.to, self.registry):
            return self.say(f"rejected {seq} {account} {ref} unknown account {t.to}")
        try:
            self.ledger.debit(account, t.asset, amount)
        except Insufficient as e:
            return self.say(f"rejected {seq} {account} {ref} insufficient funds: {account} needs "
                            f"{self._amount(t.asset, e.need)} {t.asset}, has "
                            f"{self._amount(t.asset, e.available)} available")
        if self._mine(t.to):
            self.ledger.credit(t.to, t.asset, amount)
        self.say(f"transferred {seq} {account} {t.to} {self._amount(t.asset, amount)} {t.asset}")

    def credits(self, reporter: str, text: str, seq: int = 0) -> None:
        """Credit transfers into our trading accounts reported by other
        filters (record *seq*, their report).  Under rules 2 an asset a
        trading account does not hold (a transfer the notary took before the
        pit moved to rules 2) goes back at once to the account's owner."""
        for src, dst, amount, asset in parse_transferred(text):
            if self._mine(dst) and not self._mine(src) and report_owns(reporter, src):
                if self.rules >= 2 and not self._holds(dst, asset):
                    self.say(f"transferred {seq} {dst} {self._owner(dst)} {amount} {asset}")
                    continue
                self.ledger.credit(dst, asset, self.registry.amount(asset, amount))

    def switch(self, seq: int, rules: int) -> None:
        """Record *seq* moves the pit to *rules* (pit.kinds.rules).  Rules 2:
        the notary refuses a transfer to an account that does not exist and
        any asset but T and T's currency into or out of a trading account
        X:T, so this specialist keeps no member and no other specialist's
        instrument; what its trading accounts hold of other assets goes
        back to their owners (``transferred SEQ X:T X AMOUNT ASSET``; those
        of ``fees:T`` to ``operator``).  O(its ledger + instruments)."""
        if rules <= self.rules:
            return
        self.rules = rules
        if rules < 2:
            return
        for acct, asset, bal, held in self.ledger.accounts():
            if held == 0 and bal > 0 and not self._holds(acct, asset):
                self.ledger.debit(acct, asset, bal)
                self.say(f"transferred {seq} {acct} {self._owner(acct)} "
                         f"{self._amount(asset, bal)} {asset}")
        self.accounts = Accounts()
        instruments = self.registry.instruments
        for t in [t for t in (*dict.keys(instruments), *instruments.lazy) if t not in self.serves]:
            instruments.lazy.pop(t, None)
            dict.pop(instruments, t, None)
        self._refresh_units()

    def _holds(self, acct: str, asset: str) -> bool:
        """May trading account *acct* (X:T, T ours) hold *asset* under rules 2: T or T's currency?"""
        t = acct.rpartition(":")[2]
        inst = self.registry.instruments.get(t)
        return asset == t or (inst is not None and asset == inst.currency.code)

    @staticmethod
    def _owner(acct: str) -> str:
        """The plain account a trading account's foreign assets go back to."""
        base = acct.rpartition(":")[0]
        return "operator" if base == "fees" else base

    def _mine(self, account: str) -> bool:
        base, _, t = account.rpartition(":")
        return bool(base) and t in self.serves

    def _amount(self, asset: str, n: int) -> str:
        return amount_text(self.registry, asset, n)

    # -- checkpoint -------------------------------------------------------------
    def state(self) -> list[str]:
        lines = self.registry.state() + self.accounts.state()
        if self.rules > 1:
            lines.insert(0, f"rules {self.rules}")
        for acct, asset, bal, held in self.ledger.accounts():
            lines.append(f"balance {acct} {asset} {bal} {held}")
        texts = dict(self._kept)              # untouched: the lines they were read from
        for oid, od in self.orders.items():
            texts[oid] = od.line(oid)
        lines += [texts[oid] for oid in sorted(texts)]
        lines.append("book")
        lines.extend(bookstate.write(self.engine).rstrip("\n").split("\n"))
        return lines

    def restore(self, lines: list[str]) -> None:
        """Inverse of :meth:`state`.  O(lines)."""
        try:
            book_at = lines.index("book")
        except ValueError:
            book_at = None
        self._restore_head(lines if book_at is None else lines[:book_at])
        if book_at is None:
            raise ValueError("no 'book' section")
        self.engine = bookstate.read("\n".join(lines[book_at + 1:]) + "\n")
        self._refresh_units()

    def restore_text(self, text: str, start: int = 0) -> None:
        """:meth:`restore` of the state ``text[start:]``: the book section
        (half of it) is read by the matching core in place, not split into
        lines and joined again."""
        if text.startswith("book\n", start):
            book = start                      # where the 'book' line starts
        else:
            book = text.find("\nbook\n", start) + 1
            if not book:                      # no 'book' line, or only as the last
                return super().restore_text(text, start)
        # the instrument lines of the whole pit, kept as text: read when used
        head = self.registry.take_instruments(text[start:book]) if book > start else ""
        head = self.accounts.take_block(head)   # the members' lines too: read when used
        self._restore_head(head[:-1].split("\n") if head else [])
        if text.endswith("\n") and len(text) > book + 5:
            self.engine = bookstate.read(text, book + 5)
        else:                                 # as restore() would join its lines
            self.engine = bookstate.read(text[book + 5:] + "\n")
        self._refresh_units()

    def _restore_head(self, lines: list[str]) -> None:
        """The state's lines before its book section.  The order lines
        (nearly all of them) are checked with one pattern and kept as they
        are, each read only when the run touches its order (:meth:`_open`)
        and written back unchanged by :meth:`state` if it does not: a short
        run touches a few of thousands.  Order lines not all exactly as
        :meth:`state` writes them are read one by one."""
        cell = self.ledger.cell
        currency = None           # ticker -> currency code, once the registry is read
        kept = False              # the order lines were tried as one block
        for i, line in enumerate(lines):
            w = line.split(" ")
            kind = w[0]
            if kind == "order":
                if not kept:
                    kept = True
                    if self._keep_orders(lines, i):
                        break
                oid = int(w[1])
                if currency is None and w[5] == "buy":    # it holds the quote currency
                    currency = self._currencies()
                try:
                    od = self._read_order(w, currency)
                except KeyError:
                    raise ValueError(f"line {i + 5}: order {oid} for {w[4]} before "
                                     f"its instrument") from None
                self.orders[oid] = od
                self.refs[od.rkey] = oid
            elif kind == "balance":
                c = cell(w[1], w[2])
                c.balance = int(w[3])
                if int(w[4]):
                    c.held = int(w[4])
            elif kind == "rules" and i == 0 and len(w) == 2 and w[1].isdigit() and int(w[1]) > 1:
                self.rules = int(w[1])
            elif not (self.registry.restore_line(line) or self.accounts.restore_line(line)):
                raise ValueError(f"line {i + 5}: unexpected {line[:40]!r}")

    def _currencies(self) -> dict[str, str]:
        """Ticker -> currency code of our tickers that have an instrument.
        O(our tickers); with a range, O(instruments) comparisons of their
        names (the instruments themselves are read for ours only)."""
        instruments = self.registry.instruments
        if self.serves.finite:
            mine = self.tickers
        else:
            serves = self.serves
            mine = [t for t in (*dict.keys(instruments), *instruments.lazy) if t in serves]
        return {t: instruments[t].currency.code for t in mine if t in instruments}

    def _read_order(self, w: list[str], currency: dict[str, str] | None) -> Order:
        """The order of a checkpoint line split into words; a buy holds the
        currency of its ticker in *currency* (KeyError if none)."""
        account, ref, ticker = w[2], w[3], w[4]
        acct = f"{account}:{ticker}"
        cell = self.ledger.cell
        if w[5] == "buy":
            side, hold, gets = BUY, cell(acct, currency[ticker]), cell(acct, ticker)
        else:                           # (a sell's currency may not be known yet: see _settle)
            cur = currency.get(ticker) if currency else None
            side, hold, gets = SELL, cell(acct, ticker), cell(acct, cur) if cur else None
        return Order(account, ref, ticker, side, w[6], int(w[7]), int(w[8]), int(w[9]),
                     acct, hold, gets, (account, ref))

    def prepare(self) -> None:
        """Compile the patterns a checkpoint is read with (Filter.prepare):
        `pit replay`, which makes a specialist for its name, reads none."""
        if self._order_lines is None:
            self._order_lines = _order_lines()
        bookstate.prepare()

    def _keep_orders(self, lines: list[str], start: int) -> bool:
        """Keep ``lines[start:]`` (the rest of the state before its book) as
        order lines read later (:meth:`_open`), if every one is exactly what
        :meth:`state` writes for one of our tickers and the registry read
        so far has all of their instruments; else keep nothing.  Whether
        they were kept.  O(lines), in a few C loops."""
        if self.serves.finite:
            currency = self._currencies()
            if not currency.keys() >= set(self.tickers):
                return False
        block = lines[start:]
        if self._order_lines is None:
            self.prepare()
        found = self._order_lines.findall("\n".join(block))
        if len(found) != len(block):
            return False
        oids, accounts, refs, tickers = zip(*found)
        used = set(tickers)
        if not self.serves.finite:          # the instruments of the orders' tickers only
            instruments, serves = self.registry.instruments, self.serves
            if not all(t in serves and t in instruments for t in used):
                return False
            currency = {t: instruments[t].currency.code for t in used}
        if not currency.keys() >= used:
            return False
        oids = list(map(int, oids))
        self.refs.update(zip(zip(accounts, refs), oids))
        self._kept.update(zip(oids, block))
        self._kept_currency = currency
        return True

def main(argv=None) -> int:
    return filter_main(Specialist, argv)


if __name__ == "__main__":
    sys.exit(main())
