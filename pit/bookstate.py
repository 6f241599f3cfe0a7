"""The matching core's checkpoint: an engine's whole state as canonical text,
and that text read back: ``write(engine)``, ``read(text)`` (and ``prepare()``,
which a filter program calls while its input is on the way).

The text (docs/pit-book.md, "Checkpoint text")::

    pit-book checkpoint 1
    last-oid 57
    book ACME last 1250          (``last none`` before the first trade)
    bid 1250 oid 17 alice qty 100        (best level first, FIFO inside)
    ask 1251 oid 18 bob qty 10
    stop oid 20 carol sell stop-loss qty 10 stop 1200 limit 0 cap 0 prio 20
    end

Resting orders in priority order, untriggered stops in trigger-priority
order, last trade prices, the last order id: restoring and going on gives
exactly the events of never having stopped (property tested).  Reading is
strict: anything malformed is a CheckpointError naming its line.
"""

from __future__ import annotations

import gc
import re
import sys
from collections import deque
from heapq import heapify

from pit.book import BUY, SELL, STOP_LIMIT, STOPS, CheckpointError, Engine, fires_up

__all__ = ["write", "read", "prepare"]

_MAGIC = "pit-book checkpoint 1"
# A well-formed resting-order line of a checkpoint: side, price, oid, owner, qty
# (positive canonical numbers; the owner is any word without a space).
_ORDER_LINE = re.compile(r"(bid|ask) ([1-9][0-9]*) oid ([1-9][0-9]*) ([^ ]*) qty ([1-9][0-9]*)\Z")
# write() text as it is written, read a section at a time (_read_sections):
# the head, a book line, the book's resting orders, its stops, ... the end.
# Compiled on first use (prepare): `pit replay`, which imports the filter and
# so the core before it writes its first byte, reads no checkpoint.
_SECTION_PATTERNS = (
    (r"pit-book checkpoint 1\nlast-oid (0|[1-9][0-9]*)\n", 0),
    (r"book ([^ \n]+) last (none|[1-9][0-9]*)\n", 0),
    (r"^(bid|ask) ([1-9][0-9]*) oid ([1-9][0-9]*) ([^ \n]*) qty ([1-9][0-9]*)$", re.M),
    (r"^stop oid ([1-9][0-9]*) ([^ \n]*) (buy|sell) (stop-loss|stop-limit|take-profit) "
     r"qty ([1-9][0-9]*) stop ([1-9][0-9]*) limit (0|[1-9][0-9]*) "
     r"cap (0|[1-9][0-9]*) prio ([1-9][0-9]*)$", re.M),
)
_sections = None              # the head, book line, resting orders and stops patterns
_SECTION_PIECE = 1 << 16     # text of a section read with one search at a time (memory)


def write(eng: Engine) -> str:
    """Canonical text of *eng*'s whole state.  O(N + L log L) for N orders, L levels."""
    out = [_MAGIC, f"last-oid {eng._last_oid}"]
    stops_by_book: dict = {}
    for s in eng._stops.values():
        stops_by_book.setdefault(s[4].ticker, []).append(s)
    for ticker in sorted(eng._books):
        book = eng._books[ticker]
        out.append(f"book {ticker} last {'none' if book.last is None else book.last}")
        for half, word, rev in ((book.bids, "bid", True), (book.asks, "ask", False)):
            levels = half.levels
            for price in sorted(levels, reverse=rev):
                head = f"{word} {price} oid "
                out += [f"{head}{rec[1]} {rec[2]} qty {rec[0]}" for rec in levels[price][1] if rec[0]]
        for s in sorted(stops_by_book.get(ticker, ()), key=lambda s: (s[9], s[1])):
            out.append(f"stop oid {s[1]} {s[2]} {s[5]} {s[6]} qty {s[0]} stop {s[3]} "
                       f"limit {s[7]} cap {s[8]} prio {s[9]}")
    out.append("end")
    return "\n".join(out) + "\n"


