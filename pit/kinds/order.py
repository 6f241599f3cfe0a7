"""Order: a member's new order, or its cancel or modify of one, for an
account it owns.

    Order: buy 100 ACME at 12.50
    Order: sell 10 ACME stop 11 limit 10.9
    Order: cancel 17
    Order: modify 17 qty 90 price 12.45

The grammar forgives case, spacing and synonyms (``@``, ``mkt``, ``tp``);
the notary stamps the canonical text, which the specialist reads with
:func:`parse_canonical_order` (docs/kinds/order.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pit import grammar
from pit.grammar import MessageError
from pit.record import Record, replace
from pit.units import Currency, Instrument

NAME = "order"
KEY = "Order"
SIGNER = "owner"
NUMBERS = True


class Order(Record, frozen=True):
    """A new order.  ``price`` is the limit price (limit, ioc, fok,
    stop-limit); ``stop`` the trigger (stop-loss, stop-limit, take-profit)."""
    side: str                      # "buy" | "sell"
    qty: str
    ticker: str
    type: str                      # limit ioc fok market stop-loss stop-limit take-profit
    price: str | None = None
    stop: str | None = None
    lots: int | None = None
    ticks: int | None = None
    stop_ticks: int | None = None


ORDER_TYPES = ("limit", "ioc", "fok", "market", "stop-loss", "stop-limit", "take-profit")


class Cancel(Record, frozen=True):
    """Take a resting or waiting order named by its Ref off the book.
    ``ticker`` is the referenced order's, given to resolve(): the notary
    stamps it, so the cancel reaches that ticker's specialist."""
    ref: str
    ticker: str | None = None


class Modify(Record, frozen=True):
    """Change a resting order named by its Ref: any of quantity, limit price
    (``price``) and trigger price (``stop``); ``None`` keeps the old value.
    ``ticker`` is the referenced order's, given to resolve()."""
    ref: str
    qty: str | None = None
    price: str | None = None
    stop: str | None = None
    ticker: str | None = None
    lots: int | None = None
    ticks: int | None = None
    stop_ticks: int | None = None


CLASSES = (Order, Cancel, Modify)
EXAMPLES = ("buy 100 ACME limit 12.50", "cancel 17", "modify 17 qty 90")       # canonical text, one of each class


_MARKET = ("market", "mkt")
_STOP_WORDS = ("stop", "stop-loss", "sl", "stoploss")
_TP_WORDS = ("take-profit", "tp", "takeprofit")


def _merge_words(tokens: list[str]) -> list[str]:
    """'take profit' -> 'take-profit', 'stop loss' -> 'stop-loss'."""
    out: list[str] = []
    for tok in tokens:
        low = tok.lower()
        if out and (out[-1].lower(), low) in (("take", "profit"), ("stop", "loss")):
            out[-1] = out[-1].lower() + "-" + low
        else:
            out.append(tok)
    return out


