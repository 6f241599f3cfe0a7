"""mboxrd reading and writing: the one place that touches mbox bytes.

An mbox file is a run of *entries*.  Each entry is a ``From SENDER DATE``
separator line, the message with mboxrd quoting, and one ``\\n``:

    From notary Sun Nov 22 00:52:38 2026
    X-Pit-Seq: 42
    ...last line of the message
    <blank line>

mboxrd quoting (RFC 4155 and the mboxrd convention): the writer adds one
``>`` to every message line matching ``^>*From ``; the reader removes one
``>`` from every line matching ``^>+From ``.  That pair is a bijection, so
any message bytes survive a write and a read exactly (signatures still
verify).

How a message without a final newline round-trips: the writer always
appends exactly one ``\\n`` after the (quoted) message and the reader always
removes exactly one.  A message ending in ``\\n`` is therefore followed by
the customary blank line; a message without a final newline gets its last
line terminated and no blank line, and reads back without the newline.  The
pit's own messages always end in ``\\n``.  Nothing is recorded on the side.

A message is ``bytes`` with LF line endings as stored; CR bytes are data.
Reading splits on ``\\nFrom `` (no email parsing) and unquotes only the
messages that contain ``>From `` (a ``bytes.find``), which is why reading is
fast: see ``python -m bench.archive``.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from collections import namedtuple
from collections.abc import Iterable, Iterator
from itertools import repeat

TYPE_CHECKING = False            # typing is for type checkers only
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "MboxError", "Entry", "asctime", "from_line", "quote", "unquote",
    "format_message", "write_message", "iter_entries", "iter_messages",
    "iter_file", "iter_file_entries", "iter_stream", "iter_stream_entries",
    "headers", "stamp", "stamp_seq", "split_stamp", "iter_stream_orders",
]

_SEP = b"\nFrom "
_NEEDS_QUOTE = re.compile(rb"^(>*From )", re.M)
_NEEDS_UNQUOTE = re.compile(rb"^>(>*From )", re.M)
_ISO_UTC = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:Z|[+-]00:?00)?$")
_ASCTIME = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$")
_STAMP_PREFIX = b"X-Pit-"
_UNKNOWN_SENDER = "MAILER-DAEMON"


class MboxError(ValueError):
    """Bytes that are not a well-formed mbox, or a bad argument to the writer.
    The message names what is wrong and where (byte offset or line)."""


# -- writing -----------------------------------------------------------------

def asctime(epoch: int) -> str:
    """The mbox ``From `` line date for *epoch* seconds, UTC, asctime format
    (``Sun Nov  2 00:52:38 2026``).  Locale-independent, no clock."""
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise MboxError(f"date {epoch!r}: epoch seconds must be an int")
    return time.asctime(time.gmtime(epoch))


def _date_text(date: str | int | None) -> str:
    if date is None or date == "":
        return asctime(0)          # unknown date: the epoch, never the clock
    if isinstance(date, int):
        return asctime(date)
    if not isinstance(date, str):
        raise MboxError(f"date {date!r}: expected str or int epoch seconds")
    if _ASCTIME.match(date):
        return date
    m = _ISO_UTC.match(date)
    if m:
        return asctime(_timegm(*map(int, m.groups())))
    raise MboxError(f"date {date!r}: expected asctime ('Sun Nov 22 00:52:38 2026'), "
                    "ISO 8601 UTC ('2026-11-22T00:52:38Z') or int epoch seconds")


def _timegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """``calendar.timegm``, computed as it computes it, without importing
    calendar (and locale) at a filter program's start."""
    from datetime import date           # here: a program that only reads mbox starts without it
    days = date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    return ((days * 24 + hour) * 60 + minute) * 60 + second


_EPOCH_ORDINAL = 719163                 # date(1970, 1, 1).toordinal()


