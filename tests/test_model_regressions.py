"""Disagreements the whole-pit model (tests/pit_model.py) found, each as the
smallest case that shows it, checked on the pit and on the model."""

from __future__ import annotations

from pit.book import BUY, FOK, LIMIT, MARKET, SELL, STOP_LIMIT, STOP_LOSS, Engine, format_event

from pit_model import Book, Instrument, Model, Order
from decimal import Decimal


def test_a_new_limit_alone_loses_a_stop_limits_trigger_priority():
    """Seed 2 of the model sessions: a buy stop-limit whose limit (not its
    stop) was modified fired before an older sell stop-loss in the pit, after
    it in the model, which read pit-book's "on the same terms" as the stop
    and quantity only.  The core keeps trigger priority only for the same
    stop, the same limit and no more quantity (pit-book, now explicit)."""
    eng = Engine()
    eng.add_book("T")
    eng.new(1, 1, "bob", "T", BUY, STOP_LIMIT, 20, 1010, 995, 0)
    eng.new(2, 2, "carol", "T", SELL, STOP_LOSS, 3, 0, 1005, 0)
    eng.modify(3, 1, "bob", 20, 995, 1005)                  # the limit only
    eng.new(4, 4, "dave", "T", SELL, LIMIT, 3, 1005, 0, 0)
    eng.new(5, 5, "erin", "T", BUY, FOK, 3, 1005, 0, 0)     # last 1005: both stops fire
    lines = [format_event(e) for e in eng.events]
    assert "modified 3 oid 1 bob T buy qty 20 price 1005 stop 995 priority lost" in lines
    fired = [ln.split()[3] for ln in lines if ln.startswith("triggered ")]
    assert fired == ["2", "1"]                               # carol's (prio 2) before bob's (prio 3)
    assert not any(ln.startswith("trade 5 T qty 3 price 1005 maker 1") for ln in lines)
    assert eng.order(1)[1:] == (BUY, LIMIT, "bob", 20, 1005, 0)   # bob's rests, untouched

    # the model, told the same
    m = Model("demo", "OP")
    inst = Instrument("T", "USD", Decimal("0.01"), Decimal("0.01"), Decimal("1"), 0, 0)
    m.instruments["T"], m.books["T"] = inst, Book()
    lines = []
    for acct in ("bob", "carol", "dave", "erin"):
        m.trading[f"{acct}:T", "USD"] = m.trading[f"{acct}:T", "T"] = 10 ** 6
    m._new("T", 1, "bob", "b", "buy 20 T stop-limit 9.95 limit 10.10", lines)
    m._new("T", 2, "carol", "c", "sell 3 T stop-loss 10.05", lines)
    m._modify("T", 3, "bob", "m", "b", {"price": "10.05"}, lines)
    m._new("T", 4, "dave", "d", "sell 3 T limit 10.05", lines)
    m._new("T", 5, "erin", "e", "buy 3 T fok 10.05", lines)
    assert "modified 3 bob b qty 20 price 10.05 stop 9.95 priority lost" in lines
    assert [ln.split()[3] for ln in lines if ln.startswith("triggered ")] == ["c", "b"]
    assert [o.ref for o in m.orders.values()] == ["b"] and m.orders[1].qty == 20
    assert isinstance(m.orders[1], Order)


def test_a_capped_market_buy_stops_at_a_level_it_cannot_afford_before_self_trade():
    """Seed 68 of `make model-long`: a triggered stop buy (a market buy with
    a cap) met its owner's own ask at a price it could not afford.  The pit
    cancelled the buy (`cap`) and left the ask; the model cancelled the ask
    for self-trade first.  pit-book now says the cap is looked at first."""
    eng = Engine()
    eng.add_book("T")
    eng.new(1, 1, "alice", "T", SELL, LIMIT, 50, 215, 0, 0)
    eng.new(2, 2, "alice", "T", BUY, MARKET, 10, 0, 0, 200)   # cap 200 < 215: nothing affordable
    lines = [format_event(e) for e in eng.events]
    assert lines[-1] == "cancelled 2 oid 2 qty 10 cap alice T buy price 0"
    assert eng.order(1) is not None and not any("self-trade" in ln for ln in lines)

    m = Model("demo", "OP")
    inst = Instrument("T", "USD", Decimal("0.01"), Decimal("0.01"), Decimal("1"), 0, 0)
    m.instruments["T"], m.books["T"] = inst, Book()
    m.trading["alice:T", "USD"], m.trading["alice:T", "T"] = 210, 50    # 2.10 USD: cap 200
    lines = []
    m._new("T", 1, "alice", "s", "sell 50 T limit 2.15", lines)
    m._new("T", 2, "alice", "b", "buy 10 T market", lines)
    assert lines[-1] == "cancelled 2 alice b 10 cap"
    assert [o.ref for o in m.orders.values()] == ["s"]


def test_a_triggered_stop_limit_joins_its_level_behind_what_rested_before():
    """Seed 82 of `make model-long`: an order rested at 10.10 in the same
    message that then fired an older stop-limit at 10.10.  In the pit the
    order that rested first fills first (FIFO inside a level, the stop-limit
    from its trigger); the model had ordered them by their ids."""
    eng = Engine()
    eng.add_book("T")
    eng.new(1, 1, "alice", "T", BUY, STOP_LIMIT, 5, 1010, 1005, 0)    # fires at 10.05 or more
    eng.new(2, 2, "bob", "T", SELL, LIMIT, 1, 1005, 0, 0)
    eng.new(3, 3, "carol", "T", BUY, LIMIT, 4, 1010, 0, 0)        # trades 1 at 10.05, rests 3; fires 1
    eng.new(4, 4, "dave", "T", SELL, LIMIT, 2, 1010, 0, 0)
    trades = [format_event(e) for e in eng.events if e[0] == "trade"]
    assert trades[-1] == "trade 4 T qty 2 price 1010 maker 3 carol taker 4 dave sell"

    m = Model("demo", "OP")
    inst = Instrument("T", "USD", Decimal("0.01"), Decimal("0.01"), Decimal("1"), 0, 0)
    m.instruments["T"], m.books["T"] = inst, Book()
    for acct in ("alice", "bob", "carol", "dave"):
        m.trading[f"{acct}:T", "USD"] = m.trading[f"{acct}:T", "T"] = 10 ** 6
    lines = []
    m._new("T", 1, "alice", "a", "buy 5 T stop-limit 10.05 limit 10.10", lines)
    m._new("T", 2, "bob", "b", "sell 1 T limit 10.05", lines)
    m._new("T", 3, "carol", "c", "buy 4 T limit 10.10", lines)
    m._new("T", 4, "dave", "d", "sell 2 T limit 10.10", lines)
    assert [ln for ln in lines if ln.startswith("trade 4 ")] == [
        "trade 4 T 2 at 10.10 USD buyer carol c seller dave d maker buy fees 0.00 0.00"]
