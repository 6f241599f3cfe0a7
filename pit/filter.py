"""The filter protocol (see docs/pit-filter.7.md): mbox in, mbox out.

A filter is a subclass of :class:`Filter` that says which records are its
business (:meth:`Filter.wants`), what it does with one (:meth:`Filter.apply`,
which calls :meth:`Filter.say` for each report line), and how its state is
written and read back (:meth:`Filter.state`, :meth:`Filter.restore`).
:func:`main` runs it as a stdin/stdout program; :func:`run` is the same
thing in process, which is what `pit audit` and the tests use.

The driver never reads the clock: the dates of a filter's messages are the
notary time of the last record it read.
"""

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Iterable, Iterator
from itertools import chain

from pit import mbox, message
from pit.units import UnitError

# The pit's filters: kind -> "module:class" (pit.ops.filter_class loads one).
FILTERS = {"specialist": "filters.specialist:Specialist",
           "transfers": "filters.transfers:Transfers",
           "positions": "filters.positions:Positions"}

TYPE_CHECKING = False            # typing is for type checkers only
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = ["Filter", "FilterError", "run", "main", "signed_text"]


class FilterError(Exception):
    """The input cannot be read as the protocol requires (exit status 1)."""


def signed_text(msg: bytes) -> str:
    """The text a record's signer signed: what reports and checkpoints are read from."""
    from pit import signed
    start = mbox.stamp_end(msg)
    text = _plain_signed_text(signed, msg, start)
    return text if text is not None else signed.extract(msg[start:]).text


_CLEARSIGN = b"-----BEGIN PGP SIGNED MESSAGE-----\n"
_SIGNATURE = b"\n-----BEGIN PGP SIGNATURE-----"
_DASHED = re.compile(rb"\n- ")               # a dash-escaped line
_SPACE_END = re.compile(rb" \n")             # a line ending in a space


def _plain_signed_text(signed, msg: bytes, origin: int = 0) -> str | None:
    """``signed.extract(msg[origin:]).text`` for a clearsigned message whose
    text needs no canonicalising, as a filter's report or checkpoint is
    posted (text/plain, 7bit or 8bit, us-ascii or UTF-8, no dash-escaped
    line, no trailing space, tab or CR): read with a few byte searches
    instead of line by line (a checkpoint has tens of thousands of lines),
    in place (*origin*: where the message starts in *msg*, after its stamp),
    without a copy of it.  Everything but the text is checked by
    ``extract`` itself, on the message without its text.  None for any
    other message (one starting with a ``From `` line or a blank line
    among them), or one that ``extract`` would refuse: the caller then
    asks ``extract``."""
    if msg.startswith((b"From ", b"\n", b"\r\n"), origin):
        return None
    m = signed._BLANK_LINE.search(msg, origin)                 # signed._split_head, in place
    if m is None:
        return None
    head, body = msg[origin:m.start()], m.end()                # body: where it starts
    ctype = signed._header(head, b"content-type")
    cte = signed._header(head, b"content-transfer-encoding")
    if ((ctype is not None and ctype.split(b";")[0].strip().lower() != b"text/plain")
            or (cte is not None and cte.lower() not in (b"7bit", b"8bit", b"binary"))
            or signed._charset(ctype) not in ("us-ascii", "ascii", "utf-8")
            or not msg.startswith(_CLEARSIGN, body)):
        return None
    start = msg.find(b"\n\n", body + len(_CLEARSIGN) - 1) + 2  # after the armour headers
    if start < 2 or any(not h.startswith(b"Hash:")
                        for h in msg[body + len(_CLEARSIGN):start - 2].split(b"\n")):
        return None
    end = msg.find(_SIGNATURE, start - 1)                      # the text is msg[start:end]
    if (end <= start or msg.find(b"\r", start, end) >= 0 or msg.startswith(b"- ", start)
            or _DASHED.search(msg, start, end) or _SPACE_END.search(msg, start, end)
            or (msg.find(b"\t", start, end) >= 0 and msg.find(b"\t\n", start, end) >= 0)
            or msg[end - 1] in b" \t"):
        return None
    try:
        if signed.extract(msg[origin:start] + msg[end + 1:]).text != "":
            return None
        return msg[start:end + 1].decode("utf-8")              # with its last newline
    except ValueError:                                         # SignedError, UnicodeDecodeError
        return None