def from_line(sender: str, date: str | int | None) -> bytes:
    """The ``From SENDER DATE\\n`` separator line.  *date* is an int (epoch
    seconds), an asctime string (kept verbatim) or an ISO 8601 UTC string
    (``X-Pit-Time``, converted); ``None``/``""`` means unknown and writes the
    epoch.  An empty *sender* is written ``MAILER-DAEMON``.  Deterministic."""
    sender = sender or _UNKNOWN_SENDER
    if any(c.isspace() for c in sender):
        raise MboxError(f"sender {sender!r} contains white space")
    return f"From {sender} {_date_text(date)}\n".encode("utf-8")


def quote(msg: bytes) -> bytes:
    """mboxrd-quote *msg*: one more ``>`` on each line matching ``^>*From ``.
    O(len(msg)); no copy when no line needs it."""
    if b"From " not in msg:
        return msg
    return _NEEDS_QUOTE.sub(rb">\1", msg)


def unquote(body: bytes) -> bytes:
    """Undo :func:`quote`: one ``>`` less on each line matching ``^>+From ``.
    O(len(body)); no copy when there is no ``>From ``."""
    if b">From " not in body:
        return body
    return _NEEDS_UNQUOTE.sub(rb"\1", body)


def format_message(msg: bytes, sender: str, date: str | int | None) -> bytes:
    """One complete mbox entry for *msg*: ``From `` line, quoted message,
    one ``\\n``.  O(len(msg))."""
    if not isinstance(msg, (bytes, bytearray)):
        raise MboxError(f"message must be bytes, not {type(msg).__name__}")
    return b"".join((from_line(sender, date), quote(bytes(msg)), b"\n"))


def write_message(fileobj: BinaryIO, msg: bytes, sender: str, date: str | int | None) -> int:
    """Write one entry for *msg* to the binary file *fileobj* (one ``write``
    call, so an O_APPEND file gets it whole).  Returns the bytes written."""
    entry = format_message(msg, sender, date)
    fileobj.write(entry)
    return len(entry)


# -- reading -----------------------------------------------------------------

class Entry(namedtuple("Entry", "from_line message offset")):
    """One mbox entry: the raw ``From `` line (without its newline), the
    unquoted message bytes (``message``), and the byte offset of the entry
    in its input (``offset``)."""

    __slots__ = ()

    @property
    def sender(self) -> str:
        return self.from_line[5:].split(b" ", 1)[0].decode("utf-8", "replace")

    @property
    def date(self) -> str:
        parts = self.from_line[5:].split(b" ", 1)
        return parts[1].decode("utf-8", "replace").strip() if len(parts) > 1 else ""


def _scan(data, start: int, end: int, base: int, final: bool):
    """Yield ``(entry_offset, from_line, raw_body, next_offset)`` for the
    complete entries of ``data[start:end]``.  When *final* is false, the last
    entry is held back (it may continue in the next chunk) and the offset it
    starts at is the generator's return value."""
    pos = start
    if not final and end - pos < 5:
        return pos                     # too short to tell yet
    if pos < end and not data.startswith(b"From ", pos):
        raise MboxError(f"byte {base + pos}: expected a 'From ' line, got "
                        f"{bytes(data[pos:pos + 20])!r}")
    find = data.find
    while pos < end:
        line_end = find(b"\n", pos, end)
        if line_end < 0:
            if final:
                raise MboxError(f"byte {base + pos}: truncated 'From ' line at end of input")
            return pos
        body_start = line_end + 1
        # The "\n" of a separator is the one the writer appended after the
        # message; a quoted message has no line starting "From ", so the
        # first "\nFrom " at or after body_start ends this entry.
        nxt = find(_SEP, body_start, end)
        if nxt < 0:
            if not final:
                return pos
            if end == body_start or data[end - 1] != 10:
                raise MboxError(f"byte {base + end}: input ends inside the entry at byte "
                                f"{base + pos} (no final newline: truncated?)")
            yield pos, data[pos:line_end], data[body_start:end - 1], end
            return end
        yield pos, data[pos:line_end], data[body_start:nxt], nxt + 1
        pos = nxt + 1
    return pos