def parse_order(text: str, line: int = 1) -> Order | Cancel | Modify:
    """Parse the value of an ``Order:`` line, forgiving case and spacing:
    ``buy 100 ACME at 12.50``, ``ioc sell 50 acme @ 12.55``, ``cancel 17``,
    ``modify 17 to 90 at 12.45`` ...  *line* is used in errors.  O(len(text))."""
    tokens = _merge_words(text.replace("@", " @ ").split())
    if not tokens:
        raise MessageError(line, "empty order")
    head = tokens[0].lower()
    if head == "cancel":
        if len(tokens) != 2:
            raise MessageError(line, "expected 'cancel REF'" if len(tokens) < 2 else
                               f"unexpected {grammar.show(' '.join(tokens[2:]))} after 'cancel REF'")
        return Cancel(grammar.ref(tokens[1], line))
    if head == "modify":
        return _parse_modify(tokens, line)
    tif = None
    if head in ("ioc", "fok"):
        tif = head
        tokens = tokens[1:]
        head = tokens[0].lower() if tokens else ""
    if head not in ("buy", "sell"):
        raise MessageError(line, f"expected 'buy', 'sell', 'cancel' or 'modify', found "
                                 f"{grammar.show(tokens[0]) if tokens else 'nothing'}")
    if len(tokens) < 3:
        raise MessageError(line, f"expected '{head} QTY TICKER ...'")
    qty = grammar.number(tokens[1], line, "quantity")
    ticker = grammar.ticker(tokens[2], line)
    price = stop = trigger = None
    market = False
    stop_limit = False
    rest = tokens[3:]
    i = 0

    def take_number(what: str) -> str:
        nonlocal i
        tok = rest[i + 1] if i + 1 < len(rest) else None
        i += 2
        return grammar.number(tok, line, what)

    def set_price(value: str) -> None:
        nonlocal price
        if price is not None:
            raise MessageError(line, f"two limit prices: {price} and {value}")
        price = value

    def set_stop(kind: str, value: str) -> None:
        nonlocal stop, trigger
        if stop is not None:
            raise MessageError(line, f"two trigger prices: {stop} and {value}")
        stop, trigger = value, kind

    while i < len(rest):
        tok = rest[i]
        low = tok.lower()
        nxt = rest[i + 1].lower() if i + 1 < len(rest) else None
        if low in ("at", "@"):
            if nxt in _MARKET:
                market = True
                i += 2
            else:
                set_price(take_number("price"))
        elif low in ("limit", "lmt"):
            if nxt is not None and grammar.is_number(nxt):
                set_price(take_number("limit price"))
            elif i > 0 and grammar.is_number(rest[i - 1]) and price == rest[i - 1]:
                i += 1            # "12.50 limit": the price came first
            else:
                raise MessageError(line, "expected a price after 'limit'")
        elif low in _MARKET:
            market = True
            i += 1
        elif low in ("ioc", "fok"):
            if tif is not None:
                raise MessageError(line, f"two time-in-force words: {tif} and {low}")
            tif = low
            if nxt is not None and grammar.is_number(nxt):
                set_price(take_number("price"))
            else:
                i += 1
        elif low in _STOP_WORDS:
            set_stop("stop", take_number("stop price"))
        elif low == "stop-limit":
            stop_limit = True
            set_stop("stop", take_number("stop price"))
        elif low in _TP_WORDS:
            set_stop("take-profit", take_number("take-profit price"))
        elif grammar.is_number(tok):
            set_price(grammar.number(tok, line, "price"))
            i += 1
        else:
            raise MessageError(line, f"unexpected {grammar.show(tok)} in order (expected 'at PRICE', "
                                     "'limit PRICE', 'market', 'ioc', 'fok', 'stop PRICE', "
                                     "'take-profit PRICE')")
    side = head
    if market:
        if price is not None or stop is not None or tif is not None:
            raise MessageError(line, "a market order takes no price, trigger, ioc or fok")
        return Order(side, qty, ticker, "market")
    if trigger == "take-profit":
        if price is not None or tif is not None:
            raise MessageError(line, "a take-profit order takes only its trigger price")
        return Order(side, qty, ticker, "take-profit", stop=stop)
    if trigger == "stop":
        if tif is not None:
            raise MessageError(line, f"a stop order cannot be {tif}")
        if price is None:
            if stop_limit:
                raise MessageError(line, "a stop-limit order needs 'limit PRICE'")
            return Order(side, qty, ticker, "stop-loss", stop=stop)
        return Order(side, qty, ticker, "stop-limit", price=price, stop=stop)
    if price is None:
        raise MessageError(line, "missing price: write 'at PRICE' or 'market'")
    return Order(side, qty, ticker, tif or "limit", price=price)


def _parse_modify(tokens: list[str], line: int) -> Modify:
    if len(tokens) < 2:
        raise MessageError(line, "expected 'modify REF qty Q price P stop S'")
    ref = grammar.ref(tokens[1], line)
    fields: dict[str, str] = {}
    names = {"qty": "qty", "quantity": "qty", "to": "qty", "price": "price", "at": "price",
             "@": "price", "limit": "price", "lmt": "price", "stop": "stop", "trigger": "stop"}
    rest = tokens[2:]
    i = 0
    while i < len(rest):
        name = names.get(rest[i].lower())
        if name is None:
            raise MessageError(line, f"unexpected {grammar.show(rest[i])} in modify (expected "
                                     "'qty Q', 'price P' or 'stop S')")
        if name in fields:
            raise MessageError(line, f"modify names {name} twice")
        what = {"qty": "quantity", "price": "price", "stop": "stop price"}[name]
        fields[name] = grammar.number(rest[i + 1] if i + 1 < len(rest) else None, line, what)
        i += 2
    if not fields:
        raise MessageError(line, "modify needs at least one of 'qty Q', 'price P', 'stop S'")
    return Modify(ref, **fields)


parse = parse_order


def text(ins: Order | Cancel | Modify) -> str:
    if isinstance(ins, Order):
        base = f"{ins.side} {ins.qty} {ins.ticker} "
        t = ins.type
        if t == "market":
            return base + "market"
        if t == "stop-limit":
            return base + f"stop-limit {ins.stop} limit {ins.price}"
        if t in ("stop-loss", "take-profit"):
            return base + f"{t} {ins.stop}"
        return base + f"{t} {ins.price}"
    if isinstance(ins, Cancel):
        return f"cancel {ins.ref}"
    parts = [f"modify {ins.ref}"]
    for name in ("qty", "price", "stop"):
        value = getattr(ins, name)
        if value is not None:
            parts.append(f"{name} {value}")
    return " ".join(parts)


