"""The tickers a specialist serves, named in a few words whatever their number.

A specialist's name is ``specialist`` followed by words, each a ticker
(``ACME``) or a range ``LO-HI`` read as in a phone book: every ticker from
LO on whose first ``len(HI)`` characters come no later than HI.  ``A-M``
holds ``ACME`` and ``MSFT`` but not ``N``; ``T00000-T09999`` holds ten
thousand tickers; ``A-Z`` holds every ticker there is, those the operator
defines later too.  Tickers have no ``-``, so a word is read one way only.

The same words name the filter's accounts (``specialist:A-M``): its key's
member record, its reports' and checkpoints' first line, their stamps, its
list address.  So no line grows with the number of tickers, only with the
number of words: the notary grants a new specialist key at most
:data:`MAX_WORDS`.

Everything that asks "does this filter serve ticker T" (the specialist,
the other filters' ``report_owns``, the notary's overlap check, ``pit run``,
``pit replay`` through the specialist's ``wants``, the audit) asks a
:class:`TickerSet`.  Pure: no state, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["TickerSet", "TickerSetError", "MAX_WORDS", "WORD_RE"]

MAX_WORDS = 32                    # words of one specialist's name (each at most 25 characters)
_TICKER = r"[A-Z][A-Z0-9.]{0,11}"
WORD_RE = re.compile(rf"{_TICKER}(?:-{_TICKER})?")
_ALPHABET = "." + "0123456789" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"     # ticker characters, in order


class TickerSetError(ValueError):
    """A malformed or contradictory set of words: the one-line reason."""


def _bounds(word: str) -> tuple[str, str]:
    """``[low, up)``: the tickers *word* holds are the strings ``low <= t < up``."""
    lo, dash, hi = word.partition("-")
    if not dash:
        return lo, lo + "\0"                   # the ticker alone
    return lo, hi[:-1] + chr(ord(hi[-1]) + 1)  # past every string that starts with hi


class TickerSet:
    """The tickers named by *words* (tickers and ranges, any case).
    Raises TickerSetError, naming the word at fault, for a malformed word,
    an empty range, a word inside another, or more than *max_words* words
    (the notary grants a new filter key at most MAX_WORDS; names written
    before ranges, up to a line's 1000 characters, stay readable)."""

    __slots__ = ("words", "singles", "ranges", "_pattern")

    def __init__(self, words, max_words: int | None = None):
        words = [w.upper() for w in words]
        if not words:
            raise TickerSetError("no tickers: expected tickers or ranges like ACME or A-M")
        if max_words is not None and len(words) > max_words:
            raise TickerSetError(f"{len(words)} words name the tickers; at most {max_words} "
                                 "(name many tickers with a range such as A-M)")
        for w in words:
            if not WORD_RE.fullmatch(w):
                raise TickerSetError(f"bad ticker or range {w[:40]!r}: expected a ticker like "
                                     "ACME or a range like A-M (1-12 letters, digits or dots a side)")
            lo, up = _bounds(w)
            if "-" in w and not lo < up:
                raise TickerSetError(f"empty range {w}: no ticker from {lo} on starts no later "
                                     f"than {w.partition('-')[2]}")
        canon = sorted(words)
        for i, a in enumerate(canon):
            for b in canon[i + 1:]:
                if _meet(_bounds(a), _bounds(b)):
                    what = "is given twice" if a == b else f"and {b} overlap"
                    raise TickerSetError(f"{a} {what}: each ticker is named once")
        self.words = tuple(canon)
        self.singles = frozenset(w for w in canon if "-" not in w)
        self.ranges = tuple(_bounds(w) for w in canon if "-" in w)
        self._pattern = None

    def __contains__(self, ticker) -> bool:
        if ticker in self.singles:
            return True
        for lo, up in self.ranges:
            if lo <= ticker < up:
                return True
        return False

    def overlaps(self, other: "TickerSet") -> str | None:
        """A word of *other* holding a ticker this set holds too, or None."""
        for b in other.words:
            bb = _bounds(b)
            if any(_meet(_bounds(a), bb) for a in self.words):
                return b
        return None

    @property
    def finite(self) -> bool:
        """Whether the set is its tickers alone (no range)."""
        return not self.ranges

    def __str__(self) -> str:
        return " ".join(self.words)

    def __repr__(self) -> str:
        return f"TickerSet({list(self.words)!r})"

    @property
    def pattern(self) -> str:
        """A regular expression matching exactly the tickers of the set
        (what ``t in self`` says, for any string of ticker characters; a
        test holds it to ``__contains__``), for reading order records
        straight off a pipe (``pit.mbox.iter_stream_orders``)."""
        if self._pattern is None:
            parts = [re.escape(t) for t in sorted(self.singles)]
            parts += [_range_pattern(lo, up) for lo, up in self.ranges]
            self._pattern = "|".join(f"(?:{p})" for p in parts)
        return self._pattern


def _meet(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


_REST = "[.0-9A-Z]*"


def _after(c: str) -> str:
    """A character class of the ticker characters after *c*, or '' if none."""
    chars = [x for x in _ALPHABET if x > c]
    return "[" + re.escape("".join(chars)) + "]" if chars else ""


def _before(c: str) -> str:
    chars = [x for x in _ALPHABET if x < c]
    return "[" + re.escape("".join(chars)) + "]" if chars else ""


def _range_pattern(lo: str, up: str) -> str:
    """Strings of ticker characters *t* with ``lo <= t < up``, ended by a
    newline (the next character of the stamp), which it does not consume."""
    ge = [re.escape(lo) + _REST]                     # lo itself and every string it starts
    for i, c in enumerate(lo):
        cls = _after(c)
        if cls:
            ge.append(re.escape(lo[:i]) + cls + _REST)
    lt = [re.escape(up[:i]) for i in range(1, len(up))]   # proper prefixes of up come before it
    for i, c in enumerate(up):
        cls = _before(c)
        if cls:
            lt.append(re.escape(up[:i]) + cls + _REST)
    return f"(?=(?:{'|'.join(ge)})\\n)(?:{'|'.join(lt)})(?=\\n)"