class Filter:
    """Base class of every filter.  Subclasses set ``name`` (``"transfers"``)
    or compute it from their arguments (``"specialist ACME"``)."""

    name = "filter"

    def __init__(self, args: list[str] | None = None):
        self.args = list(args or [])
        self.pit = ""            # pit name, learnt from the records
        self.seq = 0             # last sequence number acted on or skipped
        self.time = ""           # X-Pit-Time of the last record read
        self.lines: list[str] = []
        self.first_seq = 1       # first record this run covers: the checkpoint's Seq + 1

    # -- what a filter writes -------------------------------------------------
    def wants(self, stamp: dict) -> bool:
        """Is this record (by its stamp headers, lowercased) this filter's business?"""
        raise NotImplementedError

    def apply(self, seq: int, stamp: dict, msg: bytes) -> None:
        """Act on one record; report what happened with :meth:`say`."""
        raise NotImplementedError

    def state(self) -> list[str]:
        """The whole state as canonical text lines (no header lines)."""
        raise NotImplementedError

    def restore(self, lines: list[str]) -> None:
        """Inverse of :meth:`state`."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Work every run needs that can be done before the input comes:
        :func:`main` calls it while the program writing the input is still
        starting.  Nothing by default."""

    def restore_text(self, text: str, start: int = 0) -> None:
        """:meth:`restore` of the state as one text, ``text[start:]`` (the
        checkpoint after its head), for a filter that reads some of it in
        place rather than a string a line."""
        lines = text[start:].split("\n")
        if lines[-1] == "":
            lines.pop()
        self.restore(lines)

    #: Tickers whose order records the driver may hand to :meth:`apply_order`
    #: without a stamp dict or message bytes (the replay's hot path).  A
    #: filter that sets it promises that for an order record (``X-Pit-Kind:
    #: order``) with one of these tickers :meth:`wants` is true and
    #: :meth:`apply` does exactly ``apply_order(seq, account, ref, request)``
    #: (the stamp's X-Pit-Account, X-Pit-Ref and X-Pit-Request).
    order_tickers: tuple[str, ...] = ()

    def apply_order(self, seq: int, account: str, ref: str, request: str) -> None:
        """Act on an order record for one of :attr:`order_tickers`."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------
    def say(self, line: str) -> None:
        self.lines.append(line)

    @property
    def account(self) -> str:
        """The filter's own account, the one its key signs reports as."""
        return self.name.replace(" ", ":")

    def checkpoint_head(self) -> str:
        """The checkpoint body up to its first state line: name, pit, Seq, blank line."""
        return f"Checkpoint: {self.name}\nPit: {self.pit}\nSeq: {self.seq}\n\n"

    def checkpoint_body(self) -> str:
        lines = self.state()
        return self.checkpoint_head() + ("\n".join(lines) + "\n" if lines else "")

    def report_head(self) -> str:
        """The report body up to its first line: name, pit, range, blank line."""
        return (f"Report: {self.name}\nPit: {self.pit}\n"
                f"From-Seq: {self.first_seq}\nTo-Seq: {self.seq}\n\n")

    def report_body(self) -> str:
        return self.report_head() + ("\n".join(self.lines) + "\n" if self.lines else "")

    def load_checkpoint(self, text: str) -> None:
        cut = -1                             # the end of the head's four lines
        for _ in range(4):
            cut = text.find("\n", cut + 1)
            if cut < 0:
                break
        lines = text[:cut].split("\n") if cut >= 0 else text.split("\n")
        if cut < 0 and lines[-1] == "":
            lines.pop()
        try:
            assert lines[0] == f"Checkpoint: {self.name}", f"checkpoint is not for {self.name}"
            assert lines[1].startswith("Pit: "), "line 2 must be 'Pit: NAME'"
            assert lines[2].startswith("Seq: "), "line 3 must be 'Seq: N'"
            assert lines[3] == "", "line 4 must be blank"
            self.pit = lines[1][5:]
            self.seq = int(lines[2][5:])
            self.first_seq = self.seq + 1
        except (AssertionError, IndexError, ValueError) as e:
            raise FilterError(f"damaged checkpoint for {self.name}: {e}") from None
        try:
            self.restore_text(text, cut + 1)
        except Exception as e:  # a damaged checkpoint must not pass silently
            raise FilterError(f"damaged checkpoint for {self.name}: {e}") from None

    def is_own_checkpoint(self, text: str) -> bool:
        return text.startswith(f"Checkpoint: {self.name}\n")

    # -- one record -------------------------------------------------------------
    def feed(self, seq: int, stamp: dict, msg: bytes) -> bool:
        """Act on a record if it is new and ours; return whether it was ours."""
        if seq <= self.seq:
            return self.wants(stamp)      # already covered by the checkpoint
        self.time = stamp.get("x-pit-time", self.time)
        if not self.pit:
            self.pit = _pit_of(stamp, msg)
        mine = self.wants(stamp)
        if mine:
            self.apply(seq, stamp, msg)
        self.seq = seq
        return mine


