"""The matching core: order books for many tickers, matching, stops, events
(an engine's checkpoint text is ``pit.bookstate``: ``write(engine)``, ``read(text)``).

Integers only: prices in ticks, quantities in lots, order ids are the notary
sequence numbers of the messages that placed the orders, owners are account
names (strings without whitespace).  The caller turns decimal text into these
integers (``pit.units``) and prints decimals from the event tuples.

Data layout (chosen for speed; see docs/pit-book.md and ``python -m bench.core``):

* a resting order is one small list ``[qty, oid, owner, price, half]``, found
  by id in ``Engine._orders``;
* a price level is ``[total, deque of those lists in time priority]``; the
  total (open lots at that price) is kept up to date by every fill, cancel
  and modify, so ``level_qty`` is O(1);
* a cancelled order is marked dead (``qty = 0``) and left where it is (lazy
  cancel, O(1)); dead orders are dropped when they reach the front of their
  level, and all of them at once when they outnumber the live ones;
* each half-book (bids or asks) keeps ``{price: level}`` plus a heap of level
  keys (``-price`` for bids).  A level whose total is 0 stays in the heap
  until it reaches the top, where matching or a market-data query drops it.

Every operation appends event tuples to ``Engine.events`` (a plain list the
caller drains); ``format_event`` gives each one canonical text line.  An
accepted order's event is its NEW message tuple: in a batch, the tuple given.
"""

from __future__ import annotations

import gc
from collections import deque
from heapq import heapify, heappop, heappush
from operator import itemgetter

__all__ = [
    "Engine", "CheckpointError", "format_event",
    "BUY", "SELL", "LIMIT", "MARKET", "IOC", "FOK", "STOP_LOSS", "STOP_LIMIT", "TAKE_PROFIT",
    "NEW", "CANCEL", "MODIFY", "KINDS", "STOPS", "fires_up",
]

BUY, SELL = "buy", "sell"
LIMIT, MARKET, IOC, FOK = "limit", "market", "ioc", "fok"
STOP_LOSS, STOP_LIMIT, TAKE_PROFIT = "stop-loss", "stop-limit", "take-profit"
KINDS = (LIMIT, MARKET, IOC, FOK, STOP_LOSS, STOP_LIMIT, TAKE_PROFIT)
NEW, CANCEL, MODIFY = "new", "cancel", "modify"      # tuple[0] of a batch message

_PRICED = (LIMIT, IOC, FOK)                 # kinds that need a limit price and no stop
STOPS = (STOP_LOSS, STOP_LIMIT, TAKE_PROFIT)
_CAPPED = (MARKET, STOP_LOSS, TAKE_PROFIT)  # market-type kinds: a buy may carry a cap
# What the batch loop's book at hand is the book of before there is one: no
# caller's ticker (None included) is this object.
_NO_TICKER = object()
# Dead (cancelled) orders may exceed the live ones by this many before all
# levels are compacted: bounds memory, and keeps compaction amortised O(1).
_DEAD_SLACK = 50_000


class CheckpointError(ValueError):
    """Checkpoint text that does not parse; the message names the line."""


class _Half:
    """One side of one book: ``{price: level}`` and a heap of keys.  A level is
    ``[total, deque of orders]``: *total* is the open quantity of its orders,
    kept up to date by every fill, cancel and modify so market data reads it in
    O(1) (a two-item list: the cheapest mutable pair for CPython to index)."""

    __slots__ = ("levels", "heap", "side", "ticker", "is_bid")

    def __init__(self, ticker: str, side: str):
        self.levels: dict = {}
        self.heap: list = []          # bids: -price, asks: price; one key per level
        self.side = side
        self.ticker = ticker
        self.is_bid = side == BUY


class _Book:
    """One ticker: two halves, the last trade price, two stop heaps."""

    __slots__ = ("ticker", "bids", "asks", "last", "up", "down")

    def __init__(self, ticker: str):
        self.ticker = ticker
        self.bids = _Half(ticker, BUY)
        self.asks = _Half(ticker, SELL)
        self.last = None              # last trade price; None until the first trade
        self.up: list = []            # (stop, prio, oid): fires when last >= stop
        self.down: list = []          # (-stop, prio, oid): fires when last <= stop


def _top(half: _Half):
    """Best price of *half* with a live order, or None; drops the dead levels it
    passes on the way.  Amortised O(log L)."""
    heap, levels = half.heap, half.levels
    sign = -1 if half.is_bid else 1
    while heap:
        price = heap[0] * sign
        if levels[price][0]:
            return price
        heappop(heap)
        del levels[price]
    return None


