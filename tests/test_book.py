"""Unit tests for pit.book: one test (or a few) per rule and order type."""

from __future__ import annotations

import pytest

from pit import bookstate
from pit.book import (BUY, CANCEL, FOK, IOC, LIMIT, MARKET, MODIFY, NEW, SELL, STOP_LIMIT,
                      STOP_LOSS, TAKE_PROFIT, CheckpointError, Engine, format_event)


@pytest.fixture
def eng():
    e = Engine()
    e.add_book("ACME")
    e.add_book("ZINC")
    return e


class Seq:
    """Hands out increasing sequence numbers, as the notary does."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return self.n


@pytest.fixture
def seq():
    return Seq()


def place(eng, seq, owner, side, kind, qty, price=0, stop=0, cap=0, ticker="ACME"):
    """Place an order with oid == seq; return (oid, event lines it produced)."""
    n = seq()
    start = len(eng.events)
    eng.new(n, n, owner, ticker, side, kind, qty, price, stop, cap)
    return n, [format_event(e) for e in eng.events[start:]]


def lines(eng, start=0):
    return [format_event(e) for e in eng.events[start:]]


# ------------------------------------------------------------------- basics
def test_empty_book(eng):
    assert eng.best_bid("ACME") is None and eng.best_ask("ACME") is None
    assert eng.depth("ACME", BUY, 5) == [] and eng.last_price("ACME") is None
    assert eng.level_qty("ACME", SELL, 100) == 0 and eng.order(1) is None


def test_limit_rests_and_market_data(eng, seq):
    a, ev = place(eng, seq, "alice", BUY, LIMIT, 100, 1250)
    assert ev == ["accepted 1 oid 1 alice ACME buy limit qty 100 price 1250 stop 0 cap 0"]
    place(eng, seq, "bob", BUY, LIMIT, 50, 1250)
    place(eng, seq, "bob", BUY, LIMIT, 10, 1249)
    place(eng, seq, "carol", SELL, LIMIT, 7, 1252)
    assert eng.best_bid("ACME") == 1250 and eng.best_ask("ACME") == 1252
    assert eng.level_qty("ACME", BUY, 1250) == 150
    assert eng.depth("ACME", BUY, 5) == [(1250, 150, 2), (1249, 10, 1)]
    assert eng.depth("ACME", BUY, 1) == [(1250, 150, 2)]
    assert eng.order(a) == ("ACME", BUY, LIMIT, "alice", 100, 1250, 0)


def test_exact_fill_at_maker_price(eng, seq):
    place(eng, seq, "alice", SELL, LIMIT, 100, 1250)
    t, ev = place(eng, seq, "bob", BUY, LIMIT, 100, 1260)
    assert ev[1:] == ["trade 2 ACME qty 100 price 1250 maker 1 alice taker 2 bob buy"]
    assert eng.best_ask("ACME") is None and eng.best_bid("ACME") is None
    assert eng.last_price("ACME") == 1250 and eng.order(1) is None and eng.order(2) is None


def test_partial_fill_across_levels_in_priority_order(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 101)
    place(eng, seq, "b", SELL, LIMIT, 10, 100)
    place(eng, seq, "c", SELL, LIMIT, 10, 100)
    place(eng, seq, "d", SELL, LIMIT, 10, 103)
    t, ev = place(eng, seq, "e", BUY, LIMIT, 35, 102)
    assert ev[1:] == [
        "trade 5 ACME qty 10 price 100 maker 2 b taker 5 e buy",
        "trade 5 ACME qty 10 price 100 maker 3 c taker 5 e buy",
        "trade 5 ACME qty 10 price 101 maker 1 a taker 5 e buy",
    ]
    assert eng.order(t) == ("ACME", BUY, LIMIT, "e", 5, 102, 0)    # rest rests at its limit
    assert eng.best_bid("ACME") == 102 and eng.best_ask("ACME") == 103


def test_partial_maker_keeps_its_place(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "b", SELL, LIMIT, 10, 100)
    place(eng, seq, "c", BUY, LIMIT, 4, 100)
    _, ev = place(eng, seq, "d", BUY, LIMIT, 8, 100)
    assert ev[1:] == ["trade 4 ACME qty 6 price 100 maker 1 a taker 4 d buy",
                      "trade 4 ACME qty 2 price 100 maker 2 b taker 4 d buy"]


def test_books_are_separate(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100, ticker="ZINC")
    _, ev = place(eng, seq, "b", BUY, LIMIT, 10, 100)
    assert len(ev) == 1 and eng.best_ask("ZINC") == 100 and eng.best_bid("ACME") == 100


# ------------------------------------------------------------ cancel, modify
def test_cancel_of_partly_filled_order(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "b", BUY, LIMIT, 4, 100)
    n = len(eng.events)
    eng.cancel(seq(), 1, "a")
    assert lines(eng, n) == ["cancelled 3 oid 1 qty 6 cancel a ACME sell price 100"]
    assert eng.best_ask("ACME") is None and eng.level_qty("ACME", SELL, 100) == 0
    eng.cancel(seq(), 1, "a")
    assert lines(eng, n + 1) == ["rejected 4 oid 1 not resting"]


def test_cancelled_order_is_skipped_by_matching(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "b", SELL, LIMIT, 10, 100)
    eng.cancel(seq(), 1, "a")
    _, ev = place(eng, seq, "c", BUY, LIMIT, 10, 100)
    assert ev[1:] == ["trade 4 ACME qty 10 price 100 maker 2 b taker 4 c buy"]


def test_modify_decrease_keeps_priority(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "b", SELL, LIMIT, 10, 100)
    n = len(eng.events)
    eng.modify(seq(), 1, "a", 5, 100)
    assert lines(eng, n) == ["modified 3 oid 1 a ACME sell qty 5 price 100 stop 0 priority kept"]
    assert eng.level_qty("ACME", SELL, 100) == 15
    _, ev = place(eng, seq, "c", BUY, LIMIT, 5, 100)
    assert ev[1:] == ["trade 4 ACME qty 5 price 100 maker 1 a taker 4 c buy"]


@pytest.mark.parametrize("qty,price", [(11, 100), (10, 101), (5, 101)])
def test_modify_increase_or_reprice_loses_priority(eng, seq, qty, price):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "b", SELL, LIMIT, 10, 100)
    place(eng, seq, "b", SELL, LIMIT, 10, 101)
    n = len(eng.events)
    eng.modify(seq(), 1, "a", qty, price)
    assert lines(eng, n)[0].endswith("priority lost")
    _, ev = place(eng, seq, "c", BUY, LIMIT, 30, 101)
    makers = [e.split()[8] for e in ev if e.startswith("trade")]
    assert makers == (["2", "1", "3"] if price == 100 else ["2", "3", "1"])


def test_modify_that_crosses_matches(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 105)
    place(eng, seq, "b", BUY, LIMIT, 4, 100)
    n = len(eng.events)
    eng.modify(seq(), 2, "b", 4, 105)
    assert lines(eng, n) == ["modified 3 oid 2 b ACME buy qty 4 price 105 stop 0 priority lost",
                             "trade 3 ACME qty 4 price 105 maker 1 a taker 2 b buy"]
    assert eng.order(2) is None and eng.level_qty("ACME", SELL, 105) == 6


def test_modify_and_cancel_of_untriggered_stop(eng, seq):
    s, _ = place(eng, seq, "a", SELL, STOP_LIMIT, 10, 95, stop=98)
    n = len(eng.events)
    eng.modify(seq(), s, "a", 8, 97, 94)
    assert lines(eng, n) == ["modified 2 oid 1 a ACME sell qty 8 price 94 stop 97 priority lost"]
    assert eng.order(s) == ("ACME", SELL, STOP_LIMIT, "a", 8, 94, 97)
    eng.cancel(seq(), s, "a")
    assert lines(eng, n + 1) == ["cancelled 3 oid 1 qty 8 cancel a ACME sell price 94"]
    assert eng.order(s) is None


# ------------------------------------------------------------ IOC, FOK, market
def test_ioc_fills_what_it_can(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "a", SELL, LIMIT, 10, 102)
    _, ev = place(eng, seq, "b", BUY, IOC, 15, 101)
    assert ev[1:] == ["trade 3 ACME qty 10 price 100 maker 1 a taker 3 b buy",
                      "cancelled 3 oid 3 qty 5 ioc b ACME buy price 101"]
    assert eng.best_bid("ACME") is None


def test_fok_that_would_fill_only_partly_fills_nothing(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    place(eng, seq, "a", SELL, LIMIT, 10, 102)
    before = bookstate.write(eng)
    _, ev = place(eng, seq, "b", BUY, FOK, 15, 101)
    assert ev[1:] == ["cancelled 3 oid 3 qty 15 fok b ACME buy price 101"]
    assert bookstate.write(eng).split("\n")[2:] == before.split("\n")[2:]   # only last-oid moved
    _, ev = place(eng, seq, "b", BUY, FOK, 15, 102)
    assert [e.split()[4] for e in ev[1:]] == ["10", "5"]


def test_fok_does_not_count_own_orders(eng, seq):
    place(eng, seq, "b", SELL, LIMIT, 10, 100)
    place(eng, seq, "a", SELL, LIMIT, 10, 100)
    _, ev = place(eng, seq, "b", BUY, FOK, 15, 100)
    assert ev[1:] == ["cancelled 3 oid 3 qty 15 fok b ACME buy price 100"]
    assert eng.level_qty("ACME", SELL, 100) == 20        # untouched, own order included


def test_market_sweeps_and_never_rests(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 5, 100)
    place(eng, seq, "a", SELL, LIMIT, 5, 110)
    _, ev = place(eng, seq, "b", BUY, MARKET, 12)
    assert ev[1:] == ["trade 3 ACME qty 5 price 100 maker 1 a taker 3 b buy",
                      "trade 3 ACME qty 5 price 110 maker 2 a taker 3 b buy",
                      "cancelled 3 oid 3 qty 2 market b ACME buy price 0"]
    assert eng.best_bid("ACME") is None


def test_market_on_empty_book_is_accepted_then_cancelled(eng, seq):
    _, ev = place(eng, seq, "b", SELL, MARKET, 12)
    assert ev == ["accepted 1 oid 1 b ACME sell market qty 12 price 0 stop 0 cap 0",
                  "cancelled 1 oid 1 qty 12 market b ACME sell price 0"]


def test_cap_limits_notional(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 5, 100)
    place(eng, seq, "a", SELL, LIMIT, 5, 110)
    _, ev = place(eng, seq, "b", BUY, MARKET, 10, cap=500 + 2 * 110 + 50)
    assert ev[1:] == ["trade 3 ACME qty 5 price 100 maker 1 a taker 3 b buy",
                      "trade 3 ACME qty 2 price 110 maker 2 a taker 3 b buy",
                      "cancelled 3 oid 3 qty 3 cap b ACME buy price 0"]


def test_cap_spent_exactly_still_binds(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 1, 100)
    place(eng, seq, "a", SELL, LIMIT, 5, 110)
    _, ev = place(eng, seq, "b", BUY, MARKET, 3, cap=100)
    assert ev[2:] == ["cancelled 3 oid 3 qty 2 cap b ACME buy price 0"]


# --------------------------------------------------------------- self-trade
def test_self_trade_cancels_resting_and_continues(eng, seq):
    place(eng, seq, "a", SELL, LIMIT, 5, 100)
    place(eng, seq, "b", SELL, LIMIT, 5, 100)
    place(eng, seq, "a", SELL, LIMIT, 5, 101)
    _, ev = place(eng, seq, "a", BUY, LIMIT, 8, 101)
    assert ev[1:] == ["cancelled 4 oid 1 qty 5 self-trade a ACME sell price 100",
                      "trade 4 ACME qty 5 price 100 maker 2 b taker 4 a buy",
                      "cancelled 4 oid 3 qty 5 self-trade a ACME sell price 101"]
    assert eng.order(4) == ("ACME", BUY, LIMIT, "a", 3, 101, 0)
    assert eng.best_ask("ACME") is None


# -------------------------------------------------------------------- stops
def test_stop_loss_triggers_on_last_price(eng, seq):
    place(eng, seq, "m", BUY, LIMIT, 10, 99)
    s, _ = place(eng, seq, "s", SELL, STOP_LOSS, 4, stop=100)
    place(eng, seq, "m", SELL, LIMIT, 1, 101)
    _, ev = place(eng, seq, "x", BUY, LIMIT, 1, 101)        # last 101: not yet
    assert eng.order(s) is not None and len(ev) == 2
    _, ev = place(eng, seq, "x", SELL, LIMIT, 1, 99)        # last 99 <= 100: fires
    assert ev[1:] == ["trade 5 ACME qty 1 price 99 maker 1 m taker 5 x sell",
                      "triggered 5 oid 2 s ACME sell stop-loss stop 100 last 99",
                      "trade 5 ACME qty 4 price 99 maker 1 m taker 2 s sell"]


def test_stop_limit_becomes_limit_and_rests(eng, seq):
    place(eng, seq, "m", SELL, LIMIT, 1, 105)
    place(eng, seq, "s", BUY, STOP_LIMIT, 5, 104, stop=105)
    _, ev = place(eng, seq, "x", BUY, LIMIT, 1, 105)
    assert ev[-1] == "triggered 3 oid 2 s ACME buy stop-limit stop 105 last 105"
    assert eng.order(2) == ("ACME", BUY, LIMIT, "s", 5, 104, 0)


def test_take_profit_triggers_the_favourable_way(eng, seq):
    place(eng, seq, "m", BUY, LIMIT, 10, 105)
    place(eng, seq, "s", SELL, TAKE_PROFIT, 3, stop=108)
    place(eng, seq, "n", SELL, LIMIT, 1, 110)
    _, ev = place(eng, seq, "x", BUY, LIMIT, 1, 110)      # last 110 >= 108
    assert ev[1:] == ["trade 4 ACME qty 1 price 110 maker 3 n taker 4 x buy",
                      "triggered 4 oid 2 s ACME sell take-profit stop 108 last 110",
                      "trade 4 ACME qty 3 price 105 maker 1 m taker 2 s sell"]


def test_stop_already_satisfied_triggers_at_once(eng, seq):
    place(eng, seq, "m", SELL, LIMIT, 1, 100)
    place(eng, seq, "x", BUY, LIMIT, 1, 100)               # last 100
    place(eng, seq, "m", SELL, LIMIT, 5, 101)
    _, ev = place(eng, seq, "s", BUY, STOP_LOSS, 2, stop=99)
    assert ev[1:] == ["triggered 4 oid 4 s ACME buy stop-loss stop 99 last 100",
                      "trade 4 ACME qty 2 price 101 maker 3 m taker 4 s buy"]


def test_no_trigger_before_first_trade(eng, seq):
    _, ev = place(eng, seq, "s", BUY, STOP_LOSS, 2, stop=99)
    assert len(ev) == 1 and eng.order(1)[2] == STOP_LOSS


def test_stop_cascade(eng, seq):
    # bids at 100, 98, 96; the taker's fills move the price to 98, which fires
    # the stop at 99; its fills move the price to 96, which fires the one at 97.
    place(eng, seq, "m", BUY, LIMIT, 1, 100)
    place(eng, seq, "m", BUY, LIMIT, 2, 98)
    place(eng, seq, "m", BUY, LIMIT, 9, 96)
    place(eng, seq, "s1", SELL, STOP_LOSS, 2, stop=99)
    place(eng, seq, "s2", SELL, STOP_LOSS, 2, stop=97)
    _, ev = place(eng, seq, "x", SELL, LIMIT, 2, 98)
    assert ev[1:] == [
        "trade 6 ACME qty 1 price 100 maker 1 m taker 6 x sell",
        "trade 6 ACME qty 1 price 98 maker 2 m taker 6 x sell",
        "triggered 6 oid 4 s1 ACME sell stop-loss stop 99 last 98",
        "trade 6 ACME qty 1 price 98 maker 2 m taker 4 s1 sell",
        "trade 6 ACME qty 1 price 96 maker 3 m taker 4 s1 sell",
        "triggered 6 oid 5 s2 ACME sell stop-loss stop 97 last 96",
        "trade 6 ACME qty 2 price 96 maker 3 m taker 5 s2 sell",
    ]


def test_stops_triggered_together_run_in_acceptance_order(eng, seq):
    place(eng, seq, "m", BUY, LIMIT, 20, 90)
    place(eng, seq, "s1", SELL, STOP_LOSS, 1, stop=95)     # oid 2, accepted first
    place(eng, seq, "s2", SELL, STOP_LOSS, 1, stop=99)     # oid 3
    eng.modify(seq(), 2, "s1", 1, 96)                       # seq 4: s1 now after s2
    _, ev = place(eng, seq, "x", SELL, LIMIT, 1, 90)
    assert [e.split()[3] for e in ev if e.startswith("triggered")] == ["3", "2"]
    assert [e.split()[11] for e in ev if e.startswith("trade")] == ["5", "3", "2"]


# ---------------------------------------------------------------- rejections
REJECTIONS = [
    ((NEW, 50, 3, "a", "ACME", BUY, LIMIT, 1, 100, 0, 0), "duplicate order id 3 (order ids must increase; last was 3)"),
    ((NEW, 50, 2, "a", "ACME", BUY, LIMIT, 1, 100, 0, 0), "duplicate order id 2 (order ids must increase; last was 3)"),
    ((NEW, 50, 50, "a", "XYZ", BUY, LIMIT, 1, 100, 0, 0), "unknown ticker XYZ"),
    ((NEW, 50, 50, "a", "ACME", "hold", LIMIT, 1, 100, 0, 0), "side must be buy or sell, not 'hold'"),
    ((NEW, 50, 50, "a", "ACME", BUY, "iceberg", 1, 100, 0, 0), "unknown order kind 'iceberg'"),
    ((NEW, 50, 50, "a", "ACME", BUY, LIMIT, 0, 100, 0, 0), "quantity must be positive"),
    ((NEW, 50, 50, "a", "ACME", BUY, IOC, 1, 0, 0, 0), "price must be positive"),
    ((NEW, 50, 50, "a", "ACME", BUY, MARKET, 1, 100, 0, 0), "a market order takes no limit price"),
    ((NEW, 50, 50, "a", "ACME", BUY, STOP_LOSS, 1, 0, 0, 0), "stop price must be positive"),
    ((NEW, 50, 50, "a", "ACME", BUY, LIMIT, 1, 100, 90, 0), "a limit order takes no stop price"),
    ((NEW, 50, 50, "a", "ACME", BUY, LIMIT, 1, 100, 0, 500), "a cap is only for market, stop-loss and take-profit buys"),
    ((NEW, 50, 50, "a", "ACME", SELL, MARKET, 1, 0, 0, 500), "a cap is only for market, stop-loss and take-profit buys"),
    ((NEW, 50, 50, "a", "ACME", BUY, MARKET, 1, 0, 0, -5), "cap must not be negative"),
    ((CANCEL, 50, 99, "a"), "not resting"),
    ((CANCEL, 50, 1, "b"), "not the owner"),
    ((CANCEL, 50, 3, "b"), "not the owner"),
    ((MODIFY, 50, 99, "a", 1, 100), "not resting"),
    ((MODIFY, 50, 1, "b", 1, 100), "not the owner"),
    ((MODIFY, 50, 1, "a", 0, 100), "quantity must be positive"),
    ((MODIFY, 50, 1, "a", 5, 0), "price must be positive"),
    ((MODIFY, 50, 3, "a", 5, 0), "stop price must be positive"),
    ((MODIFY, 50, 1, "a", 5, 100, 99), "only an untriggered stop-limit order takes a new limit price"),
]


@pytest.mark.parametrize("msg,reason", REJECTIONS)
@pytest.mark.parametrize("batch", [False, True])
def test_rejection_leaves_book_untouched(msg, reason, batch):
    eng = Engine()
    eng.add_book("ACME")
    eng.run([(NEW, 1, 1, "a", "ACME", BUY, LIMIT, 10, 100, 0, 0),
             (NEW, 2, 2, "b", "ACME", SELL, LIMIT, 10, 101, 0, 0),
             (NEW, 3, 3, "a", "ACME", SELL, STOP_LOSS, 10, 0, 90, 0)])
    before = bookstate.write(eng)
    del eng.events[:]
    if batch:
        eng.run([msg])
    else:
        getattr(eng, msg[0])(*msg[1:])
    assert eng.events == [("rejected", 50, msg[2], reason)]
    assert bookstate.write(eng) == before


def test_acceptance_event_is_the_new_message(eng):
    """An accepted order's event is its NEW message: in a batch the very tuple
    given; one call at a time an equal tuple; the line says 'accepted'."""
    msg = (NEW, 1, 1, "a", "ACME", BUY, LIMIT, 10, 100, 0, 0)
    eng.run([msg])
    assert eng.events[0] is msg
    other = Engine()
    other.add_book("ACME")
    other.new(*msg[1:])
    assert other.events == [msg]
    assert format_event(msg) == "accepted 1 oid 1 a ACME buy limit qty 10 price 100 stop 0 cap 0"


@pytest.mark.parametrize("ticker", [None, "ZZZ"])
def test_batch_new_for_no_book_is_rejected_as_one_call_is(ticker):
    """The batch loop's book at hand starts as no book: a ticker of None is
    an unknown ticker there too, not the book at hand."""
    msg = (NEW, 1, 1, "a", ticker, BUY, LIMIT, 1, 100, 0, 0)
    batch, single = Engine(), Engine()
    for e in (batch, single):
        e.add_book("ACME")
    batch.run([msg])
    single.new(*msg[1:])
    assert batch.events == single.events == [("rejected", 1, 1, f"unknown ticker {ticker}")]
    assert bookstate.write(batch) == bookstate.write(single)


def test_unknown_batch_operation(eng):
    with pytest.raises(ValueError, match="unknown operation 'buy'"):
        eng.run([("buy", 1, 1)])


def test_add_book_twice(eng):
    with pytest.raises(ValueError, match="already exists"):
        eng.add_book("ACME")


# ---------------------------------------------------------------- checkpoint
def build(eng, seq):
    place(eng, seq, "a", BUY, LIMIT, 10, 100)
    place(eng, seq, "b", BUY, LIMIT, 5, 100)
    place(eng, seq, "c", BUY, LIMIT, 5, 99)
    place(eng, seq, "d", SELL, LIMIT, 7, 103)
    place(eng, seq, "e", SELL, LIMIT, 1, 101)
    place(eng, seq, "x", BUY, LIMIT, 1, 101)                  # trade: last 101
    place(eng, seq, "f", SELL, STOP_LIMIT, 3, 95, stop=98)
    place(eng, seq, "g", BUY, TAKE_PROFIT, 2, stop=97, cap=1000, ticker="ZINC")
    eng.cancel(seq(), 3, "c")


def test_checkpoint_text(eng, seq):
    build(eng, seq)
    assert bookstate.write(eng) == (
        "pit-book checkpoint 1\n"
        "last-oid 8\n"
        "book ACME last 101\n"
        "bid 100 oid 1 a qty 10\n"
        "bid 100 oid 2 b qty 5\n"
        "ask 103 oid 4 d qty 7\n"
        "stop oid 7 f sell stop-limit qty 3 stop 98 limit 95 cap 0 prio 7\n"
        "book ZINC last none\n"
        "stop oid 8 g buy take-profit qty 2 stop 97 limit 0 cap 1000 prio 8\n"
        "end\n")


def test_restore_round_trip_and_continue(eng, seq):
    build(eng, seq)
    copy = bookstate.read(bookstate.write(eng))
    assert bookstate.write(copy) == bookstate.write(eng)
    assert copy.best_bid("ACME") == 100 and copy.depth("ACME", BUY, 2) == [(100, 15, 2)]
    more = [(NEW, 19, 19, "i", "ACME", BUY, LIMIT, 5, 97, 0, 0),
            (NEW, 20, 20, "h", "ACME", SELL, MARKET, 17, 0, 0, 0), (CANCEL, 21, 4, "d"),
            (NEW, 22, 22, "h", "ACME", BUY, LIMIT, 3, 99, 0, 0)]
    del eng.events[:]
    eng.run(more)
    copy.run(more)
    assert copy.events == eng.events and bookstate.write(copy) == bookstate.write(eng)
    assert any(e[0] == "triggered" for e in eng.events)


@pytest.mark.parametrize("text,where", [
    ("", "line 0: missing 'end'"),
    ("pit-book checkpoint 2\n", "line 1"),
    ("pit-book checkpoint 1\nlast-oid x\nend\n", "line 2"),
    ("pit-book checkpoint 1\nlast-oid 3\nbid 100 oid 1 a qty 1\nend\n", "line 3: order before any 'book' line"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 100 oid 1 a qty 0\nend\n", "line 4"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 100 oid 1 a qty 1\n", "missing 'end'"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 100 oid 1 a qty 1\n"
     "ask 100 oid 2 b qty 1\nend\n", "crossed"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nend\nbook B last none\n", "line 5: text after 'end'"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 100 oid 1 a qty 1\n"
     "bid 99 oid 1 b qty 1\nend\n", "line 5: order 1 appears twice"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 0100 oid 1 a qty 1\nend\n",
     "line 4: '0100' is not a canonical whole number"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 100 oid 1 a b qty 1\nend\n",
     "line 4: unexpected line"),
    ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nend\nbid 100 oid 1 a qty 1\n",
     "line 5: text after 'end'"),
    ("pit-book checkpoint 1\nlast-oid 5\nbook A last none\n"
     "stop oid 5 a sell stop-loss qty 1 stop 9 limit 3 cap 0 prio 5\nend\n",
     "line 4: only a stop-limit order has a limit price"),
    ("pit-book checkpoint 1\nlast-oid 5\nbook A last none\n"
     "stop oid 5 a sell stop-limit qty 1 stop 9 limit 0 cap 0 prio 5\nend\n",
     "line 4: only a stop-limit order has a limit price"),
    ("pit-book checkpoint 1\nlast-oid 5\nbook A last none\nbid 100 oid 5 a qty 1\n"
     "stop oid 5 a sell stop-loss qty 1 stop 9 limit 0 cap 0 prio 5\nend\n",
     "line 5: order 5 appears twice"),
    ("pit-book checkpoint 1\nlast-oid 5\nbook A last none\n"
     "stop oid 5 a sell stop-gain qty 1 stop 9 limit 0 cap 0 prio 5\nend\n",
     "line 4: bad stop side/kind"),
    ("pit-book checkpoint 1\nlast-oid 5\nbook A last none\n"
     "stop oid 5 a sell stop-loss qty 01 stop 9 limit 0 cap 0 prio 5\nend\n",
     "line 4: '01' is not a canonical whole number"),
    ("pit-book checkpoint 1\nlast-oid 5\n"
     "stop oid 5 a sell stop-loss qty 1 stop 9 limit 0 cap 0 prio 5\nend\n",
     "line 3: stop before any 'book' line"),
])
def test_restore_refuses_bad_text(text, where):
    with pytest.raises(CheckpointError, match=where):
        bookstate.read(text)


_STOP = "stop oid 5 a sell stop-loss qty 1 stop 9 limit 0 cap 0 prio 5\n"


@pytest.mark.parametrize("text,in_sections", [
    (f"pit-book checkpoint 1\nlast-oid 9\nbook A last none\n{_STOP}bid 100 oid 1 a qty 1\nend\n", False),
    (f"pit-book checkpoint 1\nlast-oid 9\nbook A last none\nbid 100 oid 1 a qty 1\n{_STOP}"
     "bid 99 oid 2 b qty 1\nend\n", False),
    ("pit-book checkpoint 1\nlast-oid 9\nbook A last none\nbid 100 oid 1 a qty 1\nend", False),
    ("pit-book checkpoint 1\nlast-oid 9\nbook B last 7\nbid 100 oid 1 a qty 1\nbook A last none\n"
     f"ask 100 oid 2 b qty 1\nbid 98 oid 3 a qty 2\nbid 99 oid 4 c qty 1\nbid 98 oid 6 c qty 3\n{_STOP}"
     "end\n", True),
])
def test_restore_reads_any_layout_it_accepts_alike(text, in_sections):
    """restore reads the layout checkpoint() writes a section at a time and
    anything else line by line: the same engine either way."""
    assert (bookstate._read_sections(text) is not None) == in_sections
    by_line = bookstate._read_lines(text)
    bookstate._finish(by_line)
    eng = bookstate.read(text)
    assert bookstate.write(eng) == bookstate.write(by_line)
    assert [list(b.bids.levels) + list(b.asks.levels) for b in eng._books.values()] == \
        [list(b.bids.levels) + list(b.asks.levels) for b in by_line._books.values()]


def test_restore_reads_a_long_section_a_piece_at_a_time(monkeypatch):
    """A book's resting orders are searched a piece of text at a time: the
    same engine whatever the piece, and a bad line in any piece sends the
    text to the line-by-line reader."""
    lines = [f"{'bid' if i < 30 else 'ask'} {(100 - i // 4) if i < 30 else (101 + i // 4)} "
             f"oid {i + 1} o{i % 3} qty {i % 5 + 1}" for i in range(60)]
    text = ("pit-book checkpoint 1\nlast-oid 99\nbook A last none\n" + "\n".join(lines)
            + "\nstop oid 99 a sell stop-loss qty 1 stop 9 limit 0 cap 0 prio 99\nend\n")
    whole = bookstate.read(text)
    for piece in (1, 7, 40, 100, 1 << 16):
        monkeypatch.setattr(bookstate, "_SECTION_PIECE", piece)
        assert bookstate._read_sections(text) is not None
        eng = bookstate.read(text)
        assert bookstate.write(eng) == bookstate.write(whole) == text
        assert list(eng._orders) == list(whole._orders)
        bad = text.replace("oid 45 ", "oid 045 ")
        assert bookstate._read_sections(bad) is None
        with pytest.raises(CheckpointError, match="'045' is not a canonical"):
            bookstate.read(bad)


def test_restore_keeps_level_order_when_a_level_comes_back():
    text = ("pit-book checkpoint 1\nlast-oid 3\nbook A last none\nbid 100 oid 1 a qty 1\n"
            "bid 99 oid 2 b qty 1\nbid 100 oid 3 c qty 1\nend\n")
    eng = bookstate.read(text)
    assert eng.depth("A", BUY, 5) == [(100, 2, 2), (99, 1, 1)]
    assert "bid 100 oid 1 a qty 1\nbid 100 oid 3 c qty 1\nbid 99" in bookstate.write(eng)


# ------------------------------------------------------------- lazy cancel
def test_cancelled_best_level_is_skipped(eng, seq):
    a, _ = place(eng, seq, "alice", BUY, LIMIT, 5, 101)
    place(eng, seq, "bob", BUY, LIMIT, 7, 100)
    eng.cancel(seq(), a, "alice")
    assert eng.depth("ACME", BUY, 5) == [(100, 7, 1)] and eng.level_qty("ACME", BUY, 101) == 0
    assert eng.best_bid("ACME") == 100
    # a sell at 101 meets only the dead level: no trade, it rests
    s, ev = place(eng, seq, "carol", SELL, LIMIT, 3, 101)
    assert len(ev) == 1 and eng.best_ask("ACME") == 101 and eng.best_bid("ACME") == 100


def test_dead_level_hit_by_crossing_order_before_any_query(eng, seq):
    a, _ = place(eng, seq, "alice", SELL, LIMIT, 5, 100)
    place(eng, seq, "bob", SELL, LIMIT, 7, 102)
    eng.cancel(seq(), a, "alice")
    t, ev = place(eng, seq, "carol", BUY, IOC, 10, 102)
    assert ev[1:] == ["trade 4 ACME qty 7 price 102 maker 2 bob taker 4 carol buy",
                      "cancelled 4 oid 4 qty 3 ioc carol ACME buy price 102"]


def test_compaction_changes_nothing_observable(monkeypatch):
    import pit.book
    from bench.streams import make_stream
    stream = make_stream(6000, seed=3)

    def play(slack):
        monkeypatch.setattr(pit.book, "_DEAD_SLACK", slack)
        batch, single = Engine(), Engine()
        for e in (batch, single):
            e.add_book("ACME")
        for i in range(0, len(stream), 500):
            batch.run(stream[i:i + 500])
        for m in stream:
            getattr(single, m[0])(*m[1:])
        assert batch.events == single.events
        return batch

    lazy, eager = play(10**9), play(0)
    assert lazy._dead > 1000 and eager._dead <= len(eager._orders)
    assert eager.events == lazy.events and bookstate.write(eager) == bookstate.write(lazy)
    assert eager.depth("ACME", BUY, 50) == lazy.depth("ACME", BUY, 50)
    assert sum(len(q) for _, q in eager._books["ACME"].bids.levels.values()) < \
        sum(len(q) for _, q in lazy._books["ACME"].bids.levels.values())


# ---------------------------------------------------------------- batch, text
def test_run_equals_one_at_a_time(seq):
    msgs = [(NEW, 1, 1, "a", "ACME", BUY, LIMIT, 10, 100, 0, 0),
            (NEW, 2, 2, "b", "ACME", SELL, IOC, 4, 99, 0, 0),
            (MODIFY, 3, 1, "a", 3, 100),
            (NEW, 4, 4, "c", "ACME", SELL, STOP_LOSS, 1, 0, 100, 0),
            (CANCEL, 5, 1, "a"),
            (CANCEL, 6, 1, "a")]
    one, batch = Engine(), Engine()
    for e in (one, batch):
        e.add_book("ACME")
    for m in msgs:
        getattr(one, m[0])(*m[1:])
    batch.run(msgs)
    assert one.events == batch.events and bookstate.write(one) == bookstate.write(batch)


def test_run_with_equal_strings_that_are_not_the_constants():
    """The batch loop's fast path tests identity with the module's constants;
    equal strings built at run time (as a parser may make them) give the same
    events through the general path."""
    from bench.streams import make_stream

    def fresh(word):
        return "".join(list(word)) if isinstance(word, str) else word

    stream = make_stream(3000, seed=5)
    copied = [tuple(fresh(x) for x in m) for m in stream]
    assert copied[0][0] is not NEW and copied[0] == stream[0]
    a, b = Engine(), Engine()
    for e in (a, b):
        e.add_book("ACME")
    a.run(stream)
    b.run(copied)
    assert a.events == b.events and bookstate.write(a) == bookstate.write(b)


def test_format_event_every_kind():
    assert format_event(("rejected", 5, 7, "not resting")) == "rejected 5 oid 7 not resting"
    assert format_event(("triggered", 5, 7, 98, 97, "a", "ACME", SELL, STOP_LOSS)) == \
        "triggered 5 oid 7 a ACME sell stop-loss stop 98 last 97"
    assert format_event(("modified", 5, 7, 3, 100, 0, True, "a", "ACME", BUY)) == \
        "modified 5 oid 7 a ACME buy qty 3 price 100 stop 0 priority kept"
    with pytest.raises(ValueError):
        format_event(("nonsense",))


def test_capped_buy_is_not_capped_by_a_level_of_cancelled_orders(eng, seq):
    """A level whose orders are all cancelled is no liquidity: a capped buy
    facing only such a level is cancelled as a market order with nothing to
    fill ('market'), not stopped by the cap ('cap')."""
    dead, _ = place(eng, seq, "s", SELL, LIMIT, 5, 50)
    eng.cancel(seq(), dead, "s")
    _, lines = place(eng, seq, "b", BUY, MARKET, 1, cap=10)
    assert lines[-1].split()[6] == "market", lines