def _pit_of(stamp: dict, msg: bytes) -> str:
    return stamp.get("x-pit-pit", "")


def run(flt: Filter, messages: Iterable[bytes], out: BinaryIO | None = None, *,
        spool: bool = False) -> None:
    """Run *flt* over *messages* (mbox message bytes), writing the protocol's
    output to *out* (if given).  The filter's report lines stay in
    ``flt.lines`` and its final state in the filter.  O(messages): per
    record one stamp read and what the filter does with it.  With *spool*
    (and *out*), what nobody reads but the output does not stay as lines:
    every _SPOOL records or so the lines said so far are encoded into one
    piece of the report and ``flt.lines`` is emptied (a program's memory:
    a million records say ~1.4 million lines)."""
    if out is not None:
        def write(m: bytes, st: dict) -> None:
            out.write(mbox.format_message(m, "notary", st.get("x-pit-time", "")))
    else:
        def write(m: bytes, st: dict) -> None:
            pass
    stamp_of = mbox.stamp
    messages = iter(messages)
    pieces = [] if spool and out is not None and type(flt).report_body is Filter.report_body else None
    own_start = None
    started = False
    for msg in messages:                  # the leading checkpoints
        stamp = {} if msg.__class__ is tuple else stamp_of(msg)   # a tuple: an order
        if stamp.get("x-pit-kind") == "checkpoint":
            text = _checkpoint_text(flt, stamp, msg)
            if text is not None and flt.is_own_checkpoint(text):
                flt.load_checkpoint(text)
                own_start = msg
            else:
                write(msg, stamp)
            continue
        started = True
        if own_start is not None:
            write(own_start, stamp_of(own_start))
        _records(flt, chain((msg,), messages), write, pieces)   # its stamp is read once more: one record
        break
    if not started and own_start is not None:
        write(own_start, stamp_of(own_start))
    if out is not None:
        date = flt.time
        if flt.lines or pieces:
            _write_report(flt, out, date, pieces or ())
        _write_checkpoint(flt, out, date)


_REPORT_PIECE = 1024          # report or checkpoint lines encoded and written at a time


def _write_report(flt: Filter, out: BinaryIO, date: str, pieces=()) -> None:
    """Write the report entry, the bytes of ``format_message(filter_output(
    "report", ..., flt.report_body(), date), *_sender(flt, date))``, a piece
    of its lines at a time (see _write_pieces): a long replay's report
    (97 MB for the 1M bench) was copied whole half a dozen times over
    (join, partition, header, encode, quote, entry), each copy in fresh
    pages, about a twentieth of the run.  O(report size)."""
    if type(flt).report_body is not Filter.report_body:       # a body of its own
        _write_whole(flt, out, date, "report", flt.report_body())
    else:
        _write_pieces(flt, out, date, "report", flt.report_head(), flt.lines, pieces)