def _add_level(half: _Half, price: int, rec: list) -> None:
    """Open the level at *price* with its first order.  O(log L)."""
    half.levels[price] = [rec[0], deque((rec,))]
    heappush(half.heap, -price if half.is_bid else price)


def _match(append, orders, book, side, seq, oid, owner, qty, price):
    """Fill up to *qty* lots of an order limited at *price* (0: no limit, a market
    order) against the opposite side: best price first, FIFO in a level, at the
    maker's price.  An own resting order met on the way is cancelled (self-trade)
    and matching goes on.  Returns the unfilled qty.  O(F + L log L) for F makers
    passed over L levels.

    The one-at-a-time calls and triggered stops match here, a plain function of
    its arguments (no attribute look-ups on the engine); ``Engine._run`` has the
    same loop inlined (the tests hold both to the same events).  Only a capped
    market buy takes another path (``Engine._take_capped``)."""
    ticker = book.ticker
    if side == BUY:
        ohalf, sign, bound = book.asks, 1, price
    else:
        ohalf, sign, bound = book.bids, -1, -price
    heap, levels = ohalf.heap, ohalf.levels
    # (``x == 0`` where a short jump follows, a truth test where a long one
    # does: CPython 3.11 runs the first inline only in the short case)
    while heap and (heap[0] <= bound or not price):
        lp = heap[0] * sign
        level = levels[lp]
        total, q = level
        while total:                              # so a live order is in q
            rec = q.popleft()                     # (put back if it is only part filled)
            rq = rec[0]
            if rq == 0:                           # cancelled earlier: dropped
                continue
            mown = rec[2]
            if mown == owner:
                total -= rq
                rec[0] = 0
                del orders[rec[1]]
                append(("cancelled", seq, rec[1], rq, "self-trade", owner, ticker, ohalf.side, lp))
                continue
            book.last = lp
            if rq > qty:
                rec[0] = rq - qty
                q.appendleft(rec)
                level[0] = total - qty
                append(("trade", seq, ticker, lp, qty, rec[1], oid, mown, owner, side))
                return 0
            total -= rq
            del orders[rec[1]]
            append(("trade", seq, ticker, lp, rq, rec[1], oid, mown, owner, side))
            qty -= rq
            if qty == 0:
                break
        if total:                                 # filled, with lots left at this price
            level[0] = total
            return 0
        heappop(heap)                             # nothing open here: the level goes
        del levels[lp]
        if qty == 0:
            return 0
    return qty


# A triggered stop's place in line: the seq that placed or last repriced it, then its id.
_trigger_priority = itemgetter(9, 1)


def fires_up(side: str, kind: str) -> bool:
    """True if the stop fires when the price rises to it (last >= stop)."""
    return (side == BUY) != (kind == TAKE_PROFIT)


