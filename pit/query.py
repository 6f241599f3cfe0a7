"""What a pit holds, as rows: trades, positions, open orders, the book,
rejections.  The ``pit`` commands, the demo and ``pit chart`` read the pit
through here; each query replays the filters it needs (pit.ops), so this
module stands above the filters, beside pit.ops.
"""

from __future__ import annotations

from collections.abc import Iterator

from pit import kinds, mbox, message, ops
from pit.archive import Archive
from pit.pitdir import Pit
from pit.units import UnitError

__all__ = ["records", "registry", "member_accounts", "specialist_state", "book_levels",
           "trades", "trade_text", "positions", "open_orders", "rejections",
           "filter_rejections"]


def records(pit: Pit, to_seq: int | None = None, from_seq: int = 1) -> Iterator[tuple[int, dict, bytes]]:
    for seq, msg in Archive(pit.root).read(from_seq, to_seq):
        yield seq, mbox.stamp(msg), msg


def registry(pit: Pit, at: int | None = None, until: str | None = None):
    """The pit's currencies and instruments from its operator records (to
    record *at*).  With *until*, the registry as soon as it defines that
    ticker (an instrument is never taken away, so it is defined for good).
    O(archive): the volumes are searched for those records, and no further
    than the one that defines *until*."""
    from filters.common import Registry
    reg = Registry()
    kinds = ("currency", "instrument", "fees")
    for seq, msg in Archive(pit.root).records_of_kind(1, kinds):    # a search, not a stamp a record
        if at is not None and seq > at:
            break
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") in kinds:
            try:
                reg.apply(st["x-pit-kind"], st.get("x-pit-request", ""))
            except (message.MessageError, UnitError):
                pass        # the filters refuse such a definition too: it defines nothing
            if until is not None and until in reg.instruments:
                break
    return reg


def member_accounts(pit: Pit) -> set[str]:
    """Every account a member of the pit has been made owner of.  O(archive):
    the volumes are searched for the member records (as :func:`registry`),
    not a stamp read a record (docs/pit-book.md, "Start-up")."""
    owned = set()
    for _, msg in Archive(pit.root).records_of_kind(1, ("member",)):
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") == "member":
            try:
                ins = kinds.parse("member", st.get("x-pit-request", ""))
            except (message.MessageError, UnitError):
                continue
            owned.update(getattr(ins, "accounts", None) or ())
    return owned


def specialist_state(pit: Pit, ticker: str, at: int | None = None):
    """The specialist of *ticker* brought up to date without posting; with
    *at*, replayed from record 1 up to record *at*.  O(new records), or
    O(at) with *at*."""
    return _specialist_state(pit, ops.specialist_of(pit, ticker), at)


def _specialist_state(pit: Pit, words: list[str], at: int | None = None):
    """The specialist named by *words* (tickers and ranges), as above."""
    from filters.specialist import Specialist
    from pit.filter import run
    if at is None:
        flt, _ = ops.run_filter(pit, "specialist", words, post_output=False)
        return flt
    flt = Specialist(words)
    run(flt, (m for _, m in Archive(pit.root).read(1, at)))
    return flt


def book_levels(flt, ticker: str, depth: int) -> dict:
    """Best bids and offers of *ticker* as decimal text."""
    inst = flt.registry.instruments[ticker]
    eng = flt.engine
    side = lambda s: [{"price": inst.price_text(p), "qty": inst.qty_text(q), "orders": n}
                      for p, q, n in eng.depth(ticker, s, depth)]
    last = eng.last_price(ticker)
    return {"ticker": ticker, "currency": inst.currency.code, "bids": side("buy"),
            "asks": side("sell"), "last": inst.price_text(last) if last else None}