def _write_checkpoint(flt: Filter, out: BinaryIO, date: str) -> None:
    """Write the final checkpoint entry, the bytes of ``format_message(
    filter_output("checkpoint", ..., flt.checkpoint_body(), date), ...)``,
    a piece of its lines at a time (see _write_pieces): a checkpoint of
    thousands of open orders (786 KB in the 1M bench) is not copied whole
    four times over, each time in fresh pages.  O(checkpoint size)."""
    if type(flt).checkpoint_body is not Filter.checkpoint_body:
        _write_whole(flt, out, date, "checkpoint", flt.checkpoint_body())
    else:
        _write_pieces(flt, out, date, "checkpoint", flt.checkpoint_head(), flt.state())


def _write_whole(flt: Filter, out: BinaryIO, date: str, kind: str, body: str) -> None:
    out.write(mbox.format_message(message.filter_output(kind, flt.name, flt.pit, body, date),
                                  *_sender(flt, date)))


def _write_pieces(flt: Filter, out: BinaryIO, date: str, kind: str, head: str,
                  lines: list[str], pieces=()) -> None:
    """_write_whole of the body ``head + "\\n".join(lines) + "\\n"`` (just
    *head* without lines), a piece of its lines at a time; *pieces*: lines
    said before *lines*, already encoded (ASCII, see _spool).  Written whole
    when its charset cannot be known from the head (a line that is not
    ASCII).  mboxrd quoting works line by line, so quoting the pieces is
    quoting the whole."""
    if not all(map(str.isascii, lines)):
        lines[:0] = b"".join(pieces).decode().split("\n")[:-1] if pieces else ()
        return _write_whole(flt, out, date, kind, head + ("\n".join(lines) + "\n" if lines else ""))
    # An ASCII body: the head alone gives the same header (charset us-ascii).
    sender = _sender(flt, date)
    msg_head = message.filter_output(kind, flt.name, flt.pit, head, date)
    write, quote, join = out.write, mbox.quote, "\n".join
    write(mbox.from_line(*sender) + quote(msg_head))
    for piece in pieces:
        write(quote(piece))
    for i in range(0, len(lines), _REPORT_PIECE):
        write(quote((join(lines[i:i + _REPORT_PIECE]) + "\n").encode()))
    write(b"\n")


_SPOOL = 4096                 # records between two looks at the lines to spool (run(spool=True))


def _records(flt: Filter, messages: Iterable[bytes], write, pieces: list | None = None) -> None:
    """The records after the leading checkpoints: :meth:`Filter.feed` on
    each, written through when not the filter's.  The hot loop: feed is
    inlined here for filters that keep the base class's (same steps, same
    order), with the bound methods looked up once.  With *pieces* (a
    list), the report lines are spooled into it (see run)."""
    feed = flt.feed
    inline = type(flt).feed is Filter.feed
    wants, apply = flt.wants, flt.apply
    apply_order = flt.apply_order
    stamp_of = mbox.stamp
    countdown = _SPOOL if pieces is not None else -1
    for msg in messages:
        countdown -= 1
        if not countdown:
            countdown = _SPOOL if _spool(flt.lines, pieces) else -1
        if msg.__class__ is tuple:        # an order for one of flt.order_tickers
            seq, time_, pit, account, ref, request = msg
            if seq > flt.seq:             # (else already covered by the checkpoint)
                flt.time = time_
                if not flt.pit:
                    flt.pit = pit
                apply_order(seq, account, ref, request)
                flt.seq = seq
            continue
        stamp = stamp_of(msg)
        seq_text = stamp.get("x-pit-seq")
        if seq_text is None:
            write(msg, stamp)             # not notarized: not acted on
            continue
        if not seq_text.isdigit():
            raise FilterError(f"record with X-Pit-Seq {seq_text[:40]!r}: not a sequence number")
        seq = int(seq_text)
        if not inline:
            if not feed(seq, stamp, msg):
                write(msg, stamp)
            continue
        if seq <= flt.seq:                # already covered by the checkpoint
            if not wants(stamp):
                write(msg, stamp)
            continue
        flt.time = stamp.get("x-pit-time", flt.time)
        if not flt.pit:
            flt.pit = _pit_of(stamp, msg)
        if wants(stamp):
            apply(seq, stamp, msg)
            flt.seq = seq
        else:
            flt.seq = seq
            write(msg, stamp)


