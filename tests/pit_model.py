"""A whole pit as its users see it, written from the documentation
(pit-messages(5), pit-book, pit-filter(7), pit(1)) and deliberately
simple: plain dicts and sorted lists, no caching, nothing clever.  The
model tests (tests/test_pit_model.py, tests/model_session.py) drive a real
pit with signed mail and compare what the `pit` commands say with what
this model says.

The model is fed the archive's *skeleton*: which message became which
record number, and where the filters' reports landed (record numbers are
the notary's choice; what happens at each is the model's).  Everything
else it derives:

* the notary: members and the accounts they own, operator-only requests,
  the replay rule, cancel and modify naming an earlier order of the same
  account, the rate limit, the reason of every refusal;
* the transfers filter: plain accounts, deposits, withdrawals, transfers
  out of a plain account, credits reported by the specialists;
* one specialist per ticker: trading accounts ``name:TICKER``, the funds
  an order holds (pit-filter(7), "Funds"), a book per ticker (price-time
  priority, self-trade prevention, every order type, stops with their
  triggering order, modify's priority rule), maker-taker fees rounded up;
* positions: the balance of every account and asset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

PPM = 1_000_000
COLLAR = Decimal("1.05")            # a stop buy that becomes a market buy: 5% over its stop


# -- numbers ------------------------------------------------------------------------

def decimals(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def text_of(n: int, step: Decimal) -> str:
    """*n* steps as decimal text with the step's decimals."""
    return f"{n * step:.{decimals(step)}f}"


def steps_of(text: str, step: Decimal) -> int | None:
    """Decimal text as whole steps, None when off the step."""
    q = Decimal(text.replace(",", "")) / step
    return int(q) if q == q.to_integral_value() else None


def rate_ppm(text: str) -> int:
    return int(Decimal(text.rstrip("%")) * PPM / 100)


