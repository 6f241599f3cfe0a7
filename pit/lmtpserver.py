"""An LMTP server (RFC 2033) of the project's own, for the notary.

It speaks LMTP with PIPELINING (RFC 2920), CHUNKING (RFC 3030: BDAT),
8BITMIME and ENHANCEDSTATUSCODES, and differs from aiosmtpd's server (which
the notary used before, docs/pit-book.md "The mail path") in three ways:

* a message's data is taken whole: the end of DATA (CRLF . CRLF) is found in
  the buffered bytes with one search, and the dot-stuffing is undone in one
  pass (aiosmtpd reads it line by line); the result is aiosmtpd's on the
  same bytes (tests/test_lmtpserver.py pins it);
* a connection's next commands and messages are read while earlier
  messages are still being committed: a delivery's reply is a future, and
  the replies go out in the order of the commands, each once it is known;
* every hostile input gets a reply and never stops the server: lines too
  long, messages over the size limit, bare LF (a line must end in CRLF:
  RFC 5321 2.3.8), commands out of sequence or unknown, too many
  recipients, a client that is silent too long (421, closed), one that
  vanishes mid-message (nothing of it delivered), one that sends faster
  than deliveries commit or does not read its replies (reading pauses;
  after the timeout it is closed, and cut off a timeout later if its
  replies still do not drain).

The handler decides what happens to mail:

* ``handler.rcpt(address) -> str | None``: None accepts the recipient,
  a reply line refuses it;
* ``handler.data(mail_from, rcpts, content) -> list``: one entry per
  accepted recipient, each a reply line or an asyncio future of one.
  ``content`` is the message as sent, CRLF line ends, dot-stuffing undone;
* ``handler.flush()`` (optional): called after each read of a connection
  has been taken apart, so that the messages of one read can be handled
  together.

``LMTPServer`` runs the protocol in an event loop on a thread of its own.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import socket
import threading
import weakref
from dataclasses import dataclass

from aiosmtpd.lmtp import LMTP

log = logging.getLogger("pit.lmtpserver")

# A text line's length with its CRLF: RFC 5321 4.5.3.1.6 says 1000; aiosmtpd
# (whose results the notary's mail had so far) takes 1001.
LINE_LIMIT = 1001
# A command line with its CRLF (RFC 5321 4.5.3.1.4: 512, more with parameters).
COMMAND_LIMIT = 1024
DATA_SIZE_LIMIT = 256 * 1024 * 1024
MAX_RECIPIENTS = 100            # RFC 5321 4.5.3.1.8: at least 100 must be taken
MAX_ERRORS = 20                 # unknown or malformed commands before 421
MAX_PENDING = 64                # messages awaiting their reply before reading pauses
TIMEOUT = 300.0                 # seconds of silence from a client that owes us input

_END = b"\r\n.\r\n"
_LONG_LINE = re.compile(rb"[^\n]{%d}" % LINE_LIMIT)
_BDAT = re.compile(r"([0-9]{1,18})(?: +(LAST))? *", re.IGNORECASE)


@dataclass(frozen=True)
class _AddressLimit:
    local_part_limit: int


@functools.lru_cache(maxsize=4096)
def parsed_address(arg: str, local_part_limit: int = 0) -> tuple:
    """aiosmtpd's parse of the address in a MAIL FROM or RCPT TO argument:
    (address, rest), address None when malformed, '' when missing.
    Remembered: a pit hears from the same few addresses again and again, and
    aiosmtpd parses each with the email package's header parser (docs/
    pit-book.md, The mail path: a third of the notary server's event loop
    when it ran aiosmtpd); tests/test_lmtp_group.py pins it to aiosmtpd's."""
    return LMTP._getaddr(_AddressLimit(local_part_limit), arg)


def unstuff(raw: bytes) -> bytes:
    """A message's data as sent after DATA, up to and with its last CRLF
    (the terminating ``.`` line not included), with the dot-stuffing undone:
    a line's leading dot is dropped (RFC 5321 4.5.2)."""
    if raw.startswith(b"."):
        raw = raw[1:]
    return raw.replace(b"\r\n.", b"\r\n")