class Engine:
    """A multi-ticker matching engine.  See docs/pit-book.md for the rules."""

    def __init__(self):
        self.events: list = []
        self._books: dict = {}
        self._orders: dict = {}       # oid -> resting order list [qty, oid, owner, price, half]
        self._stops: dict = {}        # oid -> [qty, oid, owner, stop, book, side, kind, limit, cap, prio]
        self._last_oid = 0            # order ids must increase: they are sequence numbers
        self._dead = 0                # cancelled orders still sitting in a level

    # ------------------------------------------------------------------ books
    def add_book(self, ticker: str) -> None:
        """Open an empty book for *ticker*.  O(1).  ValueError if it exists or is malformed."""
        if not isinstance(ticker, str) or not ticker or any(c.isspace() for c in ticker):
            raise ValueError(f"ticker {ticker!r} must be a non-empty word")
        if ticker in self._books:
            raise ValueError(f"book {ticker} already exists")
        self._books[ticker] = _Book(ticker)

    def tickers(self) -> list:
        """Tickers with a book, sorted.  O(B log B)."""
        return sorted(self._books)

    def has_book(self, ticker: str) -> bool:
        """Whether *ticker* has a book.  O(1)."""
        return ticker in self._books

    # ------------------------------------------------------------ market data
    def best_bid(self, ticker: str):
        """Best bid price in ticks, or None.  Amortised O(1) (drops dead levels at the top)."""
        return _top(self._books[ticker].bids)

    def best_ask(self, ticker: str):
        """Best ask price in ticks, or None.  Amortised O(1) (drops dead levels at the top)."""
        return _top(self._books[ticker].asks)

    def level_qty(self, ticker: str, side: str, price: int) -> int:
        """Total resting lots on *side* at *price*.  O(1)."""
        book = self._books[ticker]
        level = (book.bids if side == BUY else book.asks).levels.get(price)
        return level[0] if level is not None else 0

    def depth(self, ticker: str, side: str, n: int) -> list:
        """[(price, qty, order_count), ...] for the *n* best levels, best first.

        O(n log n + orders on those levels, for their counts): walks the heap
        tree best first, skipping levels whose orders are all cancelled.
        """
        book = self._books[ticker]
        half = book.bids if side == BUY else book.asks
        heap, levels, sign = half.heap, half.levels, (-1 if half.is_bid else 1)
        out, frontier = [], ([(heap[0], 0)] if heap else [])
        while frontier and len(out) < n:
            key, i = heappop(frontier)
            total, q = levels[key * sign]
            if total:
                out.append((key * sign, total, sum([1 for rec in q if rec[0]])))
            for j in (2 * i + 1, 2 * i + 2):
                if j < len(heap):
                    heappush(frontier, (heap[j], j))
        return out

    def last_price(self, ticker: str):
        """Price of the last trade in *ticker*, or None.  O(1)."""
        return self._books[ticker].last

    def order(self, oid: int):
        """(ticker, side, kind, owner, remaining qty, price, stop) of a resting or
        untriggered order, else None.  O(1).  Resting orders report kind ``limit``
        (a triggered stop-limit rests as a limit order)."""
        rec = self._orders.get(oid)
        if rec is not None:
            half = rec[4]
            return (half.ticker, half.side, LIMIT, rec[2], rec[0], rec[3], 0)
        s = self._stops.get(oid)
        if s is not None:
            return (s[4].ticker, s[5], s[6], s[2], s[0], s[7], s[3])
        return None

    # ------------------------------------------------------------- operations
    def new(self, seq, oid, owner, ticker, side, kind, qty, price=0, stop=0, cap=0):
        """Place an order.  O(1) if it rests without crossing (O(log L) if it opens a
        level); O(F + L log L) if it fills F makers across L levels; stops add
        O(S log S) for the S stops they trigger.  FOK adds O(crossed orders)."""
        book = self._books.get(ticker)
        # Fast path: a valid limit or IOC order.  Same effect as _new_checked (tested).
        if (book is None or not (kind == LIMIT or kind == IOC) or not oid > self._last_oid
                or not qty > 0 or not price > 0 or stop or cap):
            return self._new_checked(seq, oid, owner, ticker, side, kind, qty, price, stop, cap)
        crosses = False
        if side == BUY:
            heap = book.asks.heap
            if heap and heap[0] <= price:
                crosses = True
            half = book.bids
        elif side == SELL:
            heap = book.bids.heap
            if heap and -heap[0] >= price:
                crosses = True
            half = book.asks
        else:
            return self._new_checked(seq, oid, owner, ticker, side, kind, qty, price, stop, cap)
        self._last_oid = oid
        events = self.events
        events.append((NEW, seq, oid, owner, ticker, side, kind, qty, price, stop, cap))
        if crosses:
            return self._cross(seq, oid, owner, book, side, kind, qty, price)
        # the common case, straight through: nothing to match
        if kind == IOC:
            events.append(("cancelled", seq, oid, qty, IOC, owner, ticker, side, price))
            return None
        rec = [qty, oid, owner, price, half]           # _rest, inlined
        self._orders[oid] = rec
        level = half.levels.get(price)
        if level is None:
            _add_level(half, price, rec)
        else:
            level[1].append(rec)
            level[0] += qty
        return None

    def cancel(self, seq, oid, owner):
        """Cancel a resting or untriggered order.  O(1) amortised (lazy removal)."""
        orders = self._orders
        rec = orders.pop(oid, None)
        if rec is None:
            return self._cancel_other(seq, oid, owner, None)
        qty, _, rowner, price, half = rec
        if rowner != owner:
            orders[oid] = rec                     # not the owner's: it stays
            return self._cancel_other(seq, oid, owner, rec)
        self.events.append(("cancelled", seq, oid, qty, "cancel", owner, half.ticker, half.side, price))
        half.levels[price][0] -= qty
        rec[0] = 0
        dead = self._dead = self._dead + 1
        if dead > _DEAD_SLACK and dead > len(orders) + _DEAD_SLACK:
            self._compact()
        return None

    def modify(self, seq, oid, owner, qty, price, limit=0):
        """Change an order's open quantity and price.

        Resting order: *qty* is the new open quantity, *price* the new limit.  A pure
        quantity decrease (or no change) keeps time priority; anything else is a
        cancel plus re-insert at the back of the new level (and matches if it now
        crosses).  Untriggered stop: *price* is the new stop; for a stop-limit,
        *limit* is the new limit price (0 keeps the old one).  O(1) for a decrease,
        else as ``new``.
        """
        rec = self._orders.get(oid)
        if rec is None or rec[2] != owner or limit or not qty > 0 or not price > 0:
            reason = self._modify_problem(oid, owner, qty, price, limit, rec)
            if reason:
                self.events.append(("rejected", seq, oid, reason))
                return None
            if rec is None:
                return self._modify_stop(seq, oid, qty, price, limit)
        half = rec[4]
        if price == rec[3] and qty <= rec[0]:
            half.levels[price][0] -= rec[0] - qty
            rec[0] = qty
            self.events.append(("modified", seq, oid, qty, price, 0, True, owner, half.ticker, half.side))
            return None
        # loses priority: the old entry dies in place, a new one goes to the back
        del self._orders[oid]
        half.levels[rec[3]][0] -= rec[0]
        rec[0] = 0
        self._dead += 1
        self.events.append(("modified", seq, oid, qty, price, 0, False, owner, half.ticker, half.side))
        book = self._books[half.ticker]
        # as new(): a cross is tested for with `if` statements, and an order
        # that does not cross is rested in place (_rest, inlined)
        crosses = False
        if half.is_bid:
            heap = book.asks.heap
            if heap and heap[0] <= price:
                crosses = True
        else:
            heap = book.bids.heap
            if heap and -heap[0] >= price:
                crosses = True
        if crosses:
            last = book.last
            self._limit(seq, oid, owner, book, half.side, qty, price)
            if book.last != last:
                self._fire(book, seq)
        else:
            rec = [qty, oid, owner, price, half]
            self._orders[oid] = rec
            level = half.levels.get(price)
            if level is None:
                _add_level(half, price, rec)
            else:
                level[1].append(rec)
                level[0] += qty
        if self._dead > len(self._orders) + _DEAD_SLACK:
            self._compact()
        return None

    def run(self, batch) -> None:
        """Apply messages in order; same events as one call each.  Layouts:

        ``(NEW, seq, oid, owner, ticker, side, kind, qty, price, stop, cap)``,
        ``(CANCEL, seq, oid, owner)``, ``(MODIFY, seq, oid, owner, qty, price)``
        or ``(MODIFY, seq, oid, owner, qty, price, limit)``, each a tuple: an
        accepted NEW message is appended to the events as it is, as its own
        acceptance event.  O(total work).
        """
        # The engine makes no reference cycles (every dead order is freed by
        # reference counting), so the cyclic garbage collector has nothing to
        # find here; with a million resting orders its full passes would cost
        # more than the matching.  It is paused for the batch and restored.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            self._run(batch)
        finally:
            if paused:
                gc.enable()

    def _run(self, batch, *, NEW=NEW, CANCEL=CANCEL, MODIFY=MODIFY, LIMIT=LIMIT, IOC=IOC,
             MARKET=MARKET, BUY=BUY, SELL=SELL, heappop=heappop):
        # The common cases (a valid limit or IOC order, a cancel by the owner,
        # a modify of a resting order) are inlined here with everything bound
        # to locals: this loop is the hot path of every replay.  A new order and
        # a modify that loses priority share the placing code at the bottom of
        # the loop.  The fast tests are identity tests against the module's
        # constants (what callers pass); an equal string that is not the same
        # object, and everything else, goes through the same methods as
        # one-at-a-time calls, and the tests check that both give the same events.
        # The halves of the last ticker's book are kept in locals: a batch is
        # mostly one ticker.
        append = self.events.append
        books, orders, stops = self._books, self._orders, self._stops
        pop = orders.pop
        fire = self._fire
        new_checked, cancel_other = self._new_checked, self._cancel_other
        last_oid = self._last_oid
        dead = self._dead
        dead_limit = len(orders) + _DEAD_SLACK
        book = bids = asks = None
        cur = _NO_TICKER                # the ticker of the book at hand: none yet
        try:
            for m in batch:
                op = m[0]
                if op is NEW:
                    _, seq, oid, owner, ticker, side, kind, qty, price, stop, cap = m
                    if ticker is not cur and ticker in books:     # another book: bring it to hand
                        cur = ticker
                        book = books[ticker]
                        bids, asks = book.bids, book.asks
                    if (((kind is LIMIT or kind is IOC) and price > 0 or kind is MARKET and not price)
                            and oid > last_oid and qty > 0 and not stop and not cap and ticker is cur):
                        # its half, the other half, and how far it may fill (one
                        # assignment a line: four at once build and free a tuple)
                        if side is BUY:
                            half = bids
                            ohalf = asks
                            sign = 1
                            bound = price
                        elif side is SELL:
                            half = asks
                            ohalf = bids
                            sign = -1
                            bound = -price
                        else:
                            self._last_oid = last_oid
                            new_checked(seq, oid, owner, ticker, side, kind, qty, price, stop, cap)
                            last_oid = self._last_oid
                            continue
                    else:
                        self._last_oid = last_oid
                        new_checked(seq, oid, owner, ticker, side, kind, qty, price, stop, cap)
                        last_oid = self._last_oid
                        continue
                    last_oid = oid
                    append(m)                  # its acceptance: the message itself
                elif op is CANCEL:
                    _, seq, oid, owner = m
                    rec = pop(oid, None)
                    if rec is None:
                        if oid in stops:
                            cancel_other(seq, oid, owner, None)
                        else:
                            append(("rejected", seq, oid, "not resting"))
                        continue
                    qty, _, rowner, price, half = rec
                    if rowner != owner:
                        orders[oid] = rec          # not the owner's: it stays
                        cancel_other(seq, oid, owner, rec)
                        continue
                    append(("cancelled", seq, oid, qty, "cancel", owner, half.ticker, half.side, price))
                    half.levels[price][0] -= qty
                    rec[0] = 0
                    dead += 1
                    if dead > dead_limit:
                        self._compact()
                        dead, dead_limit = 0, len(orders) + _DEAD_SLACK
                    continue
                elif op is MODIFY and len(m) == 6:
                    _, seq, oid, owner, qty, price = m
                    rec = orders.get(oid)
                    if rec is None and oid not in stops:
                        append(("rejected", seq, oid, "not resting"))
                        continue
                    if rec is None or rec[2] != owner or not qty > 0 or not price > 0:
                        self._dead = dead
                        self.modify(seq, oid, owner, qty, price)
                        dead = self._dead
                        continue
                    half = rec[4]
                    if price == rec[3] and qty <= rec[0]:
                        half.levels[price][0] -= rec[0] - qty
                        rec[0] = qty
                        append(("modified", seq, oid, qty, price, 0, True, owner, half.ticker, half.side))
                        continue
                    # loses priority: the old entry dies in place, the order is placed again
                    del orders[oid]
                    half.levels[rec[3]][0] -= rec[0]
                    rec[0] = 0
                    dead += 1
                    side, cur = half.side, half.ticker
                    append(("modified", seq, oid, qty, price, 0, False, owner, cur, side))
                    book = books[cur]
                    bids, asks = book.bids, book.asks
                    if half is bids:
                        ohalf, sign, bound = asks, 1, price
                    else:
                        ohalf, sign, bound = bids, -1, -price
                    kind = LIMIT
                    if dead > dead_limit:
                        self._compact()
                        dead, dead_limit = 0, len(orders) + _DEAD_SLACK
                else:
                    self._last_oid, self._dead = last_oid, dead
                    self._one(m)
                    last_oid, dead = self._last_oid, self._dead
                    continue
                # place an accepted limit, IOC or (uncapped) market order: match what
                # crosses (the loop below is _match, inlined), then rest (limit) or
                # cancel (IOC, market) the rest, then fire the stops it triggered
                heap = ohalf.heap
                crossed = False
                if heap and (heap[0] <= bound or not price):
                    crossed = True
                    last = book.last
                    levels = ohalf.levels
                    while True:
                        lp = heap[0] * sign
                        level = levels[lp]
                        total, q = level
                        while total:                       # so a live order is in q
                            rec = q.popleft()              # (put back if it is only part filled)
                            rq = rec[0]
                            if rq == 0:                    # cancelled earlier: dropped
                                continue
                            mown = rec[2]
                            if mown == owner:              # self-trade: the resting order goes
                                total -= rq
                                rec[0] = 0
                                del orders[rec[1]]
                                append(("cancelled", seq, rec[1], rq, "self-trade", owner, cur,
                                        ohalf.side, lp))
                                continue
                            book.last = lp
                            if rq > qty:
                                rec[0] = rq - qty
                                q.appendleft(rec)
                                total -= qty
                                append(("trade", seq, cur, lp, qty, rec[1], oid, mown, owner, side))
                                qty = 0
                                break
                            total -= rq
                            del orders[rec[1]]
                            append(("trade", seq, cur, lp, rq, rec[1], oid, mown, owner, side))
                            qty -= rq
                            if qty == 0:
                                break
                        if total:                          # lots are left at this price
                            level[0] = total
                            break
                        heappop(heap)                      # nothing open here: the level goes
                        del levels[lp]
                        if qty == 0 or not heap or heap[0] > bound and price:
                            break
                if qty:
                    if kind is not LIMIT:
                        append(("cancelled", seq, oid, qty, kind, owner, cur, side, price))
                    else:
                        rec = [qty, oid, owner, price, half]
                        orders[oid] = rec
                        level = half.levels.get(price)
                        if level is None:
                            _add_level(half, price, rec)
                        else:
                            level[1].append(rec)
                            level[0] += qty
                if crossed and book.last != last:
                    up, down = book.up, book.down
                    if up and up[0][0] <= book.last or down and -down[0][0] >= book.last:
                        fire(book, seq)
        finally:
            self._last_oid = last_oid
            self._dead = dead
        if dead > len(orders) + _DEAD_SLACK:
            self._compact()

    def _one(self, m) -> None:
        """One batch message by the one-at-a-time methods (what the batch loop
        does not inline: a modify with a new limit, an operation named by an
        equal string that is not the module's constant, or a bad operation)."""
        op = m[0]
        if op == NEW:
            self.new(*m[1:])
        elif op == CANCEL:
            self.cancel(*m[1:])
        elif op == MODIFY:
            self.modify(*m[1:])
        else:
            raise ValueError(f"unknown operation {op!r} in batch message {m!r}")

    # -------------------------------------------------------------- internals
    def _compact(self) -> None:
        """Drop every dead order and every empty level.  O(N + L log L); run when
        dead orders outnumber live ones by _DEAD_SLACK, so amortised O(1) per cancel.
        Mutates the level dicts and heaps in place (the batch loop holds them)."""
        for book in self._books.values():
            for half in (book.bids, book.asks):
                levels = half.levels
                for price in list(levels):
                    q = levels[price][1]
                    live = [rec for rec in q if rec[0]]
                    if not live:
                        del levels[price]
                    elif len(live) < len(q):
                        q.clear()
                        q.extend(live)
                heap = half.heap
                heap[:] = [-p for p in levels] if half.is_bid else list(levels)
                heapify(heap)
        self._dead = 0

    def _new_checked(self, seq, oid, owner, ticker, side, kind, qty, price, stop, cap):
        """Every order kind, with a reason for each refusal."""
        ev = self.events
        book = self._books.get(ticker)
        reason = None
        if not isinstance(oid, int) or oid <= self._last_oid:
            reason = f"duplicate order id {oid} (order ids must increase; last was {self._last_oid})"
        elif book is None:
            reason = f"unknown ticker {ticker}"
        elif side != BUY and side != SELL:
            reason = f"side must be buy or sell, not {side!r}"
        elif kind not in KINDS:
            reason = f"unknown order kind {kind!r}"
        elif not isinstance(qty, int) or qty <= 0:
            reason = "quantity must be positive"
        elif kind in _PRICED or kind == STOP_LIMIT:
            if not isinstance(price, int) or price <= 0:
                reason = "price must be positive"
        elif price:
            reason = f"a {kind} order takes no limit price"
        if reason is None:
            if kind in STOPS:
                if not isinstance(stop, int) or stop <= 0:
                    reason = "stop price must be positive"
            elif stop:
                reason = f"a {kind} order takes no stop price"
        if reason is None and cap:
            if not isinstance(cap, int) or cap < 0:
                reason = "cap must not be negative"
            elif kind not in _CAPPED or side != BUY:
                reason = "a cap is only for market, stop-loss and take-profit buys"
        if reason is not None:
            ev.append(("rejected", seq, oid, reason))
            return None
        self._last_oid = oid
        ev.append((NEW, seq, oid, owner, ticker, side, kind, qty, price, stop, cap))
        last = book.last
        if kind == LIMIT:
            self._limit(seq, oid, owner, book, side, qty, price)
        elif kind == IOC or kind == MARKET:
            if cap:
                left, capped = self._take_capped(seq, oid, owner, book, side, qty, cap)
            else:
                left, capped = _match(ev.append, self._orders, book, side, seq, oid, owner, qty, price), False
            if left:
                ev.append(("cancelled", seq, oid, left, "cap" if capped else kind, owner, ticker, side, price))
        elif kind == FOK:
            if self._available(book, side, owner, price, qty) >= qty:
                _match(ev.append, self._orders, book, side, seq, oid, owner, qty, price)
            else:
                ev.append(("cancelled", seq, oid, qty, "fok", owner, ticker, side, price))
        else:
            prio = seq
            self._stops[oid] = [qty, oid, owner, stop, book, side, kind, price, cap, prio]
            if fires_up(side, kind):
                heappush(book.up, (stop, prio, oid))
            else:
                heappush(book.down, (-stop, prio, oid))
            if book.last is not None:
                self._fire(book, seq)
            return None
        if book.last != last:
            self._fire(book, seq)
        return None


    def _cross(self, seq, oid, owner, book, side, kind, qty, price):
        """A limit or IOC order that crosses on arrival: match, then rest (limit) or
        cancel (IOC) what is left, then fire the stops its trades triggered."""
        last = book.last
        qty = _match(self.events.append, self._orders, book, side, seq, oid, owner, qty, price)
        if qty:
            if kind == IOC:
                self.events.append(("cancelled", seq, oid, qty, IOC, owner, book.ticker, side, price))
            else:
                self._rest(book.bids if side == BUY else book.asks, oid, owner, qty, price)
        if book.last != last and (book.up or book.down):
            self._fire(book, seq)
        return None

    def _limit(self, seq, oid, owner, book, side, qty, price):
        """Match a limit order, then rest what is left.  O(F + L log L)."""
        qty = _match(self.events.append, self._orders, book, side, seq, oid, owner, qty, price)
        if qty:
            self._rest(book.bids if side == BUY else book.asks, oid, owner, qty, price)

    def _rest(self, half, oid, owner, qty, price):
        """Put an order at the back of its level.  O(1), O(log L) for a new level."""
        rec = [qty, oid, owner, price, half]
        self._orders[oid] = rec
        level = half.levels.get(price)
        if level is None:
            _add_level(half, price, rec)
        else:
            level[1].append(rec)
            level[0] += qty

    def _take_capped(self, seq, oid, owner, book, side, qty, cap):
        """A market buy with a cap: as ``_match`` with no limit, but stop before
        sum(price*qty) would exceed *cap*.  Returns (unfilled qty, stopped by
        cap).  O(F + L log L) for F makers, L levels."""
        append = self.events.append
        orders = self._orders
        ticker = book.ticker
        if side == BUY:
            half, sign = book.asks, 1
        else:
            half, sign = book.bids, -1
        heap, levels, mside = half.heap, half.levels, half.side
        capped = False
        budget = cap              # what is left of the cap (cap itself says "capped")
        while qty and heap:
            price = heap[0] * sign
            if not levels[price][0]:      # only cancelled orders here: not liquidity
                heappop(heap)
                del levels[price]
                continue
            want = qty
            room = budget // price
            if room < want:
                want = room
                if not want:
                    capped = True
                    break
            level = levels[price]
            q = level[1]
            took = 0
            while q and took < want:
                rec = q[0]
                rq = rec[0]
                if not rq:
                    q.popleft()
                    continue
                if rec[2] == owner:
                    q.popleft()
                    level[0] -= rq
                    rec[0] = 0
                    del orders[rec[1]]
                    append(("cancelled", seq, rec[1], rq, "self-trade", owner, ticker, mside, price))
                    continue
                fill = want - took
                if rq <= fill:
                    fill = rq
                    q.popleft()
                    del orders[rec[1]]
                else:
                    rec[0] = rq - fill
                took += fill
                append(("trade", seq, ticker, price, fill, rec[1], oid, rec[2], owner, side))
            if took:
                book.last = price
                qty -= took
                budget -= took * price
                level[0] -= took
            if not q:
                heappop(heap)
                del levels[price]
            elif qty:
                # orders are left at this price yet we stopped: the cap ran out here
                # (what is left of the budget is below this price, let alone a worse one)
                capped = True
                break
        return qty, capped

    def _available(self, book, side, owner, limit, qty):
        """Lots an order could fill now at *limit*, not counting its owner's own
        resting orders (they would be cancelled, not filled).  Stops counting at
        *qty*.  O(orders on the crossed levels)."""
        half = book.asks if side == BUY else book.bids
        total = 0
        for price, (_, q) in half.levels.items():
            if price <= limit if side == BUY else price >= limit:
                for rec in q:
                    if rec[0] and rec[2] != owner:
                        total += rec[0]
                if total >= qty:
                    break
        return total

    def _fire(self, book, seq):
        """Trigger and run stops until none is satisfied by the last price.

        Stops whose condition holds are triggered together (events in priority
        order: the seq that accepted them or last changed their price); then the
        lowest-priority-number triggered order runs fully, the last price is
        checked again (cascades), and so on.  O(S log S) for S stops triggered.
        """
        stops, ev = self._stops, self.events
        up, down = book.up, book.down
        pending = []
        while True:
            last = book.last
            fresh = []
            while up and up[0][0] <= last:
                _, prio, oid = heappop(up)
                s = stops.get(oid)
                if s is not None and s[9] == prio:
                    fresh.append(s)
            while down and -down[0][0] >= last:
                _, prio, oid = heappop(down)
                s = stops.get(oid)
                if s is not None and s[9] == prio:
                    fresh.append(s)
            if fresh:
                fresh.sort(key=_trigger_priority)
                for s in fresh:
                    del stops[s[1]]
                    ev.append(("triggered", seq, s[1], s[3], last, s[2], book.ticker, s[5], s[6]))
                    heappush(pending, (s[9], s[1], s))
            if not pending:
                return
            qty, oid, owner, _, _, side, kind, limit, cap, _ = heappop(pending)[2]
            if kind == STOP_LIMIT:
                self._limit(seq, oid, owner, book, side, qty, limit)
            else:
                if cap:
                    left, capped = self._take_capped(seq, oid, owner, book, side, qty, cap)
                else:
                    left, capped = _match(ev.append, self._orders, book, side, seq, oid, owner, qty, 0), False
                if left:
                    ev.append(("cancelled", seq, oid, left, "cap" if capped else "market",
                               owner, book.ticker, side, 0))

    def _cancel_other(self, seq, oid, owner, rec):
        """Cancel of an untriggered stop, or the rejection of a bad cancel."""
        s = self._stops.get(oid)
        if rec is None and s is not None and s[2] == owner:
            del self._stops[oid]   # its heap entry is skipped when it surfaces
            self.events.append(("cancelled", seq, oid, s[0], "cancel", owner, s[4].ticker, s[5], s[7]))
            return None
        if rec is None and s is None:
            reason = "not resting"
        else:
            reason = "not the owner"
        self.events.append(("rejected", seq, oid, reason))
        return None

    def _modify_problem(self, oid, owner, qty, price, limit, rec):
        """The reason a modify must be rejected, or None."""
        s = self._stops.get(oid) if rec is None else None
        if rec is None and s is None:
            return "not resting"
        if (rec or s)[2] != owner:
            return "not the owner"
        if not isinstance(qty, int) or qty <= 0:
            return "quantity must be positive"
        if not isinstance(price, int) or price <= 0:
            return "price must be positive" if rec is not None else "stop price must be positive"
        if not isinstance(limit, int) or limit < 0:
            return "limit price must be positive"
        if limit and (rec is not None or s[6] != STOP_LIMIT):
            return "only an untriggered stop-limit order takes a new limit price"
        return None

    def _modify_stop(self, seq, oid, qty, stop, limit):
        s = self._stops[oid]
        book, side, kind = s[4], s[5], s[6]
        limit = limit or s[7]
        kept = stop == s[3] and limit == s[7] and qty <= s[0]
        s[0], s[7] = qty, limit
        if not kept:
            s[3], s[9] = stop, seq
            if fires_up(side, kind):
                heappush(book.up, (stop, seq, oid))
            else:
                heappush(book.down, (-stop, seq, oid))
        self.events.append(("modified", seq, oid, qty, limit, stop, kept, s[2], book.ticker, side))
        if not kept and book.last is not None:
            self._fire(book, seq)