def fee(notional: int, ppm: int) -> int:
    return -(-notional * ppm // PPM)                 # rounded up to a whole minor unit


@dataclass
class Instrument:
    ticker: str
    currency: str
    minor: Decimal
    tick: Decimal
    lot: Decimal
    maker: int
    taker: int

    @property
    def multiplier(self) -> int:                     # minor units of one tick x one lot
        return int(self.tick * self.lot / self.minor)

    def price(self, n): return text_of(n, self.tick)
    def qty(self, n): return text_of(n, self.lot)
    def money(self, n): return text_of(n, self.minor)


# -- the book --------------------------------------------------------------------

@dataclass(eq=False)
class Order:
    oid: int
    account: str
    ref: str
    ticker: str
    side: str                   # buy, sell
    kind: str                   # limit ioc fok market stop-loss stop-limit take-profit
    qty: int                    # open quantity
    price: int = 0              # limit price (ticks), 0 for none
    stop: int = 0               # trigger (ticks), 0 for none
    cap: int = 0                # market-type buys: most sum(price x qty) to fill
    prio: int = 0               # time priority: the seq that placed it (or last moved it)
    triggered: bool = False
    arrival: int = 0            # when it joined its level: FIFO inside a level
    hold: int = 0               # funds held for it (quote minor units or lots)
    unit: int = 0               # per-lot hold of a buy with a limit price (0: pooled)


class Book:
    """One ticker's book as plain lists; every operation rescans them."""

    def __init__(self):
        self.resting: list[Order] = []      # limit orders on the book
        self.stops: list[Order] = []        # untriggered stop orders
        self.last: int | None = None

    def side(self, side: str) -> list[Order]:
        """Resting orders of *side*, best first, then by time."""
        rows = [o for o in self.resting if o.side == side]
        if side == "buy":
            return sorted(rows, key=lambda o: (-o.price, o.arrival))
        return sorted(rows, key=lambda o: (o.price, o.arrival))

    def levels(self, side: str) -> list[tuple[int, int, int]]:
        out: dict[int, list[int]] = {}
        for o in self.side(side):
            lv = out.setdefault(o.price, [0, 0])
            lv[0] += o.qty
            lv[1] += 1
        return [(p, q, n) for p, (q, n) in out.items()]


# -- the pit -----------------------------------------------------------------------

@dataclass
class Rejection:
    seq: int
    account: str
    ref: str
    reason: str


class Model:
    def __init__(self, pit: str, operator: str, rate_limit: int = 0, rules: int = 1):
        self.pit = pit
        self.rules = rules                # the pit's rules (pit-messages(5), Rules)
        self.operator = operator          # the rate limit is the members': never the operator's
        self.members: dict[str, tuple[str, ...]] = {operator: ("operator",)}
        self.known_accounts: set[str] = {"operator"}
        self.refs: dict[tuple[str, str], tuple[int, str]] = {}   # (account, ref) -> (seq, ticker or '')
        self.rate_limit = rate_limit
        self.sent: dict[str, int] = {}       # records per signer (the sessions' interval is long)
        self.currencies: dict[str, Decimal] = {}
        self.instruments: dict[str, Instrument] = {}
        self.default_fees = (0, 0)
        self.records: list[tuple[int, str, dict]] = []            # (seq, kind, what)
        # filters
        self.plain: dict[tuple[str, str], int] = {}               # transfers' ledger
        self.trading: dict[tuple[str, str], int] = {}             # specialists' ledger
        self.held: dict[tuple[str, str], int] = {}
        self.books: dict[str, Book] = {}
        self.orders: dict[int, Order] = {}                        # open orders by oid
        self.open_refs: dict[tuple[str, str], int] = {}           # (account, ref) -> oid
        self.trades: list[dict] = []
        self.positions: dict[tuple[str, str], int] = {}
        self.filter_rejections: list[Rejection] = []
        self.lines: dict[str, list[str]] = {}                     # filter -> unposted report lines
        self.seen: dict[str, int] = {}                            # filter -> records read up to
        self.arrivals = 0                                         # orders that joined a level

    # ---------------------------------------------------------------- the notary
    def judge(self, signer: str, req: dict) -> tuple[bool, str]:
        """Accept or refuse a well-signed request (*req*: pit, account, ref,
        key, value as the generator wrote them, already canonical)."""
        accounts = self.members.get(signer)
        if accounts is None:
            return False, f"unknown key: {signer} is not a member of pit {self.pit}"
        if req["pit"] != self.pit:
            return False, f"the request is for pit {req['pit']}, this is pit {self.pit}"
        kind = req["key"].lower()
        acct = req["account"]
        base = acct.partition(":")[0]
        if kind in ("deposit", "withdrawal", "member", "currency", "instrument", "fees"):
            if "operator" not in accounts or acct != "operator":
                return False, (f"{kind} requests are the operator's; "
                               f"the signing key owns {', '.join(accounts)}")
        elif base not in accounts or base in ("operator", "fees") or base.startswith("specialist"):
            return False, f"the signing key does not own account {acct}"
        if (acct, req["ref"]) in self.refs:
            return False, (f"replayed: ref {req['ref']} of {acct} was used by record "
                           f"{self.refs[acct, req['ref']][0]}")
        words = req["value"].split()
        ticker = ""
        if kind == "order" and words[0] in ("cancel", "modify"):
            known = self.refs.get((acct, words[1]))
            if known is None or not known[1]:
                return False, f"{words[0]} {words[1]}: {acct} has no order with ref {words[1]}"
            ticker = known[1]
            if words[0] == "modify":
                bad = self._off_step(ticker, words[2:])
                if bad:
                    return False, bad
        elif kind == "order":
            ticker = words[2]
            if ticker not in self.instruments:
                return False, f"malformed request: line 4: unknown ticker {ticker}"
            bad = self._off_step(ticker, ["qty", words[1]] + self._prices(words[3:]))
            if bad:
                return False, bad
        elif kind in ("transfer", "deposit", "withdrawal"):
            amount, asset = words[0], words[1]
            if asset not in self.currencies and asset not in self.instruments:
                return False, f"malformed request: line 4: unknown asset {asset}: not a currency or ticker of this pit"
            step = self.currencies[asset] if asset in self.currencies else self.instruments[asset].lot
            if steps_of(amount, step) is None:
                return False, f"malformed request: line 4: amount {amount} is off"
            if kind == "transfer" and self.rules >= 2:
                why = self._rules_2(acct, asset, words[3])
                if why:
                    return False, why
        if (self.rate_limit and signer != self.operator
                and self.sent.get(signer, 0) >= self.rate_limit):
            return False, f"rate limited: {signer} sent {self.sent[signer]} messages"
        return True, ticker

    def _rules_2(self, src: str, asset: str, to: str) -> str:
        """Why rules 2 refuse a transfer (docs/kinds/rules.md), or ''."""
        def owned(a):
            return a.partition(":")[0] not in ("specialist", "transfers", "positions") and \
                any(a in accts for accts in self.members.values())
        base, colon, t = to.partition(":")
        if not colon:
            if not owned(to):
                return f"transfer to {to}: no such account (no member owns {to})"
        else:
            if t not in self.instruments:
                return f"transfer to {to}: no such account ({t} is not an instrument of the pit)"
            if base == "operator":
                return f"transfer to {to}: no such account (the operator has no trading account)"
            if base != "fees" and not owned(base):
                return f"transfer to {to}: no such account (no member owns {base})"
        for end, what in ((src, "out of"), (to, "to")):
            _, colon, t = end.partition(":")
            if not colon:
                continue
            if t not in self.instruments:
                return f"transfer out of {end}: {t} is not an instrument of the pit"
            cur = self.instruments[t].currency
            if asset not in (t, cur):
                return (f"transfer of {asset} {what} {end}: a trading account of {t} holds "
                        f"{t} and {cur} only (rules 2)")
        return ""

    @staticmethod
    def _prices(words):
        out = []
        for i, w in enumerate(words):
            if w in ("limit", "ioc", "fok", "stop-loss", "take-profit", "stop-limit") and i + 1 < len(words):
                out += ["price", words[i + 1]]
        return out

    def _off_step(self, ticker, words) -> str:
        inst = self.instruments[ticker]
        for name, v in zip(words[::2], words[1::2]):
            step = inst.lot if name == "qty" else inst.tick
            if steps_of(v, step) is None:
                return f"malformed request: line 4: {v} is off"
        return ""

    def accept(self, seq: int, signer: str, req: dict, ticker: str) -> None:
        """Record *seq* is the accepted request."""
        kind = req["key"].lower()
        self.refs[req["account"], req["ref"]] = (seq, ticker if kind == "order" else "")
        self.sent[signer] = self.sent.get(signer, 0) + 1
        w = req["value"].split()
        if kind == "member":
            if w[0] == "add":
                accts = tuple(a.strip(",") for a in w[3:])
                self.members[w[1]] = accts
                self.known_accounts.update(accts)
            else:
                self.members.pop(w[1], None)
        elif kind == "currency":
            self.currencies[w[0]] = Decimal(w[1])
        elif kind == "fees":
            self.default_fees = (rate_ppm(w[1]), rate_ppm(w[3]))
        elif kind == "instrument":
            maker, taker = (rate_ppm(w[7]), rate_ppm(w[9])) if len(w) > 6 else self.default_fees
            self.instruments[w[0]] = Instrument(w[0], w[1], self.currencies[w[1]], Decimal(w[3]),
                                                Decimal(w[5]), maker, taker)
            self.books.setdefault(w[0], Book())
        self._add(seq, kind, {**req, "ticker": ticker, "signer": signer})

    # ------------------------------------------------------------- the filters
    def run(self, name: str, upto: int | None = None) -> bool:
        """Run filter *name* ('transfers' or 'specialist T') over the records
        it has not read (up to record *upto*); True when it has report lines
        not yet posted."""
        done = self.seen.get(name, 0)
        lines = self.lines.setdefault(name, [])
        for seq, kind, what in self.records:
            if seq <= done or (upto is not None and seq > upto):
                continue
            if name == "transfers":
                self._transfers(seq, kind, what, lines)
            else:
                self._specialist(name.split()[1], seq, kind, what, lines)
            self.seen[name] = seq
        return bool(lines)

    def posted(self, seq: int, name: str) -> None:
        """Record *seq* is *name*'s report of the lines it had."""
        lines, self.lines[name] = self.lines.get(name, []), []
        self._add(seq, "report", {"filter": name, "lines": lines})
        for ln in lines:
            self._position(ln)

    def other(self, seq: int) -> None:
        """Record *seq* is a seal, a checkpoint or anything no filter acts on."""
        self._add(seq, "other", {})

    def _add(self, seq: int, kind: str, what: dict) -> None:
        self.records.append((seq, kind, what))
        if len(self.records) > 1 and self.records[-2][0] > seq:
            self.records.sort(key=lambda r: r[0])

    def _reject(self, lines, seq, account, ref, reason) -> None:
        lines.append(f"rejected {seq} {account} {ref} {reason}")
        self.filter_rejections.append(Rejection(seq, account, ref, reason))

    def _exists(self, account: str) -> bool:
        base, colon, ticker = account.partition(":")
        if base == "fees":
            return ticker in self.instruments
        return base in self.known_accounts and (not colon or ticker in self.instruments)

    def _amount(self, asset: str, n: int) -> str:
        if asset in self.currencies:
            return text_of(n, self.currencies[asset])
        return text_of(n, self.instruments[asset].lot)

    def _units(self, asset: str, text: str) -> int:
        step = self.currencies[asset] if asset in self.currencies else self.instruments[asset].lot
        return steps_of(text, step)

    def _insufficient(self, account, asset, need, have) -> str:
        return (f"insufficient funds: {account} needs {self._amount(asset, need)} {asset}, "
                f"has {self._amount(asset, have)} available")

    # transfers: plain accounts
    def _transfers(self, seq, kind, what, lines) -> None:
        if kind == "report":
            if what["filter"].startswith("specialist "):
                for src, dst, n, asset in self._transferred(what["lines"]):
                    if ":" not in dst and src.partition(":")[2] in what["filter"].split()[1:]:
                        self.plain[dst, asset] = self.plain.get((dst, asset), 0) + n
            return
        if kind not in ("deposit", "withdrawal", "transfer") or (
                kind == "transfer" and ":" in what["account"]):
            return
        acct, w = what["account"], what["value"].split()
        n, asset, other = self._units(w[1], w[0]), w[1], w[3]
        if kind == "transfer":
            if not self._exists(other):
                return self._reject(lines, seq, acct, what.get("ref") or "-", f"unknown account {other}")
            src = acct
        else:
            if not self._exists(other) or ":" in other:
                return self._reject(lines, seq, acct, what.get("ref") or "-", f"unknown account {other}")
            src = other
        if kind in ("withdrawal", "transfer"):
            have = self.plain.get((src, asset), 0)
            if have < n:
                return self._reject(lines, seq, acct, what.get("ref") or "-", self._insufficient(src, asset, n, have))
            self.plain[src, asset] = have - n
        if kind == "deposit":
            self.plain[other, asset] = self.plain.get((other, asset), 0) + n
            lines.append(f"deposited {seq} {other} {self._amount(asset, n)} {asset}")
        elif kind == "withdrawal":
            lines.append(f"withdrawn {seq} {other} {self._amount(asset, n)} {asset}")
        else:
            if ":" not in other:
                self.plain[other, asset] = self.plain.get((other, asset), 0) + n
            lines.append(f"transferred {seq} {acct} {other} {self._amount(asset, n)} {asset}")

    def _transferred(self, lines):
        for ln in lines:
            w = ln.split(" ")
            if w[0] == "transferred":
                yield w[2], w[3], self._units(w[5], w[4]), w[5]

    # specialist: trading accounts and the book
    def _avail(self, acct, asset) -> int:
        return self.trading.get((acct, asset), 0) - self.held.get((acct, asset), 0)

    def _specialist(self, t, seq, kind, what, lines) -> None:
        if kind == "report":
            if what["filter"] == f"specialist {t}":
                return
            rep = what["filter"]
            for src, dst, n, asset in self._transferred(what["lines"]):
                s_base, _, s_t = src.partition(":")
                owns = (rep == "transfers") if not s_t else (rep.startswith("specialist ") and s_t in rep.split()[1:])
                if dst.partition(":")[2] == t and ":" in dst and s_t != t and owns:
                    self.trading[dst, asset] = self.trading.get((dst, asset), 0) + n
            return
        if kind == "transfer" and what["account"].partition(":")[2] == t and ":" in what["account"]:
            acct, w = what["account"], what["value"].split()
            asset, dst = w[1], w[3]
            n = self._units(asset, w[0])
            if not self._exists(dst):
                return self._reject(lines, seq, acct, what.get("ref") or "-", f"unknown account {dst}")
            if self._avail(acct, asset) < n:
                return self._reject(lines, seq, acct, what.get("ref") or "-",
                                    self._insufficient(acct, asset, n, self._avail(acct, asset)))
            self.trading[acct, asset] -= n
            if dst.partition(":")[2] == t and ":" in dst:
                self.trading[dst, asset] = self.trading.get((dst, asset), 0) + n
            lines.append(f"transferred {seq} {acct} {dst} {self._amount(asset, n)} {asset}")
            return
        if kind != "order" or what["ticker"] != t:
            return
        w = what["value"].split()
        acct, ref = what["account"], what["ref"]
        if w[0] == "cancel":
            return self._cancel(t, seq, acct, ref, w[1], lines)
        if w[0] == "modify":
            return self._modify(t, seq, acct, ref, w[1], dict(zip(w[2::2], w[3::2])), lines)
        self._new(t, seq, acct, ref, what["value"], lines)

    def _new(self, t, seq, acct, ref, text, lines) -> None:
        inst = self.instruments[t]
        w = text.split()
        side, qty, kind = w[0], steps_of(w[1], inst.lot), w[3]
        price = stop = 0
        if kind in ("limit", "ioc", "fok"):
            price = steps_of(w[4], inst.tick)
        elif kind in ("stop-loss", "take-profit"):
            stop = steps_of(w[4], inst.tick)
        elif kind == "stop-limit":
            stop, price = steps_of(w[4], inst.tick), steps_of(w[6], inst.tick)
        if (acct, ref) in self.open_refs:
            return self._reject(lines, seq, acct, ref,
                                f"duplicate ref {ref}: order {self.open_refs[acct, ref]} is open")
        tacct = f"{acct}:{t}"
        rate = max(inst.maker, inst.taker)
        cap = unit = 0
        if side == "sell":
            asset, hold = t, qty
        else:
            asset = inst.currency
            if kind in ("limit", "ioc", "fok", "stop-limit"):
                n = inst.multiplier * price
                unit = n + fee(n, rate)
                hold = qty * unit
            else:
                if kind == "market":
                    pool = self._avail(tacct, asset)
                else:
                    n = inst.multiplier * stop
                    pool = -(-qty * (n + fee(n, rate)) * 105 // 100)
                cap = (pool - qty) * PPM // (inst.multiplier * (PPM + inst.taker))
                if cap <= 0:
                    return self._reject(lines, seq, acct, ref, self._insufficient(
                        tacct, asset, pool + qty * inst.multiplier, pool))
                hold = pool
        if self._avail(tacct, asset) < hold:
            return self._reject(lines, seq, acct, ref,
                                self._insufficient(tacct, asset, hold, self._avail(tacct, asset)))
        self.held[tacct, asset] = self.held.get((tacct, asset), 0) + hold
        o = Order(seq, acct, ref, t, side, kind, qty, price, stop, cap, seq, hold=hold, unit=unit)
        self.orders[seq] = o
        self.open_refs[acct, ref] = seq
        lines.append(f"accepted {seq} {acct} {ref} {text}")
        book = self.books[t]
        if kind in ("stop-loss", "stop-limit", "take-profit"):
            book.stops.append(o)
            self._stops(t, seq, lines)
        else:
            self._take(t, o, seq, lines)
            self._stops(t, seq, lines)

    def _fires(self, o: Order, last: int) -> bool:
        if o.kind == "take-profit":
            return last >= o.stop if o.side == "sell" else last <= o.stop
        return last >= o.stop if o.side == "buy" else last <= o.stop

    def _stops(self, t, seq, lines) -> None:
        """pit-book, "Stops": trigger every stop whose condition holds, in
        priority order; run the first fully; repeat with the new last price."""
        book = self.books[t]
        queue: list[Order] = []
        while True:
            if book.last is not None:
                fired = sorted((o for o in book.stops if self._fires(o, book.last)),
                               key=lambda o: (o.prio, o.oid))
                for o in fired:
                    book.stops.remove(o)
                    inst = self.instruments[t]
                    lines.append(f"triggered {seq} {o.account} {o.ref} stop {inst.price(o.stop)} "
                                 f"last {inst.price(book.last)}")
                    o.triggered = True
                queue += fired
            if not queue:
                return
            queue.sort(key=lambda o: (o.prio, o.oid))
            o = queue.pop(0)
            if o.kind == "stop-limit":
                o.kind, o.prio, o.stop = "limit", seq, 0      # an ordinary limit order from now on
            else:
                o.kind, o.stop = "market", 0
            self._take(t, o, seq, lines)

    def _take(self, t, o: Order, seq, lines) -> None:
        """Match order *o* against the book, then rest, cancel or finish it."""
        book = self.books[t]
        other = "sell" if o.side == "buy" else "buy"
        limit = o.price if o.kind in ("limit", "ioc", "fok") else None

        def crosses(r: Order) -> bool:
            return limit is None or (r.price <= limit if o.side == "buy" else r.price >= limit)
        if o.kind == "fok":
            avail = sum(r.qty for r in book.side(other) if crosses(r) and r.account != o.account)
            if avail < o.qty:
                return self._cancelled(o, o.qty, "fok", seq, lines)
        spent = 0
        capped = False
        for r in book.side(other):
            if o.qty == 0 or not crosses(r):
                break
            if o.cap and (o.cap - spent) // r.price == 0:
                capped = True           # pit-book: a level it cannot afford ends it, first
                break
            if r.account == o.account:
                self._cancelled(r, r.qty, "self-trade", seq, lines)
                continue
            q = min(o.qty, r.qty)
            if o.cap:
                q = min(q, (o.cap - spent) // r.price)
            spent += q * r.price
            self._trade(t, seq, r, o, q, r.price, lines)
        if o.qty == 0:
            return self._gone(o)
        if o.kind == "limit":
            if o not in book.resting:
                self.arrivals += 1      # the back of its level (a stop-limit: from its trigger)
                o.arrival = self.arrivals
                book.resting.append(o)
            return
        reason = "cap" if capped else {"ioc": "ioc", "fok": "fok"}.get(o.kind, "market")
        self._cancelled(o, o.qty, reason, seq, lines)

    def _trade(self, t, seq, maker: Order, taker: Order, q, price, lines) -> None:
        inst = self.instruments[t]
        n = q * price * inst.multiplier
        mfee, tfee = fee(n, inst.maker), fee(n, inst.taker)
        buy, sell = (taker, maker) if taker.side == "buy" else (maker, taker)
        bfee, sfee = (tfee, mfee) if taker.side == "buy" else (mfee, tfee)
        cur = inst.currency
        bacct, sacct = f"{buy.account}:{t}", f"{sell.account}:{t}"
        part = q * buy.unit if buy.unit else n + bfee
        self.held[bacct, cur] -= part
        buy.hold -= part
        self.trading[bacct, cur] -= n + bfee
        self.trading[bacct, t] = self.trading.get((bacct, t), 0) + q
        self.held[sacct, t] -= q
        sell.hold -= q
        self.trading[sacct, t] -= q
        self.trading[sacct, cur] = self.trading.get((sacct, cur), 0) + n - sfee
        self.trading[f"fees:{t}", cur] = self.trading.get((f"fees:{t}", cur), 0) + bfee + sfee
        self.books[t].last = price
        lines.append(f"trade {seq} {t} {inst.qty(q)} at {inst.price(price)} {cur} "
                     f"buyer {buy.account} {buy.ref} seller {sell.account} {sell.ref} "
                     f"maker {maker.side} fees {inst.money(bfee)} {inst.money(sfee)}")
        self.trades.append({"seq": seq, "ticker": t, "qty": inst.qty(q), "price": inst.price(price),
                            "currency": cur, "buyer": buy.account, "buyer_ref": buy.ref,
                            "seller": sell.account, "seller_ref": sell.ref, "maker": maker.side,
                            "buyer_fee": inst.money(bfee), "seller_fee": inst.money(sfee)})
        for o in (maker, taker):
            o.qty -= q
        if maker.qty == 0:
            self.books[t].resting.remove(maker)
            self._gone(maker)

    def _cancelled(self, o: Order, q, reason, seq, lines) -> None:
        inst = self.instruments[o.ticker]
        lines.append(f"cancelled {seq} {o.account} {o.ref} {inst.qty(q)} {reason}")
        book = self.books[o.ticker]
        if o in book.resting:
            book.resting.remove(o)
        if o in book.stops:
            book.stops.remove(o)
        o.qty = 0
        self._gone(o)

    def _gone(self, o: Order) -> None:
        """A closed order: what it holds and did not spend is released."""
        if o.oid not in self.orders:
            return
        asset = self.instruments[o.ticker].currency if o.side == "buy" else o.ticker
        self.held[f"{o.account}:{o.ticker}", asset] -= o.hold
        o.hold = 0
        del self.orders[o.oid]
        del self.open_refs[o.account, o.ref]

    def _cancel(self, t, seq, acct, ref, target, lines) -> None:
        oid = self.open_refs.get((acct, target))
        if oid is None:
            return self._reject(lines, seq, acct, ref, f"cancel {target}: no open order {target} of {acct}")
        o = self.orders[oid]
        self._cancelled(o, o.qty, "cancel", seq, lines)

    def _modify(self, t, seq, acct, ref, target, what, lines) -> None:
        oid = self.open_refs.get((acct, target))
        if oid is None:
            return self._reject(lines, seq, acct, ref, f"modify {target}: no open order {target} of {acct}")
        o, inst, book = self.orders[oid], self.instruments[t], self.books[t]
        resting = o in book.resting
        qty = steps_of(what["qty"], inst.lot) if "qty" in what else o.qty
        price = steps_of(what["price"], inst.tick) if "price" in what else o.price
        stop = steps_of(what["stop"], inst.tick) if "stop" in what else o.stop
        if resting and "stop" in what:
            return self._reject(lines, seq, acct, ref,
                                f"modify {target}: the order is on the book; it has no stop to change")
        if not resting and "price" in what and o.kind != "stop-limit":
            return self._reject(lines, seq, acct, ref,
                                f"modify {target}: a {o.kind} order has no limit price; change its stop")
        rate = max(inst.maker, inst.taker)
        asset = inst.currency if o.side == "buy" else t
        if o.side == "sell":
            new_hold, unit = qty, 1
        elif o.unit:
            n = inst.multiplier * price
            unit = n + fee(n, rate)
            new_hold = qty * unit
        else:
            n = inst.multiplier * stop
            new_hold, unit = max(o.hold, -(-qty * (n + fee(n, rate)) * 105 // 100)), 0
        extra = max(new_hold - o.hold, 0)
        tacct = f"{acct}:{t}"
        if extra > self._avail(tacct, asset):
            return self._reject(lines, seq, acct, ref,
                                self._insufficient(tacct, asset, extra, self._avail(tacct, asset)))
        self.held[tacct, asset] = self.held.get((tacct, asset), 0) + extra
        # the core's own checks (pit-book): a positive quantity
        if qty <= 0:
            self.held[tacct, asset] -= extra
            return self._reject(lines, seq, acct, ref, "quantity must be positive")
        if resting:
            kept = price == o.price and qty <= o.qty
        else:                   # pit-book: the same stop, the same limit, qty <= open
            kept = stop == o.stop and price == o.price and qty <= o.qty
        if new_hold < o.hold:
            self.held[tacct, asset] -= o.hold - new_hold
        o.hold, o.unit = new_hold, unit if o.side == "buy" else o.unit
        o.qty = qty
        if resting:
            o.price = price
        else:
            o.stop = stop
            if o.kind == "stop-limit":
                o.price = price
        if not kept:
            o.prio = seq
        text = f"qty {inst.qty(qty)}"
        if o.price and (resting or o.kind == "stop-limit"):
            text += f" price {inst.price(o.price)}"
        if not resting:
            text += f" stop {inst.price(o.stop)}"
        lines.append(f"modified {seq} {acct} {o.ref} {text} priority {'kept' if kept else 'lost'}")
        if resting and not kept:
            book.resting.remove(o)
            self._take(t, o, seq, lines)
        self._stops(t, seq, lines)

    # positions: from the posted reports
    def _position(self, ln: str, into: dict | None = None) -> None:
        w = ln.split(" ")
        into = self.positions if into is None else into

        def add(acct, asset, n):
            into[acct, asset] = into.get((acct, asset), 0) + n
        if w[0] == "deposited":
            add(w[2], w[4], self._units(w[4], w[3]))
        elif w[0] == "withdrawn":
            add(w[2], w[4], -self._units(w[4], w[3]))
        elif w[0] == "transferred":
            n = self._units(w[5], w[4])
            add(w[2], w[5], -n)
            add(w[3], w[5], n)
        elif w[0] == "trade":
            t, inst = w[2], self.instruments[w[2]]
            q, p = steps_of(w[3], inst.lot), steps_of(w[5], inst.tick)
            n = q * p * inst.multiplier
            bf, sf = steps_of(w[16], inst.minor), steps_of(w[17], inst.minor)
            add(f"{w[8]}:{t}", t, q)
            add(f"{w[8]}:{t}", inst.currency, -(n + bf))
            add(f"{w[11]}:{t}", t, -q)
            add(f"{w[11]}:{t}", inst.currency, n - sf)
            add(f"fees:{t}", inst.currency, bf + sf)

    # ---------------------------------------------------------------- views
    def open_orders(self) -> list[dict]:
        out = []
        for oid in sorted(self.orders):
            o = self.orders[oid]
            inst = self.instruments[o.ticker]
            out.append({"seq": oid, "account": o.account, "ref": o.ref, "ticker": o.ticker,
                        "side": o.side, "type": o.kind, "remaining": inst.qty(o.qty),
                        "price": inst.price(o.price) if o.price else None,
                        "stop": inst.price(o.stop) if o.stop else None})
        return sorted(out, key=lambda r: (r["ticker"], r["seq"]))

    def book(self, t: str, depth: int = 10) -> dict:
        inst, b = self.instruments[t], self.books[t]
        side = lambda s: [{"price": inst.price(p), "qty": inst.qty(q), "orders": n}
                          for p, q, n in b.levels(s)[:depth]]
        return {"ticker": t, "currency": inst.currency, "bids": side("buy"), "asks": side("sell"),
                "last": inst.price(b.last) if b.last is not None else None}

    def position_rows(self, at: int | None = None) -> list[dict]:
        """Balances from the posted reports; with *at*, of the lines caused
        by records up to *at* (pit(1), --at)."""
        pos = self.positions
        if at is not None:
            pos = {}
            for _, kind, w in self.records:
                if kind == "report":
                    for ln in w["lines"]:
                        if int(ln.split(" ")[1]) <= at:
                            self._position(ln, pos)
        rows = []
        for (acct, asset), n in sorted(pos.items()):
            if n:
                rows.append({"account": acct, "asset": asset, "amount": self._amount(asset, n)})
        return rows

    def posted_trades(self, at: int | None = None) -> list[dict]:
        """The trades of the posted reports (caused by records up to *at*)."""
        out = []
        for _, kind, w in self.records:
            if kind == "report" and w["filter"].startswith("specialist "):
                for ln in w["lines"]:
                    x = ln.split(" ")
                    if x[0] == "trade" and (at is None or int(x[1]) <= at):
                        out.append({"seq": int(x[1]), "ticker": x[2], "qty": x[3], "price": x[5],
                                    "currency": x[6], "buyer": x[8], "buyer_ref": x[9],
                                    "seller": x[11], "seller_ref": x[12], "maker": x[14],
                                    "buyer_fee": x[16], "seller_fee": x[17]})
        return sorted(out, key=lambda t: t["seq"])

    def as_of(self, at: int) -> "Model":
        """The specialists' view once record *at* was acted on: a fresh model
        fed the records up to *at* (reports with the lines they posted)."""
        m = Model(self.pit, next(f for f, a in self.members.items() if a == ("operator",)),
                  rules=self.rules)
        for seq, kind, w in self.records:
            if seq > at:
                break
            if kind == "report":
                m._add(seq, kind, w)
            elif kind != "other":
                m.accept(seq, w["signer"], w, w["ticker"])
        for t in sorted(m.instruments):
            m.run(f"specialist {t}")
        return m