def _spool(lines: list[str], pieces: list[bytes]) -> bool:
    """Move *lines* (when there are a piece's worth) into *pieces* as one
    encoded piece, emptying the list in place; False, with every line back
    in *lines*, once a line is not ASCII (the report's charset is then
    known only at its end: it is written whole)."""
    if len(lines) < _REPORT_PIECE:
        return True
    text = "\n".join(lines) + "\n"
    if not text.isascii():
        lines[:0] = b"".join(pieces).decode().split("\n")[:-1] if pieces else ()
        pieces.clear()
        return False
    pieces.append(text.encode())
    lines.clear()
    return True


def _checkpoint_text(flt: Filter, stamp: dict, msg: bytes) -> str | None:
    """The signed text of a leading checkpoint; None for another filter's
    checkpoint that cannot be read (passed through untouched).  One of our
    own that cannot be read is a damaged checkpoint: FilterError."""
    try:
        return signed_text(msg)
    except (ValueError, UnicodeError) as e:     # SignedError, MboxError
        owner = stamp.get("x-pit-request", "").rpartition(" ")[0]
        if owner == flt.name:
            raise FilterError(f"damaged checkpoint for {flt.name} (record "
                              f"{stamp.get('x-pit-seq', '?')}): {e}") from None
        return None


def _envelope(msg: bytes) -> tuple[str, str]:
    st = mbox.stamp(msg)
    return "notary", st.get("x-pit-time", "")


def _sender(flt: Filter, date: str) -> tuple[str, str]:
    return flt.account, date


def main(cls, argv: list[str] | None = None) -> int:
    """Run filter class *cls* as a program: stdin to stdout."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print((cls.__doc__ or cls.name).strip())
        return 0
    try:
        flt = cls(argv)
    except ValueError as e:
        print(f"{cls.name}: {e}", file=sys.stderr)
        return 2
    out = mbox.stdout_writer()
    mbox.widen_pipe(sys.stdin)
    # What every run needs besides its filter's module, imported now, while
    # the program that writes the input is still starting up: pit.signed
    # reads the checkpoint, the message kinds (which pit.message imports on
    # first use) read its registry and write the output, and datetime
    # reads the dates the output is written with; then whatever else the
    # filter prepares (Filter.prepare).
    import datetime  # noqa: F401
    import pit.signed  # noqa: F401
    from pit.message import filter_output  # noqa: F401
    flt.prepare()
    # The run builds millions of small objects and no cycles that matter:
    # the cyclic collector would only rescan them (docs/pit-book.md).
    gc.disable()
    try:
        run(flt, _input(flt, sys.stdin.buffer), out, spool=True)
    except (FilterError, mbox.MboxError, UnitError) as e:
        # (UnitError: an amount of an asset the stream never defined, as
        # when another filter took the Instrument records out before us)
        print(f"{flt.name}: {e}", file=sys.stderr)
        return 1
    except message.MessageError as e:     # e.g. no record on input: no pit name to write
        print(f"{flt.name}: cannot write the output{'' if flt.pit else ' (no notarized record on input)'}: {e}",
              file=sys.stderr)
        return 1
    except BrokenPipeError:
        mbox.drop_stdout()
        return 0
    finally:
        # The program ends here: what is left is freed with the process.
        # Frozen, it is not traversed again by the collections that
        # Python's exit runs.
        gc.freeze()
        gc.enable()
    try:
        out.flush()
    except BrokenPipeError:
        mbox.drop_stdout()
    return 0


def _input(flt: Filter, fileobj: BinaryIO) -> Iterator:
    """The messages of *fileobj* for :func:`run`: with the order records of
    ``flt.order_tickers`` as tuples when the filter takes them that way and
    keeps the base class's :meth:`Filter.feed` (which _records inlines)."""
    if flt.order_tickers and type(flt).feed is Filter.feed:
        return mbox.iter_stream_orders(fileobj, flt.order_tickers)
    return mbox.iter_stream(fileobj)


def iter_records(messages: Iterable[bytes]) -> Iterator[tuple[int, dict, bytes]]:
    """``(seq, stamp, msg)`` for each notarized message.  O(messages)."""
    for msg in messages:
        st = mbox.stamp(msg)
        s = st.get("x-pit-seq")
        if s is not None:
            yield int(s), st, msg