def format_event(e: tuple) -> str:
    """One canonical line of lowercase words and integers for an event tuple.  O(1).

    >>> format_event(("trade", 42, "ACME", 1250, 100, 17, 42, "bob", "alice", "buy"))
    'trade 42 ACME qty 100 price 1250 maker 17 bob taker 42 alice buy'
    """
    k = e[0]
    if k == "trade":
        _, seq, ticker, price, qty, moid, toid, mown, town, side = e
        return f"trade {seq} {ticker} qty {qty} price {price} maker {moid} {mown} taker {toid} {town} {side}"
    if k == NEW:                  # an accepted order: the tuple of its NEW message
        _, seq, oid, owner, ticker, side, kind, qty, price, stop, cap = e
        return (f"accepted {seq} oid {oid} {owner} {ticker} {side} {kind} qty {qty} "
                f"price {price} stop {stop} cap {cap}")
    if k == "cancelled":
        _, seq, oid, qty, reason, owner, ticker, side, price = e
        return f"cancelled {seq} oid {oid} qty {qty} {reason} {owner} {ticker} {side} price {price}"
    if k == "rejected":
        _, seq, oid, reason = e
        return f"rejected {seq} oid {oid} {reason}"
    if k == "triggered":
        _, seq, oid, stop, last, owner, ticker, side, kind = e
        return f"triggered {seq} oid {oid} {owner} {ticker} {side} {kind} stop {stop} last {last}"
    if k == "modified":
        _, seq, oid, qty, price, stop, kept, owner, ticker, side = e
        return (f"modified {seq} oid {oid} {owner} {ticker} {side} qty {qty} price {price} "
                f"stop {stop} priority {'kept' if kept else 'lost'}")
    raise ValueError(f"unknown event kind {k!r}")
