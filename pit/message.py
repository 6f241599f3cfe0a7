"""Every pit message: parse strictly, write canonically.

A pit speaks in ordinary emails.  What a trader signs is a short block of
``Key: value`` lines (a *request*); what pit programs write are reports,
checkpoints, seals and rejection notices.  This module turns that text
into structures and back; see pit-messages(5).  Each kind of request
(order, transfer, deposit, ...) is a module of pit.kinds, named in its one
table, ``pit.kinds.KINDS``; the words they are written in are pit.grammar.

Two steps for requests, because decimal text needs the pit's instruments:

>>> from pit.message import instruction_text, parse_request, resolve
>>> from pit.units import Currency, Instrument
>>> usd = Currency("USD", "0.01")
>>> acme = Instrument("ACME", usd, tick="0.01", lot="1")
>>> req = parse_request("Pit: demo\\naccount:alice\\nRef: 17\\nORDER: buy 100 acme @ 12.5\\n")
>>> req.instruction.price                   # syntax checked, still text
'12.5'
>>> req = resolve(req, {"ACME": acme})
>>> req.instruction.ticks, instruction_text(req)
(1250, 'buy 100 ACME limit 12.50')
>>> parse_canonical_order("buy 100 ACME limit 12.50")
('buy', '100', 'ACME', 'limit', '12.50', None)

Errors name the line (1-based, within the signed text) and what was
expected:

>>> parse_request("Pit: demo\\nAccount: alice\\nRef: 1\\nOrdr: buy 1 ACME market\\n")
Traceback (most recent call last):
...
pit.grammar.MessageError: line 4: unknown key 'Ordr' (expected one of Pit, Account, Ref, Order, Transfer, ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pit import grammar, kinds
from pit.grammar import (ACCOUNT_RE, CURRENCY_RE, FINGERPRINT_RE, MAX_LINE,  # noqa: F401
                         NUMBER_RE, RATE_RE, REF_RE, TICKER_RE, MessageError, show)
from pit.kinds.currency import CurrencyDef
from pit.kinds.deposit import Deposit
from pit.kinds.fees import Fees
from pit.kinds.instrument import InstrumentDef
from pit.kinds.member import Member
from pit.kinds.order import (ORDER_TYPES, Cancel, Modify, Order, canonical_steps,  # noqa: F401
                             parse_canonical_order, parse_order, _CANON_CANCEL)
from pit.kinds.transfer import Transfer
from pit.kinds.withdrawal import Withdrawal
from pit.record import Record, field, replace
from pit.units import Currency, Instrument, UnitError

__all__ = [
    "MessageError", "MAX_LINE",
    # requests
    "Request", "Order", "Cancel", "Modify", "Transfer", "Deposit", "Withdrawal",
    "Member", "CurrencyDef", "InstrumentDef", "Fees",
    "parse_request", "parse_order", "resolve", "request_text", "instruction_text",
    "parse_canonical_order", "canonical_steps", "stamp_fields",
    # messages written by pit programs
    "Envelope", "Report", "Checkpoint", "Seal", "Rejection",
    "report_text", "checkpoint_text", "seal_text", "rejection_text",
    "parse_report", "parse_checkpoint", "parse_seal", "parse_rejection",
    "write_message", "read_message", "filter_output", "kind_of", "kind_of_text",
    "FilterStamp", "filter_stamp",
    "KINDS",
]

KINDS = kinds.NAMES + ("report", "checkpoint", "seal")


PIT_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")
HASH_RE = re.compile(r"[0-9a-f]{64}")
_SEAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
# a filter's name: its kind, then (a specialist) the words of its TickerSet
FILTER_RE = re.compile(r"[a-z][a-z0-9-]{0,31}(?: [A-Z][A-Z0-9.]{0,11}(?:-[A-Z][A-Z0-9.]{0,11})?)*")
ADDRESS_RE = re.compile(r"[A-Za-z0-9._%+=:-]+@[A-Za-z0-9.-]+")
_KEY_LINE = re.compile(r"[ \t]*([A-Za-z][A-Za-z-]*)[ \t]*:[ \t]*(.*?)[ \t]*")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# ---------------------------------------------------------------------------
# Request structures.  Numbers are decimal text until resolve() fills the
# integer fields (and rewrites the text in the instrument's canonical form).


Instruction = (Order | Cancel | Modify | Transfer | Deposit | Withdrawal | Member
               | CurrencyDef | InstrumentDef | Fees)      # one of kinds.OF_CLASS


class Request(Record, frozen=True):
    """A signed request.  ``line`` (the instruction's line in the signed
    text, for errors found by resolve()) does not take part in equality.
    ``pit_id`` is the pit's identity (its notary key's fingerprint) when
    the ``Pit:`` line names it after the pit's name, else ""."""
    pit: str
    account: str
    ref: str
    instruction: Instruction
    line: int = field(default=0, compare=False)
    pit_id: str = ""

    @property
    def kind(self) -> str:
        """The ``X-Pit-Kind`` of this request: order, transfer, deposit, ..."""
        return kinds.of(self.instruction).NAME

    @property
    def ticker(self) -> str | None:
        """The ticker of an order, a resolved cancel or modify, or an
        instrument definition."""
        return getattr(self.instruction, "ticker", None)

    @property
    def resolved(self) -> bool:
        """True when every number has been converted (see resolve())."""
        return kinds.of(self.instruction).resolved(self.instruction)


