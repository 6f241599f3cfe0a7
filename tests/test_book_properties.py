"""Property tests: pit.book.Engine against the simple reference model.

Random streams over two tickers, three owners and a narrow price band (so that
orders cross, stops fire and cascade, self-trades happen) must give the same
events, checkpoints and market data in both; invariants hold after every
message; checkpoint + restore at any point changes nothing; ``run(batch)``
equals one call per message.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from book_reference import RefEngine
except ImportError:          # tests/ imported as a package
    from tests.book_reference import RefEngine
from pit import bookstate
from pit.book import (BUY, CANCEL, FOK, IOC, LIMIT, MARKET, MODIFY, NEW, SELL, STOP_LIMIT,
                      STOP_LOSS, TAKE_PROFIT, Engine, format_event)

TICKERS = ("A", "B")
OWNERS = ("ann", "bob", "cat")
KIND_WEIGHTS = [LIMIT] * 6 + [IOC, FOK, MARKET, STOP_LOSS, STOP_LIMIT, TAKE_PROFIT]

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def streams(draw, max_len=50):
    n = draw(st.integers(1, max_len))
    out = []
    placed = [1]                # cancels and modifies mostly name orders placed before
    price = st.integers(95, 105)
    target = lambda seq: draw(st.sampled_from(placed)) if draw(st.integers(0, 7)) else draw(st.integers(1, seq))
    for seq in range(1, n + 1):
        op = draw(st.sampled_from([NEW] * 6 + [CANCEL] * 2 + [MODIFY]))
        owner = draw(st.sampled_from(OWNERS))
        if op == NEW:
            kind = draw(st.sampled_from(KIND_WEIGHTS))
            side = draw(st.sampled_from((BUY, SELL)))
            qty = draw(st.integers(1, 6))
            p = draw(price) if kind in (LIMIT, IOC, FOK, STOP_LIMIT) else 0
            stop = draw(price) if kind in (STOP_LOSS, STOP_LIMIT, TAKE_PROFIT) else 0
            cap = 0
            if side == BUY and kind in (MARKET, STOP_LOSS, TAKE_PROFIT) and draw(st.booleans()):
                cap = draw(st.integers(0, 800))
            ticker = draw(st.sampled_from(TICKERS + ("A",) * 4 + ("ZZZ",)))
            oid = seq if draw(st.integers(0, 15)) else draw(st.integers(1, seq))
            if draw(st.integers(0, 30)) == 0:   # now and then something invalid
                qty, p = draw(st.sampled_from([(0, p), (qty, -1), (qty, 0)]))
            out.append((NEW, seq, oid, owner, ticker, side, kind, qty, p, stop, cap))
            placed.append(oid)
        elif op == CANCEL:
            out.append((CANCEL, seq, target(seq), owner))
        else:
            qty = draw(st.integers(1, 6)) if draw(st.integers(0, 15)) else 0
            msg = (MODIFY, seq, target(seq), owner, qty, draw(price))
            if draw(st.integers(0, 4)) == 0:
                msg += (draw(st.integers(0, 106)),)
            out.append(msg)
    return out


def fresh(cls):
    e = cls()
    for t in TICKERS:
        e.add_book(t)
    return e


def apply(e, m):
    op = m[0]
    if op == NEW:
        e.new(*m[1:])
    elif op == CANCEL:
        e.cancel(*m[1:])
    else:
        e.modify(*m[1:])


def check_invariants(eng: Engine, events: list):
    for t in TICKERS:
        bid, ask = eng.best_bid(t), eng.best_ask(t)
        assert bid is None or ask is None or bid < ask, f"{t} crossed {bid}/{ask}"
        for side in (BUY, SELL):
            for price, qty, count in eng.depth(t, side, 100):
                assert qty > 0 and count > 0
                assert eng.level_qty(t, side, price) == qty
    # quantity conserved: sum of level totals equals sum of open orders
    open_qty = {}
    for rec in eng._orders.values():
        key = (rec[4].ticker, rec[4].side, rec[3])
        open_qty[key] = open_qty.get(key, 0) + rec[0]
    for (t, side, price), q in open_qty.items():
        assert eng.level_qty(t, side, price) == q
    # every level's running total (what level_qty reads in O(1)) is its open quantity
    for book in eng._books.values():
        for half in (book.bids, book.asks):
            for price, (total, q) in half.levels.items():
                assert total == sum(rec[0] for rec in q), (book.ticker, half.side, price)
    # no trade-through: a taker's fills never improve for the maker as it sweeps
    prev = None
    for e in events:
        if e[0] == "trade":
            _, seq, t, price, qty, moid, toid, mown, town, side = e
            assert qty > 0 and mown != town
            if prev and prev[6] == toid and prev[2] == t:
                assert (price >= prev[3]) if side == BUY else (price <= prev[3])
            prev = e


@SETTINGS
@given(streams())
def test_same_events_as_reference(stream):
    eng, ref = fresh(Engine), fresh(RefEngine)
    for m in stream:
        n = len(eng.events)
        apply(eng, m)
        apply(ref, m)
        assert eng.events == ref.events, m
        check_invariants(eng, eng.events[n:])
        assert bookstate.write(eng) == ref.checkpoint()
        for t in TICKERS:
            assert eng.best_bid(t) == ref.best_bid(t) and eng.best_ask(t) == ref.best_ask(t)
            for side in (BUY, SELL):
                assert eng.depth(t, side, 3) == ref.depth(t, side, 3)
    for e in eng.events:
        assert format_event(e)


@SETTINGS
@given(streams(), st.integers(0, 50))
def test_restore_then_continue_is_the_same(stream, cut):
    cut = min(cut, len(stream))
    whole = fresh(Engine)
    whole.run(stream)
    first = fresh(Engine)
    first.run(stream[:cut])
    text = bookstate.write(first)
    second = bookstate.read(text)
    assert bookstate.write(second) == text
    assert bookstate._read_sections(text) is not None   # read a section at a time
    by_line = bookstate._read_lines(text)               # what restore falls back on
    bookstate._finish(by_line)
    assert internals(by_line) == internals(second)
    assert internals(bookstate.read("state\nbook\n" + text, 11)) == internals(second)
    second.run(stream[cut:])
    assert first.events + second.events == whole.events
    assert bookstate.write(second) == bookstate.write(whole)
    by_line.run(stream[cut:])
    assert by_line.events == second.events and bookstate.write(by_line) == bookstate.write(second)


def internals(eng: Engine):
    """Everything a restored engine holds, in the order it holds it."""
    def recs(q):
        return [(r[0], r[1], r[2], r[3], r[4].side) for r in q]
    books = {t: (b.last, list(b.up), list(b.down),
                 [(h.side, list(h.heap), [(p, lv[0], recs(lv[1])) for p, lv in h.levels.items()])
                  for h in (b.bids, b.asks)])
             for t, b in eng._books.items()}
    stops = [(oid, s[:4] + [s[4].ticker] + s[5:]) for oid, s in eng._stops.items()]
    return eng._last_oid, books, list(eng._orders), stops


@SETTINGS
@given(streams())
def test_batch_equals_one_at_a_time(stream):
    one = fresh(Engine)
    for m in stream:
        apply(one, m)
    batch = fresh(Engine)
    batch.run(stream)
    assert batch.events == one.events
    assert bookstate.write(batch) == bookstate.write(one)