def read(text: str, start: int = 0) -> Engine:
    """Rebuild an engine from write() text, ``text[start:]`` (read in place).
    O(N + L log L).  Raises CheckpointError naming the line for anything
    malformed."""
    # A million resting orders are a million new lists: the cyclic gc would
    # scan them over and over while they are built (see Engine.run).
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        eng = _read_sections(text, start)
        if eng is None:
            eng = _read_lines(text[start:] if start else text)
        _finish(eng)
        return eng
    finally:
        if paused:
            gc.enable()


def prepare() -> None:
    """Compile the patterns :func:`read` reads a checkpoint with, if not yet
    done: a filter program does it while its input is on the way, not after."""
    global _sections
    if _sections is None:
        _sections = tuple(re.compile(p, flags) for p, flags in _SECTION_PATTERNS)


def _read_sections(text: str, start: int = 0) -> Engine | None:
    """The engine of checkpoint text laid out exactly as write() writes it
    (each book's resting orders, then its stops), read with one pattern
    search per section rather than per line; None for any other text, which
    _read_lines reads line by line (refusing it, naming the line, if it
    must).  Not yet finished (see _finish)."""
    if _sections is None:
        prepare()
    head, book_line, order_lines, stop_lines = _sections
    m = head.match(text, start)
    if m is None or not text.endswith("\nend\n"):
        return None
    eng = Engine()
    eng._last_oid = int(m.group(1))
    orders, stops, intern = eng._orders, eng._stops, sys.intern
    pos, end = m.end(), len(text) - 4              # text[end:] is "end\n"
    count = 0                                      # order and stop lines read
    while pos < end:
        m = book_line.match(text, pos)
        if m is None:
            return None
        ticker, last = m.groups()
        try:
            eng.add_book(ticker)
        except ValueError:
            return None
        book = eng._books[ticker]
        book.last = None if last == "none" else int(last)
        pos = m.end()
        nxt = text.find("\nbook ", pos - 1, end) + 1 or end     # the next book line
        mid = text.find("\nstop ", pos - 1, nxt) + 1 or nxt     # this book's first stop
        level_text = level_word = None
        while pos < mid:                           # the resting orders, 64 KB at a time
            cut = text.find("\n", min(pos + _SECTION_PIECE, mid) - 1, mid) + 1 or mid
            found = order_lines.findall(text, pos, cut)
            if len(found) != text.count("\n", pos, cut):
                return None                        # a line that is not a resting order
            for word, price_text, oid, owner, qty in found:
                if price_text != level_text or word != level_word:
                    level_text, level_word = price_text, word
                    price = int(price_text)
                    half = book.bids if word == "bid" else book.asks
                    level = half.levels.get(price)
                    if level is None:
                        level = half.levels[price] = [0, deque()]
                    append = level[1].append
                oid = int(oid)
                rec = orders[oid] = [int(qty), oid, intern(owner), price, half]
                append(rec)
            count += len(found)
            pos = cut
        found = stop_lines.findall(text, mid, nxt)
        if len(found) != text.count("\n", mid, nxt):
            return None                            # a line that is not a stop
        for oid, owner, side, kind, qty, stop, limit, cap, prio in found:
            if (limit != "0") != (kind == STOP_LIMIT):
                return None
            oid, stop, prio = int(oid), int(stop), int(prio)
            stops[oid] = [int(qty), oid, intern(owner), stop, book, side, kind, int(limit),
                          int(cap), prio]
            if fires_up(side, kind):
                book.up.append((stop, prio, oid))
            else:
                book.down.append((-stop, prio, oid))
        count += len(found)
        pos = nxt
    if len(orders) + len(stops) != count or not stops.keys().isdisjoint(orders):
        return None                                # an oid met twice
    return eng