# ---------------------------------------------------------------------------
# Parsing requests

def _check_line(raw: str, n: int, allow_utf8: bool = False) -> None:
    if len(raw) > MAX_LINE:
        raise MessageError(n, f"line is {len(raw)} characters long; at most {MAX_LINE} allowed")
    bad = _BAD_CHARS.search(raw)
    if bad:
        raise MessageError(n, f"control character {bad.group()!r} at column {bad.start() + 1}")
    if not allow_utf8 and not raw.isascii():
        col = next(i for i, c in enumerate(raw) if ord(c) > 127)
        raise MessageError(n, f"non-ASCII character {raw[col]!r} at column {col + 1}; "
                              "requests are plain ASCII")


def _lines(text: str) -> list[str]:
    """Split on LF, accepting CRLF; a final newline ends the last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def parse_request(text: str, pit: str | None = None) -> Request:
    """Parse the signed text of a request.  Syntax only: numbers stay
    decimal text until :func:`resolve`.  If *pit* is given, the ``Pit:``
    key must name it.  O(len(text)).

    Raises :class:`MessageError` naming the line for: empty text, a line
    that is not ``Key: value``, an unknown or repeated key, a missing key,
    two instructions, a bad value, control or non-ASCII characters outside
    comments, lines longer than :data:`MAX_LINE`.
    """
    known = {k.lower(): k for k in ("Pit", "Account", "Ref") + kinds.KEYS}
    seen: dict[str, tuple[int, str]] = {}
    lines = _lines(text)
    for n, raw in enumerate(lines, 1):
        stripped = raw.strip(" \t")
        if stripped.startswith("#"):
            _check_line(raw, n, allow_utf8=True)
            continue
        _check_line(raw, n)
        if not stripped:
            continue
        m = _KEY_LINE.fullmatch(raw)
        if not m:
            raise MessageError(n, f"expected 'Key: value', found {show(stripped)}")
        key = known.get(m.group(1).lower())
        if key is None:
            raise MessageError(n, f"unknown key {m.group(1)!r} (expected one of "
                                  f"{', '.join(known.values())})")
        if key in seen:
            raise MessageError(n, f"key {key} given twice (first on line {seen[key][0]})")
        if key in kinds.BY_KEY:
            other = [k for k in seen if k in kinds.BY_KEY]
            if other:
                raise MessageError(n, f"second instruction {key}: a request carries exactly one "
                                      f"(already {other[0]} on line {seen[other[0]][0]})")
        if not m.group(2):
            raise MessageError(n, f"key {key} has no value")
        seen[key] = (n, m.group(2))
    end = len(lines) + 1
    if not seen:
        raise MessageError(1, "empty request: expected Pit, Account, Ref and one instruction")
    # every missing key at once: a sender who adds one is not refused again for the next
    missing = [key for key in ("Pit", "Account", "Ref") if key not in seen]
    instr = [k for k in seen if k in kinds.BY_KEY]
    if not instr:
        one_of = "one of " + ", ".join(kinds.KEYS)
        if not missing:
            raise MessageError(end, f"missing instruction (end of request): expected {one_of}")
        missing.append(f"an instruction ({one_of})")
    if missing:
        what = (f"key {missing[0]}" if len(missing) == 1 else
                f"keys {', '.join(missing[:-1])} and {missing[-1]}")
        raise MessageError(end, f"missing {what} (end of request)")
    n, value = seen["Pit"]
    pit_name, _, pit_id = value.partition(" ")
    pit_id = pit_id.strip()
    if pit_id and not _HEX_RE.fullmatch(pit_id):
        pit_name = value                # not "NAME IDENTITY": a bad name, said so below
    pit_name = _pit(pit_name, n)
    pit_id = _pit_id(pit_id, n) if pit_id else ""
    if pit is not None and pit_name != pit:
        raise MessageError(n, f"request is for pit {pit_name!r}, not this pit {pit!r}")
    n, value = seen["Account"]
    account = grammar.account(value, n)
    n, value = seen["Ref"]
    ref = grammar.ref(value, n)
    key = instr[0]
    n, value = seen[key]
    instruction = kinds.BY_KEY[key].parse(value, n)
    if isinstance(instruction, Transfer) and instruction.to == account:
        raise MessageError(n, f"transfer from {account} to itself")
    return Request(pit_name, account, ref, instruction, n, pit_id)


def _pit_id(value: str, n: int) -> str:
    v = value.upper()
    if not FINGERPRINT_RE.fullmatch(v):
        raise MessageError(n, f"bad pit identity {show(value, 60)}: expected the pit's notary "
                              "key fingerprint (40 hex digits) after its name")
    return v


def _pit(value: str, n: int) -> str:
    v = value.lower()
    if not PIT_RE.fullmatch(v):
        raise MessageError(n, f"bad pit name {show(value)}: expected a lower-case letter then "
                              "up to 31 letters, digits or '-'")
    return v


# ---------------------------------------------------------------------------
# Resolving: decimal text -> integers, against the pit's registry

def resolve(request: Request, instruments: Mapping[str, Instrument],
            currencies: Mapping[str, Currency] | None = None,
            ticker: str | None = None) -> Request:
    """Convert the request's numbers to integers with the pit's
    *instruments* (and *currencies*, by default those of the instruments)
    and rewrite its decimal text in canonical form.  A ``modify`` needs
    *ticker*, the ticker of the order it names; a ``cancel`` takes it (to
    be stamped) when given.  Errors (unknown ticker or
    currency, off-tick price, off-lot quantity) name the instruction's
    line.  O(len(numbers))."""
    if currencies is None:
        currencies = {i.currency.code: i.currency for i in instruments.values()}
    n = request.line or None
    ins = request.instruction
    try:
        ins = kinds.of(ins).resolve(ins, instruments, currencies, ticker, n)
    except UnitError as e:
        raise MessageError(n, str(e)) from None
    return replace(request, instruction=ins)


# ---------------------------------------------------------------------------
# Writing requests

def instruction_text(request: Request | Instruction) -> str:
    """The canonical text of the instruction: the value of its key in the
    request and of the notary's ``X-Pit-Request`` stamp.  Numbers are
    canonical once the request is resolved; before that they are written
    as the trader wrote them.  O(1)."""
    ins = request.instruction if isinstance(request, Request) else request
    kind = kinds.OF_CLASS.get(type(ins))
    if kind is None:
        raise TypeError(f"not an instruction: {ins!r}")
    return kind.text(ins)


def request_text(request: Request) -> str:
    """The canonical request text (what a trader signs):
    ``Pit``, ``Account``, ``Ref``, then the instruction.  O(1)."""
    pit = f"{request.pit} {request.pit_id}" if request.pit_id else request.pit
    return (f"Pit: {pit}\nAccount: {request.account}\nRef: {request.ref}\n"
            f"{kinds.of(request.instruction).KEY}: {instruction_text(request)}\n")


def stamp_fields(request: Request) -> list[tuple[str, str]]:
    """The request's part of the notary's stamp, in order: ``X-Pit-Kind``,
    ``X-Pit-Account``, ``X-Pit-Ref``, ``X-Pit-Ticker`` (when there is one)
    and ``X-Pit-Request``.  The request should be resolved first."""
    out = [("X-Pit-Kind", request.kind), ("X-Pit-Account", request.account),
           ("X-Pit-Ref", request.ref)]
    if request.ticker:
        out.append(("X-Pit-Ticker", request.ticker))
    out.append(("X-Pit-Request", instruction_text(request)))
    return out


# ---------------------------------------------------------------------------
# Messages written by pit programs

class Envelope(Record, frozen=True):
    """Who sends a message, to whom, and when.  ``time`` is UTC in ISO 8601
    (the notary's ``X-Pit-Time``); it is kept to the second, which is what
    the ``Date:`` header carries."""
    sender: str
    to: str
    time: str

    def __post_init__(self):
        for what in ("sender", "to"):
            addr = getattr(self, what)
            if not ADDRESS_RE.fullmatch(addr):
                raise MessageError(None, f"bad {what} address {show(addr)}: expected local@domain")
        object.__setattr__(self, "time", _iso_second(self.time))

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2]


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


_ISO_ASCII = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(Z?)")


def _strptime(text: str, fmt: str):
    """``datetime.strptime(text, fmt)`` for the two formats read here,
    ``%Y-%m-%dT%H:%M:%S`` and the same with a ``Z``.  Text in ASCII digits
    (what the notary writes) is read by the datetime constructor: the same
    datetime, and the same ValueError for a date or time that does not
    exist (tests/test_message.py compares the two), without importing
    _strptime (with calendar and locale) at a filter program's start
    (docs/pit-book.md, "Start-up").  Anything else goes to strptime."""
    from datetime import datetime       # here: a program that writes no message starts without it
    m = _ISO_ASCII.fullmatch(text)
    if m is None or (m.group(7) == "Z") != fmt.endswith("Z"):
        return datetime.strptime(text, fmt)
    return datetime(*map(int, m.groups()[:6]))


def _iso_second(text: str) -> str:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d{1,9})?Z", text)
    if not m:
        raise MessageError(None, f"bad time {show(text)}: expected UTC like 2026-11-22T00:52:38Z")
    try:
        _strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise MessageError(None, f"bad time {show(text)}: no such date") from None
    return m.group(1) + "Z"


def _rfc5322_date(iso: str) -> str:
    # Day and month names from our own tables: strftime would follow the locale.
    dt = _strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return (f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year} "
            f"{dt:%H:%M:%S} +0000")


def _iso_from_date(value: str) -> str:
    m = re.fullmatch(r"[A-Z][a-z]{2}, (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d:\d\d:\d\d) \+0000", value)
    if not m or m.group(2) not in _MONTHS:
        raise MessageError(None, f"bad Date header {show(value)}")
    return f"{m.group(3)}-{_MONTHS.index(m.group(2)) + 1:02d}-{m.group(1)}T{m.group(4)}Z"


def _check_opaque(line: str, n: int) -> None:
    """Report event lines and checkpoint state lines: opaque, but printable."""
    _check_line(line, n, allow_utf8=True)
    if not line.strip():
        raise MessageError(n, "blank line among the lines of a report or checkpoint")
    if line != line.rstrip() or "\t" in line:
        raise MessageError(n, "trailing whitespace or tab (signing would not preserve it)")


def _check_filter_name(name: str, n: int | None = None) -> None:
    if not FILTER_RE.fullmatch(name):
        raise MessageError(n, f"bad filter name {show(name)}: expected e.g. 'specialist ACME'")
    words = name.split(" ")
    if len(words) > 1:
        from pit.grammar import ticker_set
        ts = ticker_set(words[1:], n)
        if ts.words != tuple(words[1:]):
            raise MessageError(n, f"bad filter name {show(name)}: its tickers and ranges are "
                                  f"written sorted ('{words[0]} {ts}')")


class Report(Record, frozen=True):
    """A filter's output for one run: what it did with input records
    ``from_seq`` .. ``to_seq``, one opaque event line each.  ``summary``
    (e.g. ``3 trades``) only feeds the Subject."""
    filter: str
    pit: str
    from_seq: int
    to_seq: int
    lines: tuple[str, ...] = ()
    summary: str = ""


class Checkpoint(Record, frozen=True):
    """A filter's whole state after input record ``seq``, as opaque lines."""
    filter: str
    pit: str
    seq: int
    lines: tuple[str, ...] = ()


class Seal(Record, frozen=True):
    """The notary's seal over records ``first`` .. ``first+len(hashes)-1``:
    their record hashes in order.  The head is the last record's hash.

    A seal is also the log's signed tree head (RFC 9162) when it carries
    ``tree_size`` (the records before the seal: ``last``), ``root`` (the
    Merkle tree hash of records 1 .. tree_size, pit.merkle) and ``time``
    (the notary's time, the seal record's X-Pit-Time).  Seals written
    before the tree existed have none of the three (0, "", "")."""
    pit: str
    first: int
    hashes: tuple[str, ...]
    tree_size: int = 0
    root: str = ""
    time: str = ""

    @property
    def last(self) -> int:
        return self.first + len(self.hashes) - 1

    @property
    def head(self) -> str:
        return self.hashes[-1]


class Rejection(Record, frozen=True):
    """A notice to the sender of a refused message.  ``line`` is the line
    of the signed text at fault, if any; ``original_headers`` are quoted."""
    pit: str
    reason: str
    line: int | None = None
    original_id: str | None = None
    original_headers: tuple[tuple[str, str], ...] = ()


def _short_name(filter_name: str) -> str:
    """'specialist ACME' -> 'ACME' for Subjects; 'transfers' stays."""
    return filter_name.split(" ", 1)[1] if " " in filter_name else filter_name


def report_text(r: Report) -> str:
    """Canonical report body.  O(lines)."""
    _validate_report(r)
    return _block([f"Report: {r.filter}", f"Pit: {r.pit}", f"From-Seq: {r.from_seq}",
                   f"To-Seq: {r.to_seq}"], r.lines)


def checkpoint_text(c: Checkpoint) -> str:
    """Canonical checkpoint body.  O(lines)."""
    _validate_checkpoint(c)
    return _block([f"Checkpoint: {c.filter}", f"Pit: {c.pit}", f"Seq: {c.seq}"], c.lines)


def seal_text(s: Seal) -> str:
    """Canonical seal body (what the notary clearsigns).  O(records)."""
    _validate_seal(s)
    head = [f"Pit: {s.pit}", f"Seal: {s.first}-{s.last}", f"Head: {s.head}"]
    if s.tree_size:
        head += [f"Tree-Size: {s.tree_size}", f"Root: {s.root}", f"Time: {s.time}"]
    return _block(head, [f"{s.first + i} {h}" for i, h in enumerate(s.hashes)])


def rejection_text(r: Rejection) -> str:
    """Canonical rejection body.  O(headers)."""
    _validate_rejection(r)
    head = [f"Rejected: {r.reason}", f"Pit: {r.pit}"]
    if r.line is not None:
        head.append(f"Line: {r.line}")
    if r.original_id is not None:
        head.append(f"Original-Message-ID: {r.original_id}")
    quoted = [f"> {k}: {v}" if v else f"> {k}:" for k, v in r.original_headers]
    return _block(head, quoted)


def _block(head: list[str], lines: Iterable[str]) -> str:
    return "\n".join(head) + "\n\n" + "".join(line + "\n" for line in lines)


def _validate_report(r: Report) -> None:
    _check_filter_name(r.filter)
    _check_pit(r.pit)
    if r.from_seq < 1 or r.to_seq < r.from_seq - 1:
        raise MessageError(None, f"bad report range {r.from_seq}-{r.to_seq}")
    for i, line in enumerate(r.lines, 6):
        _check_opaque(line, i)
    if r.summary:
        _check_header_text(r.summary, "summary")


def _validate_checkpoint(c: Checkpoint) -> None:
    _check_filter_name(c.filter)
    _check_pit(c.pit)
    if c.seq < 0:
        raise MessageError(None, f"bad checkpoint seq {c.seq}")
    for i, line in enumerate(c.lines, 5):
        _check_opaque(line, i)


def _validate_seal(s: Seal) -> None:
    _check_pit(s.pit)
    if s.first < 1 or not s.hashes:
        raise MessageError(None, "a seal covers at least one record, from seq 1 on")
    for i, h in enumerate(s.hashes):
        if not HASH_RE.fullmatch(h):
            raise MessageError(5 + i, f"bad record hash {show(h)}: expected 64 lower-case hex digits")
    if s.tree_size or s.root or s.time:
        _validate_seal_head(s)


def _validate_rejection(r: Rejection) -> None:
    _check_pit(r.pit)
    if not r.reason or r.reason != r.reason.strip():
        raise MessageError(None, "a rejection needs a reason without surrounding spaces")
    _check_line(r.reason, 1, allow_utf8=True)
    if r.line is not None and r.line < 1:
        raise MessageError(None, f"bad line number {r.line}")
    if r.original_id is not None and not re.fullmatch(r"<[!-;=?-~]+>", r.original_id):
        raise MessageError(None, f"bad Message-ID {show(r.original_id)}")
    for name, value in r.original_headers:
        if not re.fullmatch(r"[!-9;-~]+", name):
            raise MessageError(None, f"bad header name {show(name)}")
        _check_line(value, None, allow_utf8=True)
        if value != value.strip():
            raise MessageError(None, f"header {name}: value has surrounding spaces")


def _check_pit(pit: str) -> None:
    if not PIT_RE.fullmatch(pit):
        raise MessageError(None, f"bad pit name {show(pit)}")


def _check_header_text(text: str, what: str) -> None:
    if not text.isascii() or _BAD_CHARS.search(text) or len(text) > 200 or text != text.strip():
        raise MessageError(None, f"bad {what} {show(text)}: one line of at most 200 ASCII characters")


# -- parsing bodies -----------------------------------------------------------

def _split_block(text: str, keys: list[str], what: str) -> tuple[list[str], list[str]]:
    """Exact ``Key: value`` head lines in *keys* order, a blank line, then
    the rest.  Returns (values, rest lines)."""
    if not text:
        raise MessageError(1, f"empty {what}")
    if not text.endswith("\n"):
        raise MessageError(None, f"{what} does not end with a newline")
    lines = text[:-1].split("\n")
    values = []
    for n, key in enumerate(keys, 1):
        if n > len(lines):
            raise MessageError(n, f"missing '{key}: ...' ({what} ends early)")
        line = lines[n - 1]
        _check_line(line, n, allow_utf8=(key == "Rejected"))
        if not line.startswith(key + ": ") or len(line) == len(key) + 2:
            raise MessageError(n, f"expected '{key}: ...', found {show(line)}")
        values.append(line[len(key) + 2:])
    n = len(keys) + 1
    if n > len(lines) or lines[n - 1] != "":
        raise MessageError(n, f"expected a blank line after the {what} head")
    return values, lines[n:]


def _seq(text: str, n: int, what: str) -> int:
    if not re.fullmatch(r"0|[1-9][0-9]{0,17}", text):
        raise MessageError(n, f"bad {what} {show(text)}: expected a whole number")
    return int(text)


def _filter_of(text: str, n: int) -> str:
    _check_filter_name(text, n)
    return text


def _pit_line(text: str, n: int) -> str:
    if not PIT_RE.fullmatch(text):
        raise MessageError(n, f"bad pit name {show(text)}")
    return text


def _opaque_lines(lines: list[str], first: int) -> tuple[str, ...]:
    for i, line in enumerate(lines, first):
        _check_opaque(line, i)
    return tuple(lines)


def parse_report(text: str, summary: str = "") -> Report:
    """Parse a report body (strict, canonical form only).  O(len(text))."""
    (name, pit, a, b), rest = _split_block(text, ["Report", "Pit", "From-Seq", "To-Seq"], "report")
    r = Report(_filter_of(name, 1), _pit_line(pit, 2), _seq(a, 3, "From-Seq"),
               _seq(b, 4, "To-Seq"), _opaque_lines(rest, 6), summary)
    if r.from_seq < 1 or r.to_seq < r.from_seq - 1:
        raise MessageError(4, f"bad report range {a}-{b}")
    return r


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (strict, canonical form only).  O(len(text))."""
    (name, pit, seq), rest = _split_block(text, ["Checkpoint", "Pit", "Seq"], "checkpoint")
    return Checkpoint(_filter_of(name, 1), _pit_line(pit, 2), _seq(seq, 3, "Seq"),
                      _opaque_lines(rest, 5))


def parse_seal(text: str) -> Seal:
    """Parse a seal body (strict): records must run gaplessly from FIRST
    to LAST and Head must be the last record's hash.  O(records)."""
    keys = ["Pit", "Seal", "Head"]
    if text.count("\n", 0, text.find("\n\n") + 1) > 3:      # a signed tree head
        keys += ["Tree-Size", "Root", "Time"]
    values, rest = _split_block(text, keys, "seal")
    pit, span, head = values[:3]
    m = re.fullmatch(r"([1-9][0-9]*)-([1-9][0-9]*)", span)
    if not m or int(m.group(2)) < int(m.group(1)):
        raise MessageError(2, f"bad seal range {show(span)}: expected FIRST-LAST")
    first, last = int(m.group(1)), int(m.group(2))
    if not HASH_RE.fullmatch(head):
        raise MessageError(3, f"bad Head {show(head)}: expected 64 lower-case hex digits")
    hashes = []
    at = len(keys) + 2                  # the line of the first record
    for i, line in enumerate(rest):
        n = at + i
        seq, _, h = line.partition(" ")
        if seq != str(first + i):
            raise MessageError(n, f"expected record {first + i}, found {show(line)}")
        if not HASH_RE.fullmatch(h):
            raise MessageError(n, f"bad record hash {show(h)}: expected 64 lower-case hex digits")
        hashes.append(h)
    if len(hashes) != last - first + 1:
        raise MessageError(at + len(hashes), f"seal {span} lists {len(hashes)} records, "
                                            f"expected {last - first + 1}")
    if hashes[-1] != head:
        raise MessageError(3, f"Head is not the hash of record {last}")
    if len(values) == 3:
        return Seal(_pit_line(pit, 1), first, tuple(hashes))
    size, root, when = values[3:]
    if not size.isdigit() or size != str(int(size)):
        raise MessageError(4, f"bad Tree-Size {show(size)}: expected a number")
    seal = Seal(_pit_line(pit, 1), first, tuple(hashes), int(size), root, when)
    _validate_seal_head(seal)
    return seal


def _validate_seal_head(s: Seal) -> None:
    if s.tree_size != s.last:
        raise MessageError(4, f"Tree-Size {s.tree_size} is not the seal's last record {s.last}")
    if not HASH_RE.fullmatch(s.root):
        raise MessageError(5, f"bad Root {show(s.root)}: expected 64 lower-case hex digits")
    if not _SEAL_TIME.fullmatch(s.time):
        raise MessageError(6, f"bad Time {show(s.time)}: expected the notary's "
                              "YYYY-MM-DDTHH:MM:SS.ffffffZ")


def parse_rejection(text: str) -> Rejection:
    """Parse a rejection notice body (strict).  O(len(text))."""
    lines = text.split("\n")
    keys = ["Rejected", "Pit"]
    if len(lines) > 2 and lines[2].startswith("Line: "):
        keys.append("Line")
    if len(lines) > len(keys) and lines[len(keys)].startswith("Original-Message-ID: "):
        keys.append("Original-Message-ID")
    values, rest = _split_block(text, keys, "rejection")
    got = dict(zip(keys, values))
    line = _seq(got["Line"], 3, "Line") if "Line" in got else None
    headers = []
    for i, q in enumerate(rest, len(keys) + 2):
        m = re.fullmatch(r"> ([!-9;-~]+):(?: (.*))?", q)
        if not m:
            raise MessageError(i, f"expected a quoted header '> Name: value', found {show(q)}")
        headers.append((m.group(1), m.group(2) or ""))
    r = Rejection(_pit_line(got["Pit"], 2), got["Rejected"], line,
                  got.get("Original-Message-ID"), tuple(headers))
    _validate_rejection(r)
    return r


# -- whole messages -----------------------------------------------------------

def _msgid_atom(text: str) -> str:
    return text.replace(" ", "=").replace(":", "=")


def _headers_for(content, env: Envelope) -> tuple[list[tuple[str, str]], str]:
    """(headers without the MIME ones, body) for *content*."""
    extra: list[tuple[str, str]] = []
    if isinstance(content, Request):
        body = request_text(content)
        subject = f"{content.pit} {content.kind} {content.ref}: {instruction_text(content)}"
        mid = f"request.{content.pit}.{_msgid_atom(content.account)}.{content.ref}"
    elif isinstance(content, Report):
        body = report_text(content)
        subject = f"{_short_name(content.filter)} report {content.from_seq}-{content.to_seq}"
        if content.summary:
            subject += f": {content.summary}"
        mid = f"report.{content.pit}.{_msgid_atom(content.filter)}.{content.from_seq}-{content.to_seq}"
    elif isinstance(content, Checkpoint):
        body = checkpoint_text(content)
        subject = f"{_short_name(content.filter)} checkpoint {content.seq}"
        mid = f"checkpoint.{content.pit}.{_msgid_atom(content.filter)}.{content.seq}"
    elif isinstance(content, Seal):
        body = seal_text(content)
        subject = f"{content.pit} seal {content.first}-{content.last}"
        mid = f"seal.{content.pit}.{content.first}-{content.last}"
    elif isinstance(content, Rejection):
        body = rejection_text(content)
        reason = "".join(c if " " <= c <= "~" else "?" for c in content.reason)
        subject = "Rejected: " + (reason if len(reason) <= 120 else reason[:117] + "...")
        import hashlib          # only for a rejection: not on a filter's start-up path
        digest = hashlib.sha256((content.original_id or body).encode()).hexdigest()[:24]
        mid = f"rejected.{content.pit}.{digest}"
        if content.original_id:
            extra = [("In-Reply-To", content.original_id), ("References", content.original_id)]
    else:
        raise TypeError(f"not a pit message: {content!r}")
    headers = [("From", env.sender), ("To", env.to), ("Subject", subject),
               ("Date", _rfc5322_date(env.time)), ("Message-ID", f"<{mid}@{env.domain}>")]
    return headers + extra, body


def write_message(content, env: Envelope) -> bytes:
    """The full RFC 5322 message for *content* (a Request, Report,
    Checkpoint, Seal or Rejection) sent as *env*: ASCII headers, Date and
    Message-ID derived from the inputs (never the clock), a text/plain body
    (us-ascii/7bit, or utf-8/8bit when the body needs it), LF line endings.
    Same inputs, same bytes.  O(len(body))."""
    headers, body = _headers_for(content, env)
    plain = body.isascii()
    headers += [("MIME-Version", "1.0"),
                ("Content-Type", f"text/plain; charset={'us-ascii' if plain else 'utf-8'}"),
                ("Content-Transfer-Encoding", "7bit" if plain else "8bit")]
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    return (head + "\n" + body).encode("utf-8")


def read_message(data: bytes, instruments: Mapping[str, Instrument] | None = None):
    """Parse a message written by :func:`write_message` back into
    ``(content, envelope)``.  A request is resolved with *instruments* when
    given (its numbers stay text otherwise).  Strict: the bytes must be
    exactly what write_message would produce for them (the first
    difference is named).  Line numbers in errors count from the first
    body line (a canonical-form difference names the message line).
    O(len(data))."""
    head, sep, body_bytes = data.partition(b"\n\n")
    if not sep:
        raise MessageError(None, "no blank line between headers and body")
    try:
        head_text = head.decode("ascii")
    except UnicodeDecodeError:
        raise MessageError(None, "non-ASCII bytes in the headers") from None
    headers: dict[str, str] = {}
    for line in head_text.split("\n"):
        name, colon, value = line.partition(": ")
        if not colon:
            raise MessageError(None, f"bad header line {show(line)}")
        headers[name.lower()] = value
    try:
        body = body_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError(None, "body is not UTF-8") from None
    for name in ("from", "to", "date", "subject"):
        if name not in headers:
            raise MessageError(None, f"missing header {name.capitalize()}")
    env = Envelope(headers["from"], headers["to"], _iso_from_date(headers["date"]))
    kind = kind_of_text(body)
    if kind == "report":
        _, _, summary = headers["subject"].partition(": ")
        content = parse_report(body, summary)
    elif kind == "checkpoint":
        content = parse_checkpoint(body)
    elif kind == "seal":
        content = parse_seal(body)
    elif kind == "rejection":
        content = parse_rejection(body)
    else:
        content = parse_request(body)
        if instruments is not None:
            content = resolve(content, instruments)
    again = write_message(content, env)
    if again != data:
        a, b = data.split(b"\n"), again.split(b"\n")
        n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        found = a[n].decode("utf-8", "replace") if n < len(a) else "end of message"
        wanted = b[n].decode("utf-8", "replace") if n < len(b) else "end of message"
        raise MessageError(None, f"not in canonical form at message line {n + 1}: found "
                                 f"{show(found, 60)}, expected {show(wanted, 60)}")
    return content, env


def filter_output(kind: str, name: str, pit: str, body: str, time: str,
                  sender: str | None = None, to: str | None = None) -> bytes:
    """Convenience for filters: the message for a report or checkpoint
    *body* already written in canonical form.  Its head is parsed (so a
    wrong name, pit or range is refused); its lines are the filter's own and
    are not re-checked one by one: a replay writes millions of them, and the
    audit compares every one with its own replay.  Addresses default to
    ``NAME@PIT.pit`` -> ``PIT@PIT.pit`` with the filter's name made an
    address (``specialist-acme``).  O(len(body))."""
    head = body.partition("\n\n")[0] + "\n\n"
    if kind == "report":
        content = parse_report(head)
    elif kind == "checkpoint":
        content = parse_checkpoint(head)
    else:
        raise ValueError(f"filter_output writes reports and checkpoints, not {kind!r}")
    local = name.lower().replace(" ", "-")
    env = Envelope(sender or f"{local}@{pit}.pit", to or f"{pit}@{pit}.pit",
                   time or "1970-01-01T00:00:00Z")
    headers, _ = _headers_for(content, env)
    plain = body.isascii()
    headers += [("MIME-Version", "1.0"),
                ("Content-Type", f"text/plain; charset={'us-ascii' if plain else 'utf-8'}"),
                ("Content-Transfer-Encoding", "7bit" if plain else "8bit")]
    return ("".join(f"{k}: {v}\n" for k, v in headers) + "\n" + body).encode("utf-8")


class FilterStamp(Record, frozen=True):
    """What the notary stamps on a filter's report or checkpoint, derived
    from its signed text alone (so the audit derives the same)."""
    kind: str                      # "report" | "checkpoint"
    filter: str                    # "specialist ACME"
    pit: str
    ref: str                       # "report-TO" | "checkpoint-SEQ": replayed ones are refused
    summary: str                   # X-Pit-Request: "specialist ACME 12-40" | "specialist ACME 40"
    accounts: tuple[str, ...]      # the accounts its signer must own

    def fields(self) -> list[tuple[str, str]]:
        """``X-Pit-Pit`` .. ``X-Pit-Request``, in stamp order."""
        return [("X-Pit-Pit", self.pit), ("X-Pit-Kind", self.kind),
                ("X-Pit-Account", self.accounts[0]), ("X-Pit-Ref", self.ref),
                ("X-Pit-Request", self.summary)]


def filter_stamp(text: str) -> FilterStamp:
    """The stamp of a report or checkpoint *text* (its signed body).  A
    filter ``specialist ACME BTC`` acts as ``specialist:ACME`` and
    ``specialist:BTC``; ``transfers`` as ``transfers``.  Raises MessageError.
    O(len(text))."""
    if text.startswith("Report: "):
        r = parse_report(text)
        kind, name, pit, ref, summary = ("report", r.filter, r.pit, f"report-{r.to_seq}",
                                         f"{r.filter} {r.from_seq}-{r.to_seq}")
    elif text.startswith("Checkpoint: "):
        c = parse_checkpoint(text)
        kind, name, pit, ref, summary = ("checkpoint", c.filter, c.pit, f"checkpoint-{c.seq}",
                                         f"{c.filter} {c.seq}")
    else:
        raise MessageError(1, "expected 'Report: ...' or 'Checkpoint: ...'")
    words = name.split(" ")
    accounts = tuple(f"{words[0]}:{t}" for t in words[1:]) or (name,)
    return FilterStamp(kind, name, pit, ref, summary, accounts)


# -- kinds -------------------------------------------------------------------

def kind_of(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """The kind of a notarized message from its stamp or headers (any
    case of ``X-Pit-Kind``); None when there is no stamp.  O(headers)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == "x-pit-kind":
            value = value.strip()
            if value not in KINDS:
                raise MessageError(None, f"unknown X-Pit-Kind {show(value)}")
            return value
    return None


def kind_of_text(text: str) -> str:
    """The kind of a body or signed text from its first line: report,
    checkpoint, rejection, seal, or a request's kind (order, transfer, ...).
    Only a glance: parse to check it.  O(len(first lines))."""
    first = text.split("\n", 1)[0]
    for key, kind in (("Report: ", "report"), ("Checkpoint: ", "checkpoint"),
                      ("Rejected: ", "rejection")):
        if first.startswith(key):
            return kind
    lines = text.split("\n", 3)
    if first.startswith("Pit: ") and len(lines) > 1 and lines[1].startswith("Seal: "):
        return "seal"
    for line in _lines(text):
        m = _KEY_LINE.fullmatch(line)
        if m and m.group(1).capitalize() in kinds.BY_KEY:
            return m.group(1).lower()
    return "request"