def trades(pit: Pit, ticker: str | None = None, at: int | None = None,
           account: str | None = None) -> list[dict]:
    """Every trade reported by the specialists in the archive.  O(archive)."""
    from pit.filter import signed_text
    out = []
    for _, st, msg in records(pit):
        acct = st.get("x-pit-account", "")
        if st.get("x-pit-kind") != "report" or not acct.startswith("specialist:"):
            continue
        for line in signed_text(msg).split("\n"):
            if not line.startswith("trade "):
                continue
            w = line.split(" ")
            # trade SEQ TICKER QTY at PRICE CUR buyer A REF seller B REF maker SIDE fees F F
            t = {"seq": int(w[1]), "ticker": w[2], "qty": w[3], "price": w[5], "currency": w[6],
                 "buyer": w[8], "buyer_ref": w[9], "seller": w[11], "seller_ref": w[12],
                 "maker": w[14], "buyer_fee": w[16], "seller_fee": w[17]}
            if ticker and t["ticker"] != ticker:
                continue
            if at is not None and t["seq"] > at:
                continue
            if account and account not in (t["buyer"], t["seller"]):
                continue
            out.append(t)
    out.sort(key=lambda t: t["seq"])
    return out


def trade_text(t: dict) -> str:
    return (f"{t['seq']:>7} {t['ticker']} {t['qty']} at {t['price']} {t['currency']} "
            f"buyer {t['buyer']} seller {t['seller']} fees {t['buyer_fee']} {t['seller_fee']}")


def positions(pit: Pit, account: str | None = None, at: int | None = None) -> list[dict]:
    """Balances of every account (or of *account* and its trading accounts)."""
    from filters.positions import Positions
    from pit.filter import run
    if at is None:
        flt, _ = ops.run_filter(pit, "positions", [], post_output=False)
    else:
        # every report, also those posted after record *at*: a line counts
        # when the record that caused it is at or below *at* (pit(1), --at)
        flt = Positions(["--at", str(at)])
        run(flt, (m for _, m in Archive(pit.root).read()))
    rows = []
    for acct, asset, amount in flt.table():
        if account and acct != account and not acct.startswith(account + ":"):
            continue
        rows.append({"account": acct, "asset": asset, "amount": amount})
    return rows


def open_orders(pit: Pit, account: str | None = None, at: int | None = None) -> list[dict]:
    """Open orders (resting or waiting on a trigger) of *account*, by
    specialist state (as of record *at*), each specialist brought up to
    date once.  O(specialists x new records)."""
    rows = []
    jobs = ops.specialist_jobs(pit)
    states: dict[tuple[str, ...], object] = {}
    for t in sorted(registry(pit).instruments):
        words = tuple(ops.specialist_of(pit, t, jobs))
        if words not in states:
            states[words] = _specialist_state(pit, list(words), at)
        flt = states[words]
        if not flt.engine.has_book(t):
            continue                    # not yet defined at record *at*
        inst = flt.registry.instruments[t]
        orders = flt.open_orders()
        for oid in sorted(orders):
            od = orders[oid]
            if od.ticker != t or (account and od.account != account):
                continue
            live = flt.engine.order(oid)
            if live is None:
                continue
            _, side, kind, _, rem, price, stop = live
            rows.append({"seq": oid, "account": od.account, "ref": od.ref, "ticker": t,
                         "side": side, "type": kind, "remaining": inst.qty_text(rem),
                         "price": inst.price_text(price) if price else None,
                         "stop": inst.price_text(stop) if stop else None})
    return rows


def rejections(pit: Pit) -> list[dict]:
    """The notary's reject record: what was refused and why."""
    path = pit.rejects / "rejects.mbox"
    out = []
    if path.exists():
        for msg in mbox.iter_file(path):
            stamp, refused = mbox.split_stamp(msg)      # the notary's lines, then the message
            h = mbox.headers(stamp, ["x-pit-rejected", "x-pit-time"])
            try:
                h.update(mbox.headers(refused, ["from", "subject"]))
            except mbox.MboxError:
                pass                    # refused as it came: its headers may be anything
            out.append({"time": h.get("x-pit-time", ""), "from": h.get("from", ""),
                        "subject": h.get("subject", ""), "reason": h.get("x-pit-rejected", "")})
    return out


def filter_rejections(pit: Pit) -> list[dict]:
    """``rejected`` lines of the filters' reports in the archive."""
    from pit.filter import signed_text
    out = []
    for seq, st, msg in records(pit):
        if st.get("x-pit-kind") == "report":
            for line in signed_text(msg).split("\n"):
                if line.startswith("rejected "):
                    out.append({"report": seq, "filter": st.get("x-pit-account", ""), "line": line})
    return out