def _read_lines(text: str) -> Engine:
    """The engine of any checkpoint text read() accepts, a line at a time,
    each error naming its line.  Not yet finished (see _finish)."""
    eng = Engine()
    orders, stops = eng._orders, eng._stops
    order_line, intern = _ORDER_LINE.match, sys.intern
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    book = None
    seen_end = False
    level_text = level_word = level_book = None     # the level the last order joined
    for no, line in enumerate(lines, 1):
        m = order_line(line)
        if m is not None and book is not None and not seen_end:
            # the common line, well formed (the pattern is what the general
            # branch below accepts): parsed in one step
            word, price_text, oid, owner, qty = m.groups()
            oid = int(oid)
            if oid in orders or oid in stops:
                raise CheckpointError(f"checkpoint line {no}: order {oid} appears twice")
            if price_text != level_text or word != level_word or book is not level_book:
                # first order of a level (or a level met again out of order)
                level_text, level_word, level_book = price_text, word, book
                price = int(price_text)
                half = book.bids if word == "bid" else book.asks
                level = half.levels.get(price)
                if level is None:
                    level = half.levels[price] = [0, deque()]
                q = level[1]
            rec = orders[oid] = [int(qty), oid, intern(owner), price, half]
            q.append(rec)
            continue
        w = line.split(" ")
        try:
            if seen_end:
                raise ValueError("text after 'end'")
            if no == 1:
                if line != _MAGIC:
                    raise ValueError(f"expected {_MAGIC!r}")
            elif no == 2:
                if w[0] != "last-oid" or len(w) != 2:
                    raise ValueError("expected 'last-oid N'")
                eng._last_oid = _nat(w[1])
            elif w[0] == "book" and len(w) == 4 and w[2] == "last":
                eng.add_book(w[1])
                book = eng._books[w[1]]
                book.last = None if w[3] == "none" else _pos(w[3])
            elif w[0] in ("bid", "ask") and len(w) == 7 and w[2] == "oid" and w[5] == "qty":
                if book is None:
                    raise ValueError("order before any 'book' line")
                # well-formed order lines were taken by the fast branch above,
                # so one of these numbers is what is wrong
                _pos(w[1]), _pos(w[3]), _pos(w[6])
                raise ValueError(f"unexpected line {line!r}")
            elif (w[0] == "stop" and len(w) == 16 and w[1] == "oid" and w[6] == "qty"
                  and w[8] == "stop" and w[10] == "limit" and w[12] == "cap" and w[14] == "prio"):
                if book is None:
                    raise ValueError("stop before any 'book' line")
                oid, owner, side, kind = _pos(w[2]), sys.intern(w[3]), w[4], w[5]
                if side not in (BUY, SELL) or kind not in STOPS:
                    raise ValueError(f"bad stop side/kind {side} {kind}")
                if (w[11] == "0") != (kind != STOP_LIMIT):
                    raise ValueError("only a stop-limit order has a limit price")
                if oid in orders or oid in stops:
                    raise ValueError(f"order {oid} appears twice")
                qty, stop, limit, cap, prio = _pos(w[7]), _pos(w[9]), _nat(w[11]), _nat(w[13]), _pos(w[15])
                stops[oid] = [qty, oid, owner, stop, book, side, kind, limit, cap, prio]
                if fires_up(side, kind):
                    book.up.append((stop, prio, oid))
                else:
                    book.down.append((-stop, prio, oid))
            elif line == "end":
                seen_end = True
            else:
                raise ValueError(f"unexpected line {line!r}")
        except ValueError as e:
            raise CheckpointError(f"checkpoint line {no}: {e}") from None
    if not seen_end:
        raise CheckpointError(f"checkpoint line {len(lines)}: missing 'end' (truncated?)")
    return eng


def _finish(eng: Engine) -> None:
    """What a restored engine derives from its orders: each level's total,
    the heaps of levels and of stops.  CheckpointError if a book is crossed."""
    for book in eng._books.values():
        for half in (book.bids, book.asks):
            for level in half.levels.values():
                level[0] = sum([rec[0] for rec in level[1]])
            half.heap = [-p if half.is_bid else p for p in half.levels]
            heapify(half.heap)
        heapify(book.up)
        heapify(book.down)
        if book.bids.heap and book.asks.heap and -book.bids.heap[0] >= book.asks.heap[0]:
            raise CheckpointError(f"checkpoint: book {book.ticker} is crossed")


def _pos(word: str) -> int:
    n = _nat(word)
    if n <= 0:
        raise ValueError(f"{word!r} must be positive")
    return n


def _nat(word: str) -> int:
    if not word.isdigit() or not word.isascii() or (len(word) > 1 and word[0] == "0"):
        raise ValueError(f"{word!r} is not a canonical whole number")
    return int(word)
