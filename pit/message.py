"""Every pit message kind: parse strictly, write canonically.

A pit speaks in ordinary emails.  What a trader signs is a short block of
``Key: value`` lines (a *request*); what pit programs write are reports,
checkpoints, seals and rejection notices.  This module is the one place
that turns that text into structures and back; see pit-messages(5).

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
pit.message.MessageError: line 4: unknown key 'Ordr' (expected one of Pit, Account, Ref, Order, Transfer, Deposit, Withdrawal, Member, Currency, Instrument, Fees)
"""

from __future__ import annotations

import re

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

MAX_LINE = 1000          # longest line accepted anywhere, in characters

INSTRUCTION_KEYS = ("Order", "Transfer", "Deposit", "Withdrawal", "Member",
                    "Currency", "Instrument", "Fees")
KINDS = tuple(k.lower() for k in INSTRUCTION_KEYS) + ("report", "checkpoint", "seal")


class MessageError(ValueError):
    """A message that does not follow its grammar.  ``line`` is 1-based
    within the text that was parsed (the signed text for requests), or
    ``None`` when the fault is not on one line."""

    def __init__(self, line: int | None, reason: str):
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


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
    Raises :class:`MessageError` on anything not canonical.  O(len(text)),
    about 1 µs.
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
    raise MessageError(None, f"not a canonical order: {_show(text, 80)}")


def canonical_steps(text: str, step_units: int) -> int:
    """Whole steps in canonical decimal *text* printed with the step's own
    number of decimals; *step_units* is the step times 10**decimals (tick
    0.05 -> 5, lot 1 -> 1).  Exact for canonical text; O(len(text))."""
    units = int(text.replace(".", ""))
    steps, rest = divmod(units, step_units)
    if rest:
        raise MessageError(None, f"{text} is not a whole number of steps")
    return steps


# The message kinds, their parsers and writers live in pit._messages and are
# imported on the first use of any of them (a module __getattr__): their
# classes and patterns cost ~2 ms to create, and a program that only reads
# the archive (pit replay) needs none of them.  Once imported, every
# name is in this module as before.

def _load() -> dict:
    from pit import _messages
    names = globals()
    for name, value in vars(_messages).items():
        if not name.startswith("__"):
            names.setdefault(name, value)
    return names


def __getattr__(name: str):
    if not name.startswith("__"):
        names = _load()
        if name in names:
            return names[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_load())