def resolve(ins: Order | Cancel | Modify, instruments: Mapping[str, Instrument],
            currencies: Mapping[str, Currency], ticker: str | None,
            n: int | None) -> Order | Cancel | Modify:
    """A ``modify`` needs *ticker*, the ticker of the order it names; a
    ``cancel`` takes it (to be stamped) when given."""
    if isinstance(ins, Order):
        inst = _instrument(instruments, ins.ticker, n)
        lots = inst.qty(ins.qty.replace(",", ""))
        ticks = inst.price(ins.price.replace(",", "")) if ins.price is not None else None
        stop = inst.price(ins.stop.replace(",", "")) if ins.stop is not None else None
        return replace(ins, qty=inst.qty_text(lots), lots=lots,
                       price=inst.price_text(ticks) if ticks is not None else None, ticks=ticks,
                       stop=inst.price_text(stop) if stop is not None else None, stop_ticks=stop)
    if isinstance(ins, Cancel):
        if ticker is not None:
            ins = replace(ins, ticker=_instrument(instruments, ticker, n).ticker)
        return ins
    if ticker is None:
        raise MessageError(n, f"modify {ins.ref}: the ticker of order {ins.ref} is needed "
                              "to read its numbers")
    inst = _instrument(instruments, ticker, n)
    lots = inst.qty(ins.qty.replace(",", "")) if ins.qty is not None else None
    ticks = inst.price(ins.price.replace(",", "")) if ins.price is not None else None
    stop = inst.price(ins.stop.replace(",", "")) if ins.stop is not None else None
    return replace(ins, ticker=inst.ticker,
                   qty=inst.qty_text(lots) if lots is not None else None, lots=lots,
                   price=inst.price_text(ticks) if ticks is not None else None, ticks=ticks,
                   stop=inst.price_text(stop) if stop is not None else None, stop_ticks=stop)


def resolved(ins: Order | Cancel | Modify) -> bool:
    if isinstance(ins, Order):
        return ins.lots is not None
    return ins.ticker is not None


def _instrument(instruments: Mapping[str, Instrument], ticker: str, n: int | None) -> Instrument:
    inst = instruments.get(ticker)
    if inst is None:
        raise MessageError(n, f"unknown ticker {ticker}" + (
            f" (this pit trades {', '.join(sorted(instruments))})" if instruments else
            " (this pit has no instruments yet)"))
    return inst


# -- the canonical text, as the specialist reads it from the X-Pit-Request stamp

_N = r"([0-9]+(?:\.[0-9]+)?)"
_CANON_NEW = re.compile(
    rf"(buy|sell) {_N} ([A-Z][A-Z0-9.]{{0,11}}) (?:(limit|ioc|fok) {_N}|(market)"
    rf"|(stop-loss|take-profit) {_N}|stop-limit {_N} limit {_N})").fullmatch
_CANON_MODIFY = re.compile(
    rf"modify ([A-Za-z0-9._-]{{1,40}})(?: qty {_N})?(?: price {_N})?(?: stop {_N})?").fullmatch
_CANON_CANCEL = re.compile(r"cancel ([A-Za-z0-9._-]{1,40})").fullmatch


def parse_canonical_order(text: str) -> tuple:
    """Parse canonical order text (never the forgiving form) into a tuple:

    * new order: ``(side, qty, ticker, type, price, stop)``; ``price`` is
      the limit price or None, ``stop`` the trigger or None;
    * ``("cancel", ref)``;
    * ``("modify", ref, qty, price, stop)`` with None for what is kept.

    Numbers stay canonical decimal text (see :func:`canonical_steps`).
    Raises :class:`MessageError` on anything not canonical.  O(len(text)).
    """
    m = _CANON_NEW(text)
    if m is not None:
        side, qty, ticker, simple, price, market, trig_type, trig, stop, limit = m.groups()
        if simple:
            return (side, qty, ticker, simple, price, None)
        if market:
            return (side, qty, ticker, "market", None, None)
        if trig_type:
            return (side, qty, ticker, trig_type, None, trig)
        return (side, qty, ticker, "stop-limit", limit, stop)
    m = _CANON_CANCEL(text)
    if m is not None:
        return ("cancel", m.group(1))
    m = _CANON_MODIFY(text)
    if m is not None and m.lastindex > 1:
        return ("modify",) + m.groups()
    raise MessageError(None, f"not a canonical order: {grammar.show(text, 80)}")


def canonical_steps(text: str, step_units: int) -> int:
    """Whole steps in canonical decimal *text* printed with the step's own
    number of decimals; *step_units* is the step times 10**decimals (tick
    0.05 -> 5, lot 1 -> 1).  Exact for canonical text; O(len(text))."""
    units = int(text.replace(".", ""))
    steps, rest = divmod(units, step_units)
    if rest:
        raise MessageError(None, f"{text} is not a whole number of steps")
    return steps