def iter_entries(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Entry]:
    """Every entry of the mbox bytes ``data[start:end]`` (bytes or mmap), in
    order.  O(len(data)), plus unquoting where ``>From ``
    occurs.  Raises :class:`MboxError` (with the byte offset) on input that
    does not start with ``From `` or ends inside an entry."""
    end = len(data) if end is None else end
    for pos, fl, body, _ in _scan(data, start, end, 0, True):
        yield Entry(bytes(fl), unquote(bytes(body)), pos)


def iter_messages(data: bytes, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The message bytes of every entry of ``data[start:end]``: the hot path.
    O(len(data))."""
    end = len(data) if end is None else end
    if start >= end:
        return
    if not data.startswith(b"From ", start):
        raise MboxError(f"byte {start}: expected a 'From ' line, got {bytes(data[start:start + 20])!r}")
    find = data.find
    pos = start
    while pos < end:
        body_start = find(b"\n", pos, end) + 1
        if body_start == 0:
            raise MboxError(f"byte {pos}: truncated 'From ' line at end of input")
        nxt = find(_SEP, body_start, end)
        if nxt < 0:
            if data[end - 1] != 10 or end == body_start:
                raise MboxError(f"byte {end}: input ends inside the entry at byte {pos} "
                                "(no final newline: truncated?)")
            nxt = end - 1
        body = data[body_start:nxt]
        yield _NEEDS_UNQUOTE.sub(rb"\1", body) if b">From " in body else body
        pos = nxt + 1


def _read_all(path_or_fileobj) -> bytes:
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "rb") as f:
            return f.read()
    return path_or_fileobj.read()


def iter_file(path_or_fileobj) -> Iterator[bytes]:
    """The messages of an mbox file (a path or a binary file object), read
    whole: fastest for files that fit in memory.  Use :func:`iter_stream`
    for pipes and unbounded input.  O(file size)."""
    return iter_messages(_read_all(path_or_fileobj))


def iter_file_entries(path_or_fileobj) -> Iterator[Entry]:
    """Like :func:`iter_file`, yielding :class:`Entry` (From line, offset)."""
    return iter_entries(_read_all(path_or_fileobj))


def iter_stream_entries(fileobj: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[Entry]:
    """The entries of an mbox read from *fileobj* (stdin, a pipe) in chunks of
    *chunk_size* bytes: memory is bounded by the chunk plus the largest
    message, never the whole input.  O(input size): a partial entry is
    searched again only from where the last search stopped."""
    buf = b""
    consumed = 0                       # input offset of buf[0]
    while True:
        chunk = fileobj.read(chunk_size)
        final = not chunk
        if chunk:
            buf = buf + chunk if buf else chunk
        gen = _scan(buf, 0, len(buf), consumed, final)
        keep_from = 0
        while True:
            try:
                pos, fl, body, nxt = next(gen)
            except StopIteration as stop:
                keep_from = stop.value if stop.value is not None else len(buf)
                break
            yield Entry(bytes(fl), unquote(bytes(body)), consumed + pos)
        if final:
            return
        if keep_from:
            buf = buf[keep_from:]
            consumed += keep_from
        if len(buf) > 4 * chunk_size:
            # One entry larger than the chunk: read bigger chunks so the
            # repeated scan of the growing entry stays linear overall.
            chunk_size = len(buf)


def _shifted(e: MboxError, base: int) -> MboxError:
    """The same error with its byte offsets counted from the start of the input."""
    return MboxError(re.sub(r"byte (\d+)", lambda m: f"byte {int(m.group(1)) + base}", str(e)))


def _complete_chunks(fileobj: BinaryIO, chunk_size: int):
    """``(buf, end, base)`` for each run of complete entries ``buf[:end]``
    read from *fileobj* (*base*: input offset of ``buf[0]``); the last one
    is whatever remains at end of input, as bytes.  Before it, *buf* is one
    bytearray read into again and again, valid until the next chunk is
    asked for, and ``buf[end:end + 5]`` is ``From ``: a fresh 1 MiB block
    per chunk cost a page fault per 4 KiB read (the allocator hands a freed
    block of that size back to the kernel), about a tenth of a filter's
    replay.  Reads what is there (``readinto1``, when the file has it)
    rather than waiting for a full chunk, so a filter works while the
    program writing into its pipe goes on writing.  Only the bytes just
    read are searched for an entry's end, and an entry longer than the
    buffer doubles it, so a long entry is read in linear time."""
    readinto = getattr(fileobj, "readinto1", None)
    if readinto is None:                     # e.g. a raw stream that only reads
        read = getattr(fileobj, "read1", None) or fileobj.read

        def readinto(view):
            data = read(len(view)) or b""
            view[:len(data)] = data
            return len(data)
    buf = bytearray(max(chunk_size, 16))
    view = memoryview(buf)
    filled = 0                         # buf[:filled] holds input not yet handed out
    consumed = 0                       # input offset of buf[0]
    while True:
        if filled == len(buf):         # one entry fills the buffer
            buf = buf + bytes(len(buf))
            view = memoryview(buf)
        n = readinto(view[filled:])
        if not n:
            if filled:
                yield bytes(view[:filled]), filled, consumed
            return
        # A separator ending in the new bytes may start up to 5 bytes before them.
        cut = buf.rfind(_SEP, max(filled - 5, 0), filled + n)
        filled += n
        if cut < 0:
            continue
        yield buf, cut + 1, consumed
        rest = filled - cut - 1
        buf[:rest] = buf[cut + 1:filled]      # (a copy: the two may overlap)
        filled = rest
        consumed += cut + 1


def widen_pipe(f) -> None:
    """Give the pipe *f* reads from or writes to a 1 MiB buffer (Linux;
    anything else is left as it is).  With the default 64 KiB the program at
    the other end stalls whenever this one is busy, and the two take turns
    instead of running side by side; and a filter's checkpoint is written
    at once, before the filter reading it has finished starting."""
    try:
        import fcntl
        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError, AttributeError):
        pass                          # not a pipe, not Linux, or not allowed


def stdout_writer(size: int = 1 << 20) -> BinaryIO:
    """Standard output as a binary file written *size* bytes at a time,
    however Python's own is set up: with PYTHONUNBUFFERED (or ``-u``)
    ``sys.stdout.buffer`` is a raw file, a system call (and a wake-up of
    the program reading the pipe) for every message written.  Flush it when
    done; see :func:`drop_stdout` for a reader that went away.  Where
    standard output is no file (a test capturing it), ``sys.stdout.buffer``."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout.buffer
    sys.stdout.flush()
    return open(fd, "wb", buffering=size, closefd=False)


def drop_stdout() -> None:
    """Standard output's reader went away (EPIPE): point fd 1 at /dev/null,
    so that what is still buffered for it is dropped at exit instead of
    raising BrokenPipeError again there."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (AttributeError, OSError, ValueError):
        pass


def iter_stream(fileobj: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The messages of an mbox read from *fileobj* in chunks: what filters
    read stdin with.  Each chunk's complete entries go through
    :func:`iter_messages` in one piece (the hot path); the incomplete tail
    waits for the next chunk.  Memory is bounded by the chunk plus the
    largest message.  O(input size)."""
    for buf, end, base in _complete_chunks(fileobj, chunk_size):
        try:
            for msg in iter_messages(buf, 0, end):
                yield bytes(msg)              # a slice of the reused buffer is a bytearray
        except MboxError as e:
            raise _shifted(e, base) from None


# The head of a whole entry holding a notarized order exactly as the notary
# writes it, after its "From ": the rest of the From line, then the stamp
# lines in the notary's order (see _NOTARY_NAMES below) with Kind "order"
# and one of the wanted tickers, and no further X-Pit- line.  The values
# read are printable ASCII (spaces inside the request, the others none; the
# request's last byte, not a space, is checked by the caller rather than by
# an sre loop per word), so they are exactly what stamp() gives; Prev,
# Digest and Signer are not read, and the caller checks that the whole head
# is ASCII (one C call, and one per chunk when the chunk is: far cheaper
# than a character class over their 170 characters), which is all stamp()
# needs not to fail on them.  Anything else takes the general path.
_B_WORD = rb"([!-~]++)"
_B_TEXT = rb"([!-~][ -~]*+)"        # and not ending in a space: checked by the caller
_B_SKIP = rb"[^\n]*+"
_ORDER_HEAD = (
    rb"[^\n]*+\nX-Pit-Seq: ([0-9]++)\nX-Pit-Time: " + _B_WORD +
    rb"\nX-Pit-Prev: " + _B_SKIP + rb"\nX-Pit-Digest: " + _B_SKIP +
    rb"\nX-Pit-Signer: " + _B_SKIP + rb"\nX-Pit-Pit: " + _B_WORD +
    rb"\nX-Pit-Kind: order\nX-Pit-Account: " + _B_WORD + rb"\nX-Pit-Ref: " + _B_WORD +
    rb"\nX-Pit-Ticker: (?:%s)\nX-Pit-Request: " + _B_TEXT + rb"\n(?!X-Pit-)")


def _order_head(tickers: Iterable[str]) -> bytes:
    """_ORDER_HEAD for *tickers* (those that can be a stamp's word), or for
    a pit.tickerset.TickerSet with ranges (its ``pattern``)."""
    if hasattr(tickers, "pattern"):
        return _ORDER_HEAD % tickers.pattern.encode("ascii")
    words = sorted({t.encode("ascii") for t in tickers
                    if t.isascii() and re.fullmatch(r"[!-~]+", t)})
    return _ORDER_HEAD % (b"|".join(map(re.escape, words)) or b"(?!)")


# What order_entry reads between Prev and Signer: a word of printable ASCII,
# as stamp()'s own fast path reads those values.
_ORDER_ENTRY_SKIP = _B_SKIP.replace(rb"[^\n]*+", rb"[!-~]++")


def order_entry(tickers: Iterable[str]):
    """``match(buf, pos, endpos)``: the head of an mbox entry at *pos* (its
    ``From `` line and stamp) holding a notarized order for one of
    *tickers* in the notary's exact layout, every stamp value printable
    ASCII; its group 6 is the request (the caller checks that it does not
    end in a space).  For such an entry :func:`stamp` gives kind ``order``
    and that ticker, without building the dict: what a replay needs to know
    of most records (``Filter.order_tickers``)."""
    return re.compile(b"From " + _order_entry(tickers)).match


def _order_entry(tickers: Iterable[str]) -> bytes:
    """order_entry's pattern after its ``From ``."""
    head = _order_head(tickers)                         # (it starts with the From line's rest)
    return _B_SKIP + head[len(_B_SKIP):].replace(_B_SKIP, _ORDER_ENTRY_SKIP)


def order_entry_head(tickers: Iterable[str]) -> bytes:
    """The pattern of :func:`order_entry` after its ``From ``, the request
    not ending in a space (a look behind it): an entry whose head matches
    is an order record for one of *tickers* that ``Filter.order_tickers``
    promises a filter wants.  Its group 1 is the X-Pit-Seq.  For
    ``Archive.entry_runs``."""
    return _order_entry(tickers).replace(
        _B_TEXT + rb"\n(?!X-Pit-)", _B_TEXT + rb"(?<! )\n(?!X-Pit-)")


def _order_patterns(tickers: Iterable[str]):
    """``(match, search)``: the head of an order entry for one of *tickers*
    (ticker strings, or a TickerSet: its ``pattern``) at a position, and the next entry separator followed by such a head or
    by anything else (its groups are then None)."""
    head = _order_head(tickers)
    # Patterns over the input decoded as latin-1 (one char a byte, at the
    # same offsets): what they match are str values without a decode each.
    return (re.compile((b"From " + head).decode("latin-1")).match,
            re.compile((_SEP + b"(?:" + head + b")?").decode("latin-1")).search)


def iter_stream_orders(fileobj: BinaryIO, tickers: Iterable[str],
                       chunk_size: int = 1 << 20) -> Iterator[bytes | tuple]:
    """Like :func:`iter_stream`, with the commonest record read straight off
    the input: a notarized order for one of *tickers* whose stamp is in the
    notary's exact layout comes as the tuple ``(seq, time, pit, account, ref,
    request)`` (``seq`` an int, the rest the stamp's values as str) instead
    of its message bytes; every other entry comes as message
    bytes, exactly as :func:`iter_stream` gives it.  Input order is kept and
    the errors are those of :func:`iter_stream`.  O(input size); no copy of
    an order's message is made (what a filter's replay spends most entries
    on).  One pattern search per entry finds where it ends and reads the
    head of the next: sre's scan for the separator is faster than
    ``bytes.find`` on these, and it is one call instead of two."""
    match, search = _order_patterns(tickers)
    for buf, end, base in _complete_chunks(fileobj, chunk_size):
        find = buf.find
        limit = end + 5               # buf[end:] starts "From ": the last separator is found too
        # The chunk as latin-1 text (a char a byte, at the same offsets),
        # read by the patterns: one decode a chunk instead of five an order,
        # and str.isascii() is O(1).  A chunk_size of text when the chunk
        # fills most of that (nearly always): a str of the same size every
        # time, which malloc hands back again, where one of each chunk's size
        # cost a page fault per 4 KiB; its bytes past *limit* are never read.
        # Just the chunk otherwise: a short one, or a long entry that grew the
        # buffer (a checkpoint; the buffer stays grown, its idle rest unread).
        with memoryview(buf) as view:
            size = min(len(view), chunk_size)
            if not limit <= size <= 2 * limit:
                size = limit
            text = str(view[:size], "latin-1")
        ascii_ = text.isascii()       # then no head needs its own check
        pos = 0
        m = match(text, 0, end)
        while pos < end:
            if m is not None and m.lastindex is not None:
                head_end = m.end()
                # The head's last newline may be the separator's: a message
                # that ends with its request line and no newline of its own.
                nm = search(text, head_end - 1, limit)
                if nm is not None:
                    seq, time_, pit, account, ref, request = m.groups()
                    if request[-1] != " " and (ascii_ or text[pos:head_end].isascii()):
                        yield (int(seq), time_, pit, account, ref, request)
                        pos = nm.start() + 1
                        m = nm
                        continue
            # Any other entry: the general reader, over this one entry.
            body_start = find(b"\n", pos, end) + 1
            m = search(text, body_start, limit) if body_start else None
            stop = end if m is None else m.start() + 1
            try:
                for msg in iter_messages(buf, pos, stop):
                    yield bytes(msg)          # a slice of the reused buffer is a bytearray
            except MboxError as e:
                raise _shifted(e, base) from None
            pos = stop


# -- header-only reads ---------------------------------------------------------

def headers(msg: bytes, names: Iterable[str] | None = None) -> dict[str, str]:
    """The leading header block of *msg* (up to the first empty line), folded
    lines unfolded, as ``{lowercased name: value}``.  A repeated header keeps
    its first value.  With *names*, only those headers (case-insensitive).
    Bytes that are not UTF-8 are kept as surrogate escapes.  O(header size)."""
    wanted = None if names is None else {n.lower() for n in names}
    end = msg.find(b"\n\n")
    block = msg if end < 0 else msg[:end]
    out: dict[str, str] = {}
    name = None
    value: list[str] = []

    def flush():
        if name is not None and name not in out and (wanted is None or name in wanted):
            out[name] = " ".join(v.strip() for v in value if v.strip())

    for lineno, raw in enumerate(block.split(b"\n"), 1):
        line = raw.decode("utf-8", "surrogateescape").rstrip("\r")
        if not line:
            break                               # "\r\n\r\n" header end
        if line[0] in " \t":
            if name is None:
                raise MboxError(f"line {lineno}: continuation line before any header")
            value.append(line)
            continue
        flush()
        n, colon, v = line.partition(":")
        if not colon or not n or n != n.strip():
            if lineno == 1 and line.startswith("From "):
                name = None                     # a stray From_ line: not a header
                continue
            raise MboxError(f"line {lineno}: not a header line: {line[:60]!r}")
        name, value = n.lower(), [v]
    flush()
    return out


def split_stamp(msg: bytes) -> tuple[bytes, bytes]:
    """``(stamp_bytes, original_bytes)``: the leading run of ``X-Pit-`` lines
    (with their newlines) and the rest, byte for byte.  O(stamp size)."""
    pos = stamp_end(msg)
    return msg[:pos], msg[pos:]


def stamp_end(msg: bytes) -> int:
    """Where :func:`split_stamp` cuts *msg*, for a caller that reads the
    original in place rather than copy it.  O(stamp size)."""
    pos = 0
    while msg.startswith(_STAMP_PREFIX, pos):
        nl = msg.find(b"\n", pos)
        if nl < 0:
            return len(msg)
        pos = nl + 1
    return pos


_STAMP_BLOCK = re.compile(rb"(?:X-Pit-[^\n]*\n)*")
_LOWERED: dict[tuple, tuple] = {}      # canonical name tuples -> lowercased


# The stamp exactly as the notary writes it for a request: these names in
# this order (Ticker only for requests that name one), each value printable
# ASCII without leading, trailing or doubled-at-the-edge white space, and no
# further X-Pit- line.  For such a block the strict reading gives exactly
# these values, so one anchored regex (possessive: no backtracking) replaces
# the general split.  The head is decoded as latin-1 (one byte, one char:
# never fails) and the value classes admit ASCII only, so a block that is not
# UTF-8 never matches here and gets the strict reader's error.
_NOTARY_NAMES = ("Seq", "Time", "Prev", "Digest", "Signer", "Pit", "Kind", "Account", "Ref",
                 "Ticker", "Request")
_VALUE = r"([!-~]++(?: ++[!-~]++)*+)"
_NOTARY_STAMP = re.compile("".join(
    f"(?:X-Pit-{n}: {_VALUE}\n)?" if n == "Ticker" else f"X-Pit-{n}: {_VALUE}\n"
    for n in _NOTARY_NAMES) + "(?!X-Pit-)").match
_NOTARY_SPAN = 4096               # a notary stamp is far shorter; longer ones take the general path


def stamp(msg: bytes, start: int = 0) -> dict[str, str]:
    """The stamp block of a notarized message (the leading run of ``X-Pit-``
    lines) as ``{"x-pit-seq": "42", ...}`` (names lowercased, values
    stripped); ``{}`` for a message without one.  Stops at the first line
    that is not ``X-Pit-``; never reads the rest.  O(stamp size); the
    notary's own layout is read fastest.
    With *start*, the message is ``msg[start:]`` (no copy is made).
    Raises :class:`MboxError` naming the line on a malformed or repeated
    stamp header or on bytes that are not UTF-8."""
    head = msg[start:start + _NOTARY_SPAN].decode("latin-1")
    m = _NOTARY_STAMP(head)
    # A match that ends at the cut might be followed by one more X-Pit- line.
    if m is not None and (m.end() + 6 <= len(head) or len(msg) - start <= _NOTARY_SPAN):
        seq, time_, prev, digest, signer, pit, kind, account, ref, ticker, request = m.groups()
        if ticker is None:
            return {"x-pit-seq": seq, "x-pit-time": time_, "x-pit-prev": prev,
                    "x-pit-digest": digest, "x-pit-signer": signer, "x-pit-pit": pit,
                    "x-pit-kind": kind, "x-pit-account": account, "x-pit-ref": ref,
                    "x-pit-request": request}
        return {"x-pit-seq": seq, "x-pit-time": time_, "x-pit-prev": prev,
                "x-pit-digest": digest, "x-pit-signer": signer, "x-pit-pit": pit,
                "x-pit-kind": kind, "x-pit-account": account, "x-pit-ref": ref,
                "x-pit-ticker": ticker, "x-pit-request": request}
    if start:
        msg = msg[start:]
    block = _STAMP_BLOCK.match(msg).group()
    if not block:
        return _stamp_strict(msg)               # maybe one unterminated line
    # Anything that would make the fast split disagree with the strict
    # reading (white space around a value other than the one space after the
    # colon) sends the block to the strict reader.  Plain `in` tests: a
    # regex search here cost more than all the rest.
    if (b" \n" in block or b":  " in block or b"\t" in block or b"\r" in block
            or msg.startswith(_STAMP_PREFIX, len(block))):
        return _stamp_strict(msg)
    # Fast path for the canonical form the notary writes (all C calls):
    # "X-Pit-Name: value\n" lines, each name once.
    try:
        lines = block[6:-1].decode("utf-8").split("\nX-Pit-")
        pairs = dict(map(str.split, lines, repeat(": "), repeat(1)))
    except (UnicodeDecodeError, ValueError):
        return _stamp_strict(msg)
    if len(pairs) != len(lines):
        return _stamp_strict(msg)               # a name repeated
    keys = _KEYS
    try:
        out = {keys[k]: v for k, v in pairs.items()}
        if len(out) == len(pairs):
            return out
        return _stamp_strict(msg)               # names differing only in case
    except KeyError:
        pass
    for k in pairs:
        if k not in keys:
            if len(keys) > 1024 or not k or k != k.strip() or " " in k or ":" in k:
                return _stamp_strict(msg)
            keys[k] = "x-pit-" + k.lower()
    out = {keys[k]: v for k, v in pairs.items()}
    return out if len(out) == len(pairs) else _stamp_strict(msg)


_KEYS: dict[str, str] = {}      # stamp names as written ("Seq") -> "x-pit-seq"


def _stamp_strict(msg: bytes) -> dict[str, str]:
    block, _ = split_stamp(msg)
    if not block:
        return {}
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as e:
        line = block[:e.start].count(b"\n") + 1
        raise MboxError(f"stamp line {line}: not UTF-8") from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.rstrip("\n").split("\n"), 1):
        name, colon, value = line.partition(":")
        key = name.lower()
        if not colon or name != name.rstrip():
            raise MboxError(f"stamp line {lineno}: not 'X-Pit-Name: value': {line[:60]!r}")
        if key in out:
            raise MboxError(f"stamp line {lineno}: {name} repeated")
        out[key] = value.strip()
    return out


def stamp_seq(msg: bytes) -> int | None:
    """The ``X-Pit-Seq`` of a notarized message as an int (``None`` when the
    stamp has none).  Fast when, as the notary writes it, it is the first
    line.  Raises :class:`MboxError` when it is not a decimal number."""
    if msg.startswith(b"X-Pit-Seq: "):
        nl = msg.find(b"\n")
        text = msg[11:nl if nl >= 0 else len(msg)].strip()
    else:
        value = stamp(msg).get("x-pit-seq")
        if value is None:
            return None
        text = value.encode()
    if not text.isdigit():
        raise MboxError(f"X-Pit-Seq {text.decode('utf-8', 'replace')!r} is not a number")
    return int(text)
