"""A deliberately simple reference model of pit.book: plain lists, linear scans.

Obviously correct rather than fast: every maker is found by scanning the whole
opposite side for the best (price, time) order.  The property tests feed the
same random streams to this model and to ``pit.book.Engine`` and demand
identical events, checkpoints and market data.
"""

from __future__ import annotations

from pit.book import (BUY, FOK, IOC, KINDS, LIMIT, MARKET, SELL, STOP_LIMIT, STOP_LOSS,
                      TAKE_PROFIT)

STOPS = (STOP_LOSS, STOP_LIMIT, TAKE_PROFIT)


class RefEngine:
    def __init__(self):
        self.events = []
        self.books = {}          # ticker -> {"orders": [dict], "last": int | None}
        self.stops = []          # dicts
        self.last_oid = 0
        self.clock = 0           # time priority of resting orders

    def add_book(self, ticker):
        self.books[ticker] = {"orders": [], "last": None}

    # ---------------------------------------------------------------- lookups
    def resting(self, oid):
        for b in self.books.values():
            for o in b["orders"]:
                if o["oid"] == oid:
                    return b, o
        return None, None

    def stop(self, oid):
        for s in self.stops:
            if s["oid"] == oid:
                return s
        return None

    def best_bid(self, t):
        ps = [o["price"] for o in self.books[t]["orders"] if o["side"] == BUY]
        return max(ps) if ps else None

    def best_ask(self, t):
        ps = [o["price"] for o in self.books[t]["orders"] if o["side"] == SELL]
        return min(ps) if ps else None

    def level_qty(self, t, side, price):
        return sum(o["qty"] for o in self.books[t]["orders"] if o["side"] == side and o["price"] == price)

    def depth(self, t, side, n):
        prices = sorted({o["price"] for o in self.books[t]["orders"] if o["side"] == side},
                        reverse=side == BUY)[:n]
        return [(p, self.level_qty(t, side, p),
                 sum(1 for o in self.books[t]["orders"] if o["side"] == side and o["price"] == p))
                for p in prices]

    # ------------------------------------------------------------- operations
    def new(self, seq, oid, owner, ticker, side, kind, qty, price=0, stop=0, cap=0):
        reason = None
        if oid <= self.last_oid:
            reason = f"duplicate order id {oid} (order ids must increase; last was {self.last_oid})"
        elif ticker not in self.books:
            reason = f"unknown ticker {ticker}"
        elif side not in (BUY, SELL):
            reason = f"side must be buy or sell, not {side!r}"
        elif kind not in KINDS:
            reason = f"unknown order kind {kind!r}"
        elif qty <= 0:
            reason = "quantity must be positive"
        elif kind in (LIMIT, IOC, FOK, STOP_LIMIT) and price <= 0:
            reason = "price must be positive"
        elif kind not in (LIMIT, IOC, FOK, STOP_LIMIT) and price:
            reason = f"a {kind} order takes no limit price"
        elif kind in STOPS and stop <= 0:
            reason = "stop price must be positive"
        elif kind not in STOPS and stop:
            reason = f"a {kind} order takes no stop price"
        elif cap and cap < 0:
            reason = "cap must not be negative"
        elif cap and (kind not in (MARKET, STOP_LOSS, TAKE_PROFIT) or side != BUY):
            reason = "a cap is only for market, stop-loss and take-profit buys"
        if reason:
            self.events.append(("rejected", seq, oid, reason))
            return
        self.last_oid = oid
        self.events.append(("new", seq, oid, owner, ticker, side, kind, qty, price, stop, cap))
        book = self.books[ticker]
        if kind == LIMIT:
            self.limit(seq, oid, owner, ticker, side, qty, price)
        elif kind in (IOC, MARKET):
            left, capped = self.take(seq, oid, owner, ticker, side, qty, price, cap)
            if left:
                self.events.append(("cancelled", seq, oid, left, "cap" if capped else kind,
                                    owner, ticker, side, price))
        elif kind == FOK:
            avail = sum(o["qty"] for o in book["orders"]
                        if o["side"] != side and o["owner"] != owner
                        and (o["price"] <= price if side == BUY else o["price"] >= price))
            if avail >= qty:
                self.take(seq, oid, owner, ticker, side, qty, price, 0)
            else:
                self.events.append(("cancelled", seq, oid, qty, "fok", owner, ticker, side, price))
        else:
            self.stops.append(dict(oid=oid, owner=owner, ticker=ticker, side=side, kind=kind,
                                   qty=qty, stop=stop, limit=price, cap=cap, prio=seq))
        self.fire(ticker, seq)

    def limit(self, seq, oid, owner, ticker, side, qty, price):
        left, _ = self.take(seq, oid, owner, ticker, side, qty, price, 0)
        if left:
            self.clock += 1
            self.books[ticker]["orders"].append(
                dict(oid=oid, owner=owner, side=side, qty=left, price=price, t=self.clock))

    def take(self, seq, oid, owner, ticker, side, qty, limit, cap):
        book = self.books[ticker]
        budget = cap
        while qty:
            makers = [o for o in book["orders"] if o["side"] != side]
            if not makers:
                return qty, False
            if side == BUY:
                m = min(makers, key=lambda o: (o["price"], o["t"]))
                if limit and m["price"] > limit:
                    return qty, False
            else:
                m = min(makers, key=lambda o: (-o["price"], o["t"]))
                if limit and m["price"] < limit:
                    return qty, False
            p = m["price"]
            room = qty
            if cap:
                room = min(qty, budget // p)
                if room == 0:
                    return qty, True
            if m["owner"] == owner:
                book["orders"].remove(m)
                self.events.append(("cancelled", seq, m["oid"], m["qty"], "self-trade",
                                    m["owner"], ticker, m["side"], p))
                continue
            fill = min(room, m["qty"])
            m["qty"] -= fill
            if not m["qty"]:
                book["orders"].remove(m)
            qty -= fill
            budget -= fill * p
            book["last"] = p
            self.events.append(("trade", seq, ticker, p, fill, m["oid"], oid, m["owner"], owner, side))
        return 0, False

    def fire(self, ticker, seq):
        book = self.books[ticker]
        pending = []
        while True:
            last = book["last"]
            if last is None:
                return
            fresh = [s for s in self.stops if s["ticker"] == ticker and (
                last >= s["stop"] if (s["side"] == BUY) != (s["kind"] == TAKE_PROFIT)
                else last <= s["stop"])]
            fresh.sort(key=lambda s: (s["prio"], s["oid"]))
            for s in fresh:
                self.stops.remove(s)
                self.events.append(("triggered", seq, s["oid"], s["stop"], last, s["owner"],
                                    ticker, s["side"], s["kind"]))
                pending.append(s)
            if not pending:
                return
            s = min(pending, key=lambda s: (s["prio"], s["oid"]))
            pending.remove(s)
            if s["kind"] == STOP_LIMIT:
                self.limit(seq, s["oid"], s["owner"], ticker, s["side"], s["qty"], s["limit"])
            else:
                left, capped = self.take(seq, s["oid"], s["owner"], ticker, s["side"], s["qty"], 0, s["cap"])
                if left:
                    self.events.append(("cancelled", seq, s["oid"], left, "cap" if capped else "market",
                                        s["owner"], ticker, s["side"], 0))

    def cancel(self, seq, oid, owner):
        book, o = self.resting(oid)
        s = self.stop(oid)
        if o is None and s is None:
            self.events.append(("rejected", seq, oid, "not resting"))
        elif (o or s)["owner"] != owner:
            self.events.append(("rejected", seq, oid, "not the owner"))
        elif o is not None:
            book["orders"].remove(o)
            ticker = next(t for t, b in self.books.items() if b is book)
            self.events.append(("cancelled", seq, oid, o["qty"], "cancel", owner, ticker, o["side"], o["price"]))
        else:
            self.stops.remove(s)
            self.events.append(("cancelled", seq, oid, s["qty"], "cancel", owner, s["ticker"], s["side"], s["limit"]))

    def modify(self, seq, oid, owner, qty, price, limit=0):
        book, o = self.resting(oid)
        s = self.stop(oid)
        reason = None
        if o is None and s is None:
            reason = "not resting"
        elif (o or s)["owner"] != owner:
            reason = "not the owner"
        elif qty <= 0:
            reason = "quantity must be positive"
        elif price <= 0:
            reason = "price must be positive" if o else "stop price must be positive"
        elif limit < 0:
            reason = "limit price must be positive"
        elif limit and (o is not None or s["kind"] != STOP_LIMIT):
            reason = "only an untriggered stop-limit order takes a new limit price"
        if reason:
            self.events.append(("rejected", seq, oid, reason))
            return
        if o is not None:
            ticker = next(t for t, b in self.books.items() if b is book)
            if price == o["price"] and qty <= o["qty"]:
                o["qty"] = qty
                self.events.append(("modified", seq, oid, qty, price, 0, True, owner, ticker, o["side"]))
            else:
                book["orders"].remove(o)
                self.events.append(("modified", seq, oid, qty, price, 0, False, owner, ticker, o["side"]))
                self.limit(seq, oid, owner, ticker, o["side"], qty, price)
            self.fire(ticker, seq)
            return
        limit = limit or s["limit"]
        kept = price == s["stop"] and limit == s["limit"] and qty <= s["qty"]
        s["qty"], s["limit"] = qty, limit
        if not kept:
            s["stop"], s["prio"] = price, seq
        self.events.append(("modified", seq, oid, qty, limit, price, kept, owner, s["ticker"], s["side"]))
        self.fire(s["ticker"], seq)

    def checkpoint(self):
        out = ["pit-book checkpoint 1", f"last-oid {self.last_oid}"]
        for t in sorted(self.books):
            b = self.books[t]
            out.append(f"book {t} last {'none' if b['last'] is None else b['last']}")
            for side, word, key in ((BUY, "bid", lambda o: (-o["price"], o["t"])),
                                    (SELL, "ask", lambda o: (o["price"], o["t"]))):
                for o in sorted((o for o in b["orders"] if o["side"] == side), key=key):
                    out.append(f"{word} {o['price']} oid {o['oid']} {o['owner']} qty {o['qty']}")
            for s in sorted((s for s in self.stops if s["ticker"] == t), key=lambda s: (s["prio"], s["oid"])):
                out.append(f"stop oid {s['oid']} {s['owner']} {s['side']} {s['kind']} qty {s['qty']} "
                           f"stop {s['stop']} limit {s['limit']} cap {s['cap']} prio {s['prio']}")
        out.append("end")
        return "\n".join(out) + "\n"