def data_fault(raw: bytes, limit: int) -> str | None:
    """Why a message's data (as sent, CRLF line ends) is refused, or None."""
    if limit and len(raw) > limit:
        return "552 5.3.4 Error: too much mail data"
    if raw.count(b"\n") != raw.count(b"\r\n"):
        return "550 5.6.0 Error: bare LF in the message (lines end with CRLF, RFC 5321 2.3.8)"
    if _LONG_LINE.search(raw):
        return "500 5.5.6 Error: line too long (RFC 5321 4.5.3.1.6)"
    return None


class _Envelope:
    __slots__ = ("mail_from", "rcpts", "chunks", "size", "fault")

    def __init__(self):
        self.mail_from: str | None = None
        self.rcpts: list[str] = []
        self.chunks: list[bytes] = []       # BDAT chunks so far
        self.size = 0
        self.fault: str | None = None       # the reason the BDAT message is refused


class LMTPSession(asyncio.Protocol):
    """One client connection: commands and data in, replies out in order."""

    def __init__(self, handler, hostname: str, data_size_limit: int = DATA_SIZE_LIMIT,
                 timeout: float = TIMEOUT, max_recipients: int = MAX_RECIPIENTS):
        self.handler = handler
        self._handler_flush = getattr(handler, "flush", None)
        self.hostname = hostname
        self.limit = data_size_limit
        self.timeout = timeout
        self.max_recipients = max_recipients
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._mode = "command"      # command | skip-line | data | skip-data | chunk
        self._scan = 0              # in data: where the search for its end goes on
        self._skipped = 0           # in skip-data: bytes dropped so far
        self._chunk_left = 0        # in chunk: bytes of the BDAT chunk still to come
        self._chunk_size = 0
        self._chunk_last = False
        self._greeted = False
        self._env = _Envelope()
        self._errors = 0
        self._replies: collections.deque = collections.deque()   # str or future, in order
        self._pending = 0           # deliveries whose reply is not known yet
        self._closing = False       # QUIT or 421: close once the replies are out
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._active = 0.0          # the loop's time of the client's last sign of life

    # -- the connection ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self._reply(f"220 {self.hostname} LMTP pit notary ready")
        self._flush()
        self._arm()

    def connection_lost(self, exc) -> None:
        # A message not yet whole is dropped; those taken are committed and
        # their replies go nowhere (the client sends again, the notary knows it).
        self.transport = None
        self._buf.clear()
        self._env = _Envelope()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause_writing(self) -> None:      # the client does not read its replies
        self._write_paused = True
        self._pace()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._pace()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buf += data
        self._arm()
        try:
            self._consume()
        finally:
            if self._handler_flush is not None:
                self._handler_flush()
            self._flush()

    def eof_received(self):
        # The client sent all it will: answer what it sent, then close.
        self._closing = True
        self._flush()
        return True

    def _arm(self) -> None:
        """Time the client's silence from now.  One timer a connection: it
        is not moved at each read (a cancelled timer and a new one, each
        read, were a tenth of the event loop's CPU: docs/pit-book.md,
        Throughput over LMTP) but, when it fires early, set again for the
        time left."""
        loop = asyncio.get_running_loop()
        self._active = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(self._active + self.timeout, self._due)

    def _due(self) -> None:
        self._timer = None
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._active + self.timeout:
            self._timer = loop.call_at(self._active + self.timeout, self._due)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        if self.transport is None:
            return
        if self._closing:
            # Its replies never drained (a client that does not read): drop it.
            self.transport.abort()
            return
        if self._pending:                   # the client waits for us, not we for it
            self._arm()
            return
        self._reply(f"421 4.4.2 {self.hostname} Error: timeout exceeded, closing")
        self._close()

    def _close(self) -> None:
        self._closing = True
        self._buf.clear()
        self._arm()                         # a close that cannot drain is cut short
        self._flush()

    def _pace(self) -> None:
        """Read on only while the client's replies leave and few messages wait."""
        if self.transport is None or self._closing:
            return
        if self._write_paused or self._pending >= MAX_PENDING:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- replies, in order ------------------------------------------------------------
    def _reply(self, line: str) -> None:
        self._replies.append(line)

    def _reply_later(self, future) -> None:
        self._replies.append(future)
        self._pending += 1
        future.add_done_callback(self._answered)

    def _answered(self, future) -> None:
        self._pending -= 1
        self._flush()
        self._pace()

    def _flush(self) -> None:
        out = []
        replies = self._replies
        while replies:
            head = replies[0]
            if not isinstance(head, str):
                if not head.done():
                    break
                if head.cancelled() or head.exception() is not None:
                    head = "451 4.3.0 Error: delivery failed, try again later"
                else:
                    head = head.result()
            out.append(head)
            replies.popleft()
        if self.transport is None:
            return
        if out:
            self.transport.write(("\r\n".join(out) + "\r\n").encode("ascii", "replace"))
        if self._closing and not replies:
            self.transport.close()

    # -- input ------------------------------------------------------------------------
    def _consume(self) -> None:
        buf = self._buf
        while not self._closing:
            mode = self._mode
            if mode == "chunk":
                if not self._chunk():
                    return
                continue
            if not buf:
                return
            if mode == "command":
                end = buf.find(b"\n", 0, COMMAND_LIMIT)
                if end < 0:
                    if len(buf) < COMMAND_LIMIT:
                        return
                    self._mode = "skip-line"
                    continue
                line = bytes(buf[:end + 1])
                del buf[:end + 1]
                self._line(line)
            elif mode == "skip-line":
                end = buf.find(b"\n")
                if end < 0:
                    buf.clear()
                    return
                del buf[:end + 1]
                self._mode = "command"
                self._bad("500 5.5.2 Error: command line too long")
            elif mode == "data":
                if not self._data():
                    return
            elif not self._skip_data():
                return

    def _bad(self, reply: str) -> None:
        self._reply(reply)
        self._errors += 1
        if self._errors >= MAX_ERRORS:
            self._reply("421 4.7.0 Error: too many errors, closing")
            self._close()

    def _line(self, raw: bytes) -> None:
        if not raw.endswith(b"\r\n"):
            self._bad("500 5.5.2 Error: bare LF in a command (lines end with CRLF)")
            return
        try:
            line = raw[:-2].decode("ascii")
        except UnicodeDecodeError:
            self._bad("500 5.5.2 Error: bad syntax (not ASCII)")
            return
        verb, _, arg = line.partition(" ")
        verb, arg = verb.upper(), arg.strip()
        command = self._COMMANDS.get(verb)
        if command is None:
            if not verb or not verb.isalpha():
                self._bad("500 5.5.2 Error: bad syntax")
            else:
                self._bad(f'500 5.5.1 Error: command "{verb[:20]}" not recognized')
            return
        command(self, arg)

    def _lhlo(self, arg: str) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: LHLO hostname")
            return
        self._greeted = True
        self._env = _Envelope()
        lines = [self.hostname, "PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.limit:
            lines.append(f"SIZE {self.limit}")
        self._reply("\r\n".join(f"250-{x}" for x in lines) + "\r\n250 HELP")

    def _not_lmtp(self, arg: str) -> None:
        self._reply("500 5.5.1 Error: this is LMTP: LHLO, not HELO or EHLO")

    def _address(self, arg: str, prefix: str, syntax: str) -> tuple[str, str] | None:
        """The address and the rest of a MAIL FROM or RCPT TO argument, or
        None once the reason it is refused has been replied."""
        if arg[:len(prefix)].upper() != prefix:
            self._reply(syntax)
            return None
        address, rest = parsed_address(arg[len(prefix):].strip())
        if address is None:
            self._reply("553 5.1.3 Error: malformed address")
            return None
        if not address:
            self._reply(syntax)
            return None
        return address, rest

    def _mail(self, arg: str) -> None:
        syntax = "501 5.5.4 Syntax: MAIL FROM:<address> [SP <mail-parameters>]"
        if not self._greeted:
            self._reply("503 5.5.1 Error: send LHLO first")
            return
        if self._env.mail_from is not None:
            self._reply("503 5.5.1 Error: nested MAIL command")
            return
        parsed = self._address(arg, "FROM:", syntax)
        if parsed is None:
            return
        address, rest = parsed
        params = _params(rest)
        if params is None:
            self._reply(syntax)
            return
        if params.pop("BODY", "7BIT") not in ("7BIT", "8BITMIME"):
            self._reply("501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME")
            return
        size = params.pop("SIZE", None)
        if size is not None:
            if size is True or not size.isdigit():
                self._reply(syntax)
                return
            if self.limit and int(size) > self.limit:
                self._reply("552 5.3.4 Error: message size exceeds fixed maximum message size")
                return
        if params:
            self._reply("555 5.5.4 Error: MAIL FROM parameters not recognized or not implemented")
            return
        self._env.mail_from = address
        self._reply("250 2.1.0 OK")

    def _rcpt(self, arg: str) -> None:
        syntax = "501 5.5.4 Syntax: RCPT TO:<address>"
        env = self._env
        if env.mail_from is None:
            self._reply("503 5.5.1 Error: need MAIL command")
            return
        parsed = self._address(arg, "TO:", syntax)
        if parsed is None:
            return
        address, rest = parsed
        if rest.strip():
            self._reply("555 5.5.4 Error: RCPT TO parameters not recognized or not implemented")
            return
        if len(env.rcpts) >= self.max_recipients:
            self._reply("452 4.5.3 Error: too many recipients")
            return
        refused = self.handler.rcpt(address)
        if refused:
            self._reply(refused)
            return
        env.rcpts.append(address)
        self._reply("250 2.1.5 OK")

    def _data_command(self, arg: str) -> None:
        env = self._env
        if arg:
            self._reply("501 5.5.4 Syntax: DATA")
        elif env.mail_from is None:
            self._reply("503 5.5.1 Error: need MAIL command")
        elif not env.rcpts:
            self._reply("503 5.5.1 Error: need RCPT command")
        elif env.chunks or env.size:
            self._reply("503 5.5.1 Error: DATA after BDAT")
        else:
            self._reply("354 End data with <CR><LF>.<CR><LF>")
            self._mode, self._scan = "data", 0

    def _bdat(self, arg: str) -> None:
        found = _BDAT.fullmatch(arg)
        if found is None:
            # Where the chunk ends is unknown: what follows cannot be read.
            self._reply("501 5.5.4 Syntax: BDAT size [LAST]; closing")
            self._close()
            return
        self._mode, self._chunk_left = "chunk", int(found.group(1))
        self._chunk_size = self._chunk_left
        self._chunk_last = found.group(2) is not None

    def _rset(self, arg: str) -> None:
        if arg:
            self._reply("501 5.5.4 Syntax: RSET")
            return
        self._env = _Envelope()
        self._reply("250 2.0.0 OK")

    def _noop(self, arg: str) -> None:
        self._reply("250 2.0.0 OK")

    def _quit(self, arg: str) -> None:
        self._reply("221 2.0.0 Bye")
        self._close()

    def _not_implemented(self, arg: str) -> None:
        self._reply("502 5.5.1 Error: command not implemented")

    def _help(self, arg: str) -> None:
        self._reply("214 2.0.0 Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP")

    _COMMANDS = {"LHLO": _lhlo, "HELO": _not_lmtp, "EHLO": _not_lmtp, "MAIL": _mail,
                 "RCPT": _rcpt, "DATA": _data_command, "BDAT": _bdat, "RSET": _rset,
                 "NOOP": _noop, "QUIT": _quit, "HELP": _help, "VRFY": _not_implemented,
                 "EXPN": _not_implemented, "STARTTLS": _not_implemented,
                 "AUTH": _not_implemented}

    # -- message data -----------------------------------------------------------------
    def _data(self) -> bool:
        """Take the message once its end is in the buffer; False: wait for more."""
        buf = self._buf
        if self._scan == 0 and buf.startswith(b".\r\n"):
            raw_end, after = 0, 3
        else:
            found = buf.find(_END, self._scan)
            if found < 0:
                if self.limit and len(buf) > self.limit + 2:
                    # Too much: drop it as it comes, answer at its end.
                    self._mode, self._skipped = "skip-data", len(buf) - 4
                    del buf[:-4]
                    return False
                self._scan = max(0, len(buf) - 4)
                return False
            raw_end, after = found + 2, found + 5
        raw = bytes(buf[:raw_end])
        del buf[:after]
        self._mode = "command"
        fault = data_fault(raw, self.limit)
        self._deliver(unstuff(raw) if fault is None else b"", fault)
        return True

    def _skip_data(self) -> bool:
        buf = self._buf
        found = buf.find(_END)
        if found < 0:
            self._skipped += max(0, len(buf) - 4)
            del buf[:-4]
            return False
        del buf[:found + 5]
        self._mode = "command"
        self._deliver(b"", "552 5.3.4 Error: too much mail data")
        return True

    def _chunk(self) -> bool:
        """Take a BDAT chunk's bytes; False: wait for more."""
        buf, env = self._buf, self._env
        take = min(self._chunk_left, len(buf))
        if take:
            if env.fault is None and self.limit and env.size + take > self.limit:
                env.fault, env.chunks = "552 5.3.4 Error: too much mail data", []
            if env.fault is None:
                env.chunks.append(bytes(buf[:take]))
            env.size += take
            del buf[:take]
            self._chunk_left -= take
        if self._chunk_left:
            return False
        self._mode = "command"
        if env.mail_from is None or not env.rcpts:
            # The chunk is read either way (RFC 3030 3), then refused.
            self._reply("503 5.5.1 Error: need MAIL and RCPT before BDAT")
            self._env = _Envelope()
            return True
        if not self._chunk_last:
            self._reply(f"250 2.0.0 {self._chunk_size} octets received")
            return True
        raw = b"".join(env.chunks)
        fault = env.fault or data_fault(raw, self.limit)
        self._deliver(raw if fault is None else b"", fault)
        return True

    def _deliver(self, content: bytes, fault: str | None) -> None:
        """One reply per accepted recipient (RFC 2033 4.2); a new envelope."""
        env, self._env = self._env, _Envelope()
        if fault is not None:
            for _ in env.rcpts:
                self._reply(fault)
            return
        try:
            replies = self.handler.data(env.mail_from, list(env.rcpts), content)
        except Exception:
            log.exception("LMTP handler failed")
            replies = ["451 4.3.0 Error: delivery failed, try again later"] * len(env.rcpts)
        for reply in replies:
            if isinstance(reply, str):
                self._reply(reply)
            else:
                self._reply_later(reply)
        self._pace()


def _params(rest: str) -> dict | None:
    """MAIL FROM parameters (RFC 1869 syntax, as aiosmtpd reads them), or None."""
    out: dict = {}
    for param in rest.upper().split():
        name, eq, value = param.partition("=")
        if not name.isalnum() or eq and not value:
            return None
        out[name] = value if eq else True
    return out


class LMTPServer:
    """``LMTPSession`` on ``host:port``, in an event loop on its own thread.

    ``start()`` returns once the socket listens (or raises why not);
    ``stop()`` closes the socket and every connection and ends the thread."""

    def __init__(self, handler, host: str, port: int, hostname: str | None = None,
                 data_size_limit: int = DATA_SIZE_LIMIT, timeout: float = TIMEOUT,
                 max_recipients: int = MAX_RECIPIENTS):
        self.handler = handler
        self.host, self.port = host, port
        self.hostname = hostname
        self.session = functools.partial(
            LMTPSession, handler, data_size_limit=data_size_limit, timeout=timeout,
            max_recipients=max_recipients)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._server = None
        self._sessions: weakref.WeakSet = weakref.WeakSet()

    def start(self) -> "LMTPServer":
        hostname = self.hostname or socket.getfqdn()
        ready = threading.Event()
        failed: list = []

        def run() -> None:
            loop = self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)

            def make():
                session = self.session(hostname)
                self._sessions.add(session)
                return session

            try:
                self._server = loop.run_until_complete(
                    loop.create_server(make, self.host, self.port))
            except BaseException as error:
                failed.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self.thread = threading.Thread(target=run, name=f"lmtp-{self.port}", daemon=True)
        self.thread.start()
        ready.wait()
        if failed:
            self.thread.join()
            self.thread = None
            raise failed[0]
        return self

    def stop(self) -> None:
        if self.thread is None:
            return
        loop = self.loop

        def close() -> None:
            self._server.close()
            for session in list(self._sessions):
                if session.transport is not None:
                    session.transport.abort()
            self._sessions.clear()
            loop.stop()

        loop.call_soon_threadsafe(close)
        self.thread.join()
        self.thread = None
