"""Mail plumbing for a pit on Mailman: an SMTP sink, an LMTP client, the
notary's LMTP server.

Three small pieces, each usable on its own:

* ``MailSink`` -- an aiosmtpd SMTP server on loopback that stores every
  delivered message per recipient, in memory and as an mboxrd file
  ``<mail_dir>/<recipient>.mbox``, and calls a callback registered for a
  recipient.  It stands in for the MTA that Mailman hands outgoing mail to
  (tests, development, benchmarks).
* ``lmtp_send`` -- an LMTP client that reports one status per recipient
  (``smtplib.LMTP`` reads only one reply after DATA, which is wrong for
  LMTP as soon as there are two recipients).
* ``NotaryLMTPServer`` -- the delivery program for a pit's posting address.
  The MTA hands it every message sent to the pit; it calls the pit's notary
  (``notarize(msg_bytes, envelope_sender) -> list[bytes]``) and injects each
  message the notary returns into Mailman's LMTP runner with the pit's
  approval header, so that only notarized mail is posted.
  docs/mailman.md explains why the notary sits here and not behind
  Mailman's hold queue.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import os
import socket
import re
import smtplib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

try:
    from pit import mbox as _pit_mbox
except ImportError:  # pit.mbox is optional here: the sink is test plumbing
    _pit_mbox = None

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from pit import trace
from pit.lmtpserver import DATA_SIZE_LIMIT, MAX_RECIPIENTS, TIMEOUT, LMTPServer

__all__ = [
    "MailError", "NotForTheList", "MailSink", "LMTPClient", "lmtp_send", "mboxrd_entry", "PitRoute",
    "NotaryLMTPServer", "Notarize", "Refusal", "APPROVE_HEADER", "approved", "free_port",
]

log = logging.getLogger("pit.mailhost")

# A notary: original message bytes and envelope sender in, messages to post out.
Notarize = Callable[[bytes, str], list]

# The pit's list accepts a post whose header of this name holds the pit's
# approval secret (a header match, pit.mailman); Mailman's cleanse handler
# strips the header before delivery.
APPROVE_HEADER = b"Approved"

# The mbox "From " line date is fixed: the sink must not depend on the clock
# (pit's rule: same input bytes, same output bytes).  The notary's time is in
# the X-Pit-Time header, which is the one that counts.
_FROM_LINE_DATE = "Thu Jan  1 00:00:00 1970"
_MBOXRD_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_SAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9@._+-]")
# A record's number: the first line of the stamp the notary puts first.
_STAMP_SEQ = re.compile(rb"(?m)^X-Pit-Seq: ([0-9]+)$")
_LEADING_DOT = re.compile(rb"(?m)^\.")
# In a pit's spool directory: the number of the last record the list took.
POSTED_FILE = "posted"


class MailError(RuntimeError):
    """A mail transfer that failed, with the server's own words."""


class NotForTheList(MailError):
    """A notarized record the list will never take: larger than the pit's
    ``max_list_message_size``, or refused by Mailman for what it is (one of
    _REFUSED_FOR_GOOD).  Waiting would not help, so it is left out of the
    list (it is in the archive) and the records after it go on."""


# Mailman's LMTP runner's permanent refusals of one message: 501 "Message has
# defects" (Python's email parser found some: a header line with no colon, a
# "From " line among the headers, a multipart without its boundary, which
# the notary may archive, signed), 552 too large (aiosmtpd's 32 MiB), 554.
# A 550 is about the list (unknown, or a Mailman error): that is waited out.
_REFUSED_FOR_GOOD = (501, 552, 554)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _LMTPController(Controller):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


def _lf(data: bytes) -> bytes:
    """CRLF (and lone CR) line endings to LF: pit stores mail with LF."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def mboxrd_entry(msg_bytes: bytes, envelope_sender: str) -> bytes:
    """One mboxrd entry: ``From `` line, quoted body, one blank line after.

    Deterministic (the epoch as the ``From `` line date).  Written by
    pit.mbox when it is there (the one mbox writer of the project), by a
    minimal equivalent otherwise.  O(len(msg_bytes)).
    """
    data = _lf(msg_bytes)
    if not data.endswith(b"\n"):
        data += b"\n"
    if _pit_mbox is not None:
        return _pit_mbox.format_message(data, envelope_sender.split()[0] if envelope_sender.strip() else "", None)
    body = _MBOXRD_QUOTE.sub(rb">\1", _lf(msg_bytes))
    if not body.endswith(b"\n"):
        body += b"\n"
    sender = envelope_sender or "MAILER-DAEMON"
    return f"From {sender} {_FROM_LINE_DATE}\n".encode("ascii", "replace") + body + b"\n"


class _SinkHandler:
    def __init__(self, sink: "MailSink"):
        self._sink = sink

    async def handle_DATA(self, server, session, envelope):
        self._sink._deliver(envelope.mail_from or "", list(envelope.rcpt_tos),
                            envelope.original_content or b"")
        return "250 OK delivered"


class MailSink:
    """An SMTP server on loopback that keeps every message it is given.

    ``mail_dir/<recipient>.mbox`` gets one mboxrd entry per delivered
    message and recipient; ``messages(rcpt)`` returns the raw bytes (LF line
    endings) in arrival order.  ``on_delivery(rcpt, callback)`` registers
    ``callback(msg_bytes, envelope_sender)`` to be called for each message
    to ``rcpt`` (in the server's thread; exceptions are logged, the message
    is still stored).  Use as a context manager or call start()/stop().
    """

    def __init__(self, mail_dir: Path | str, host: str = "127.0.0.1", port: int = 0):
        self.mail_dir = Path(mail_dir)
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._port = port
        self._lock = threading.Condition()
        self._messages: dict[str, list[bytes]] = {}
        self._callbacks: dict[str, list[Callable[[bytes, str], None]]] = {}
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> "MailSink":
        self._port = self._port or free_port(self.host)
        self._controller = Controller(_SinkHandler(self), hostname=self.host,
                                      port=self._port, ready_timeout=10,
                                      data_size_limit=0)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "MailSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def mbox_path(self, recipient: str) -> Path:
        """Where the messages for ``recipient`` are appended."""
        return self.mail_dir / (_SAFE_FILE_NAME.sub("_", recipient.lower()) + ".mbox")

    def on_delivery(self, recipient: str, callback: Callable[[bytes, str], None]) -> None:
        """Call ``callback(msg_bytes, envelope_sender)`` for each message to ``recipient``."""
        with self._lock:
            self._callbacks.setdefault(recipient.lower(), []).append(callback)

    def messages(self, recipient: str) -> list[bytes]:
        """Messages delivered to ``recipient`` so far, oldest first."""
        with self._lock:
            return list(self._messages.get(recipient.lower(), []))

    def count(self, recipient: str) -> int:
        with self._lock:
            return len(self._messages.get(recipient.lower(), []))

    def recipients(self) -> list[str]:
        """Every recipient that got at least one message, sorted."""
        with self._lock:
            return sorted(self._messages)

    def wait_for(self, recipient: str, n: int, timeout: float) -> list[bytes]:
        """Block until ``recipient`` has ``n`` messages; raise MailError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        key = recipient.lower()
        with self._lock:
            while len(self._messages.get(key, [])) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    have = len(self._messages.get(key, []))
                    raise MailError(f"{recipient}: {have} of {n} messages after {timeout} s")
                self._lock.wait(left)
            return list(self._messages[key])

    def _deliver(self, envelope_sender: str, rcpts: list[str], content: bytes) -> None:
        data = _lf(content)
        entry = mboxrd_entry(data, envelope_sender)
        for rcpt in rcpts:
            key = rcpt.lower()
            with self._lock:
                with open(self.mbox_path(key), "ab") as mbox:
                    mbox.write(entry)
                self._messages.setdefault(key, []).append(data)
                callbacks = list(self._callbacks.get(key, []))
                self._lock.notify_all()
            for callback in callbacks:
                try:
                    callback(data, envelope_sender)
                except Exception:  # a broken consumer must not lose the mail
                    log.exception("delivery callback for %s failed", rcpt)


class LMTPClient:
    """An LMTP connection kept open across messages (one LHLO, then RSET-free
    transactions), reopened once if the server dropped it.  Not thread-safe:
    one client per thread, or a lock around ``send``.

    ``timeout`` bounds the connection and each command; the replies to a
    message (after its final dot, when the server does its work: the
    notary verifies, stamps and archives) are awaited up to
    ``reply_timeout``, ten minutes as RFC 5321 (4.5.3.2.6) and Postfix's
    ``lmtp_data_done_timeout`` have it.  A client that gave up sooner would
    not know whether the message was delivered, and its caller would send
    it again (a filter run did, and the notary refused the repeat)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0,
                 reply_timeout: float = 600.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.reply_timeout = reply_timeout
        self._lmtp: smtplib.LMTP | None = None
        self._dot_sent = False

    def _connect(self) -> smtplib.LMTP:
        lmtp = smtplib.LMTP(self.host, self.port, timeout=self.timeout)
        code, text = lmtp.ehlo()  # smtplib sends LHLO for LMTP
        if code != 250:
            lmtp.close()
            raise MailError(f"LMTP {self.host}:{self.port} LHLO refused: {code} {text!r}")
        return lmtp

    def close(self) -> None:
        if self._lmtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._lmtp.quit()
            with contextlib.suppress(OSError):
                self._lmtp.close()
            self._lmtp = None

    def __enter__(self) -> "LMTPClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, msg_bytes: bytes, mail_from: str, rcpts: Iterable[str]) -> dict[str, tuple[int, str]]:
        """Send one message; return ``{rcpt: (code, text)}`` for every recipient.

        A refused RCPT gets its RCPT reply; an accepted one gets its own reply
        after DATA (LMTP gives one per accepted recipient).  Raises MailError
        if the server cannot be reached or refuses the transaction as a whole.
        O(len(msg_bytes)) plus one round trip per recipient.
        """
        rcpts = list(rcpts)
        if not rcpts:
            raise MailError("an LMTP transaction needs at least one recipient")
        for attempt in (1, 2):
            fresh = self._lmtp is None
            self._dot_sent = False
            try:
                if self._lmtp is None:
                    self._lmtp = self._connect()
                return self._transaction(self._lmtp, msg_bytes, mail_from, rcpts)
            except (OSError, smtplib.SMTPServerDisconnected) as error:
                self.close()
                if self._dot_sent:
                    # The message went out whole: the server may have
                    # delivered it.  Sending it again could deliver it twice.
                    raise MailError(f"LMTP {self.host}:{self.port}: no reply to the message, "
                                    f"which may have been delivered: {error}") from error
                # A kept connection may have been closed by the server while
                # idle: retry once on a new one.  A new one that fails is final.
                if fresh or attempt == 2:
                    raise MailError(f"LMTP {self.host}:{self.port}: {error}") from error
            except smtplib.SMTPException as error:
                self.close()
                raise MailError(f"LMTP {self.host}:{self.port}: {error}") from error
            except MailError:
                self.close()
                raise
        raise AssertionError("unreachable")

    def send_many(self, messages: list[bytes], mail_from: str, rcpt: str
                  ) -> list[tuple[int, str]]:
        """Send messages to one recipient, in order; return each one's
        ``(code, text)``.  When the server offers PIPELINING and CHUNKING
        (pit.lmtpserver does), they go out in one write, each as MAIL, RCPT
        and BDAT LAST (RFC 3030: no 354 to wait for), so the server has them
        all at once (the notary: in one group commit, judged in this order);
        otherwise one after another, as ``send``.  A message whose bytes
        went out is never sent again: with no reply, MailError."""
        messages = list(messages)
        if self._lmtp is not None and self._peer_closed():
            self.close()                    # closed while idle: nothing was sent on it
        if self._lmtp is None:
            try:
                self._lmtp = self._connect()
            except (OSError, smtplib.SMTPException) as error:
                self.close()
                raise MailError(f"LMTP {self.host}:{self.port}: {error}") from error
        lmtp = self._lmtp
        if len(messages) < 2 or not (lmtp.has_extn("pipelining") and lmtp.has_extn("chunking")):
            replies = []
            for msg in messages:            # up to the first refusal
                replies.append(self.send(msg, mail_from, [rcpt])[rcpt])
                if replies[-1][0] != 250:
                    break
            return replies
        out = []
        for msg in messages:
            data = _lf(msg).replace(b"\n", b"\r\n")
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            out.append(f"MAIL FROM:{_quoted(mail_from)}\r\nRCPT TO:{_quoted(rcpt)}\r\n"
                       f"BDAT {len(data)} LAST\r\n".encode("ascii") + data)
        replies = []
        try:
            lmtp.send(b"".join(out))
            lmtp.sock.settimeout(self.reply_timeout)
            for _ in messages:
                steps = [lmtp.getreply() for _ in range(3)]     # MAIL, RCPT, BDAT
                code, text = next((s for s in steps if s[0] not in (250, 251)), steps[2])
                replies.append((code, text.decode("utf-8", "replace")))
            lmtp.sock.settimeout(self.timeout)
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise MailError(f"LMTP {self.host}:{self.port}: no reply to {len(messages)} "
                            f"pipelined messages, which may have been delivered "
                            f"({len(replies)} answered): {error}") from error
        return replies

    def _peer_closed(self) -> bool:
        """Whether the kept connection's server hung up (or spoke unasked,
        as a 421 before closing) while it was idle."""
        sock = self._lmtp.sock
        try:
            sock.setblocking(False)
            try:
                sock.recv(1, socket.MSG_PEEK)
                return True
            except BlockingIOError:
                return False
            finally:
                sock.settimeout(self.timeout)
        except OSError:
            return True

    def _transaction(self, lmtp: smtplib.LMTP, msg_bytes: bytes, mail_from: str,
                     rcpts: list[str]) -> dict[str, tuple[int, str]]:
        where = f"LMTP {self.host}:{self.port}"
        status: dict[str, tuple[int, str]] = {}
        pipelining = lmtp.has_extn("pipelining")
        if pipelining:
            # MAIL, RCPT and DATA in one write, as an MTA does (RFC 2920).
            lmtp.send("".join([f"mail FROM:{_quoted(mail_from)}\r\n"]
                              + [f"rcpt TO:{_quoted(rcpt)}\r\n" for rcpt in rcpts]
                              + ["DATA\r\n"]))
            code, text = lmtp.getreply()
        else:
            code, text = _command(lmtp, "mail", "FROM:", mail_from)
        if code != 250:
            raise MailError(f"{where} MAIL FROM:<{mail_from}> refused: {code} {text!r}")
        accepted = []
        for rcpt in rcpts:
            code, text = lmtp.getreply() if pipelining else _command(lmtp, "rcpt", "TO:", rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                status[rcpt] = (code, text.decode("utf-8", "replace"))
        code, text = lmtp.getreply() if pipelining else (None, b"")
        if not accepted:
            if code == 354:
                raise MailError(f"{where} DATA accepted with no recipient: {code} {text!r}")
            lmtp.rset()
            return status
        if not pipelining:
            code, text = lmtp.docmd("DATA")
        if code != 354:
            raise MailError(f"{where} DATA refused: {code} {text!r}")
        data = _lf(msg_bytes).replace(b"\n", b"\r\n")
        data = _LEADING_DOT.sub(b"..", data)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        lmtp.send(data + b".\r\n")
        self._dot_sent = True
        lmtp.sock.settimeout(self.reply_timeout)
        for rcpt in accepted:
            code, text = lmtp.getreply()
            status[rcpt] = (code, text.decode("utf-8", "replace"))
        lmtp.sock.settimeout(self.timeout)
        return status


# A bare address (no display name, comment, quotes or brackets): smtplib's
# quoteaddr makes it <address>, after a parse that cost the notary's
# injector a fifth of its CPU (docs/pit-book.md, The mail path).
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\\\",;:@]+@[^\s<>()\[\]\\\",;:@]+")


def _quoted(address: str) -> str:
    return f"<{address}>" if _BARE_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


def _command(lmtp: smtplib.LMTP, verb: str, keyword: str, address: str) -> tuple[int, bytes]:
    """``MAIL FROM:`` or ``RCPT TO:`` *address*, as smtplib's mail() and
    rcpt() send it (tests/test_lmtp_client.py pins the bytes)."""
    lmtp.putcmd(verb, keyword + _quoted(address))
    return lmtp.getreply()


def lmtp_send(host: str, port: int, msg_bytes: bytes, mail_from: str,
              rcpts: Iterable[str], timeout: float = 30.0) -> dict[str, tuple[int, str]]:
    """Send one message on a new LMTP connection; see LMTPClient.send."""
    with LMTPClient(host, port, timeout) as client:
        return client.send(msg_bytes, mail_from, rcpts)


@dataclass(frozen=True)
class PitRoute:
    """Where the notary server sends a pit's mail.

    ``list_address``: the Mailman list (the pit's posting address);
    ``notary_address``: the envelope sender of injected messages;
    ``notarize``: the pit's notary; ``approval_secret``: the secret the
    list's header match accepts in an ``Approved:`` header (pit.mailman),
    the one way onto the list; ``spool_dir``: where its notarized messages
    wait while Mailman is unreachable (each pit its own, in its own
    directory, when one server serves several); ``max_list_size``: a record
    larger than this is archived but not posted (``NotForTheList``).
    """
    list_address: str
    notary_address: str
    notarize: Notarize
    approval_secret: str
    spool_dir: Path | None = None     # this pit's spool; default <server spool>/<list address>
    max_list_size: int = 0            # bytes a record may have to be posted (0: no limit of ours)


def approved(msg_bytes: bytes, secret: str) -> bytes:
    """``msg_bytes`` with an ``Approved: <secret>`` header first.  Mailman removes it again."""
    if "\n" in secret or "\r" in secret:
        raise MailError("the approval secret must be one line")
    return APPROVE_HEADER + b": " + secret.encode("utf-8") + b"\n" + _lf(msg_bytes)


class _NotaryHandler:
    """The notary server's LMTP handler (pit.lmtpserver): a pit's address is
    a recipient; each recipient's delivery joins its pit's next group
    (committed by the pit's own thread, off the event loop, so other
    connections and this one's next messages are still read); its reply
    comes when its records are on disk."""

    def __init__(self, server: "NotaryLMTPServer"):
        self._server = server
        self._held: list[_Delivery] = []
        self._answers: collections.deque = collections.deque()   # (waiter, reply), any thread
        self._waking = False

    def rcpt(self, address: str) -> str | None:
        if address.lower() not in self._server.routes:
            return f"550 5.1.1 <{address}>: no pit here"
        return None

    def data(self, mail_from: str, rcpts: list[str], content: bytes) -> list:
        trace.mark("lmtp.data", bytes=len(content))
        loop = asyncio.get_running_loop()
        waiters = []
        for rcpt in rcpts:
            item = _Delivery(rcpt, content, mail_from)
            waiters.append(loop.create_future())
            item.reply.add_done_callback(functools.partial(self._answered, loop, waiters[-1]))
            self._held.append(item)
        return waiters

    def _answered(self, loop, waiter, reply) -> None:
        """A delivery's reply is known (in the committer's thread): hand it
        to the event loop, waking it once for all the replies of a group
        rather than once each."""
        self._answers.append((waiter, reply))
        if not self._waking:
            self._waking = True
            with contextlib.suppress(RuntimeError):     # the server stopped meanwhile
                loop.call_soon_threadsafe(self._take_answers)

    def _take_answers(self) -> None:
        self._waking = False
        while self._answers:
            waiter, reply = self._answers.popleft()
            if not waiter.done():
                error = reply.exception()
                if error is None:
                    waiter.set_result(reply.result())
                else:
                    waiter.set_exception(error)

    def flush(self) -> None:
        """Queue the deliveries of what a connection's read held, together:
        pipelined messages (a filter's report and its checkpoint) join the
        same group when the committer is free."""
        if self._held:
            held, self._held = self._held, []
            self._server.submit_all(held)


class Refusal(list):
    """What a route's ``notarize`` returns for a message it refused (and
    recorded, and told the sender of): nothing to post, and the reason,
    which the delivery's reply names."""

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason


class _Delivery:
    """One message for one pit, waiting in the pit's queue for its group."""

    __slots__ = ("rcpt", "content", "sender", "reply", "ticket")

    def __init__(self, rcpt: str, content: bytes, sender: str, ticket=None):
        self.rcpt, self.content, self.sender = rcpt, content, sender
        self.reply: concurrent.futures.Future = concurrent.futures.Future()
        self.ticket = ticket           # the route's prejudge of the content, or None


class _Queue:
    """Work waiting for one of a pit's two threads (committer, injector)."""

    def __init__(self, limit: int | None = None):
        self.waiting: list = []
        self.limit = limit              # put() waits while this many items wait
        self.ready = threading.Condition()
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.idle = False               # the thread waits for work: what comes is taken at once

    def put(self, items: list) -> bool:
        """Queue *items* for the thread (waiting while ``limit`` items wait
        already); False when it is not running."""
        with self.ready:
            while (self.limit is not None and len(self.waiting) >= self.limit
                   and self.thread is not None and not self.stopping):
                self.ready.wait()
            if self.thread is None or self.stopping:
                return False
            self.waiting += items
            self.ready.notify_all()
            return True

    def take(self, most: int) -> list:
        """Up to *most* waiting items, waiting for one; [] once stopped and empty."""
        with self.ready:
            while not self.waiting and not self.stopping:
                self.idle = True
                self.ready.wait()
            self.idle = False
            taken, self.waiting = self.waiting[:most], self.waiting[most:]
            self.ready.notify_all()         # room for a put() that waits
            return taken

    def start(self, target, name: str) -> None:
        self.stopping = False
        self.thread = threading.Thread(target=target, args=(self,), name=name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Let the thread finish what is queued, then end it."""
        with self.ready:
            self.stopping = True
            self.ready.notify_all()
        if self.thread is not None:
            self.thread.join()
            self.thread = None


def _answer(item: _Delivery, reply: str) -> None:
    """Give a delivery its reply, unless nobody waits for it any more (its
    client hung up: the MTA then sends it again, and the notary knows it)."""
    try:
        item.reply.set_result(reply)
    except concurrent.futures.InvalidStateError:
        pass


def _durable_reply(rcpt: str, result) -> str:
    """The reply for a delivery whose records (or refusal) are on disk:
    *result* is its records, a Refusal, or the exception that kept it off disk."""
    if isinstance(result, BaseException):
        return (f"451 4.3.0 <{rcpt}>: notary failed, try again later "
                f"({type(result).__name__})")
    if isinstance(result, Refusal):
        reason = " ".join(result.reason.split())[:200]
        return f"250 2.0.0 <{rcpt}>: refused and recorded ({reason})"
    return f"250 2.0.0 <{rcpt}>: notarized"


def _answer_failed(group: list[_Delivery], error: BaseException) -> None:
    for item in group:
        if not item.reply.done():
            _answer(item, f"451 4.3.0 <{item.rcpt}>: notary failed, try again "
                          f"later ({type(error).__name__})")


def default_judges() -> int:
    """Judge processes a notary server starts unless told: two when the
    machine has cores to spare beside the server's and its clients', else none."""
    return 2 if (os.cpu_count() or 1) > 2 else 0


class NotaryLMTPServer:
    """The LMTP delivery program for one or more pits' posting addresses.

    ``routes`` maps each pit's public address (lower case) to its PitRoute;
    ``mailman_lmtp`` is Mailman's LMTP runner ``(host, port)``.  Each
    message is handed to the route's ``notarize`` once per pit recipient;
    every message it returns is injected into Mailman, in order, with the
    notary as envelope sender.

    Group commit: deliveries to one pit that arrive while the pit's
    committer is busy wait, and the committer then takes them all (up to
    ``max_group``) as one group: when the route's ``notarize`` has a
    ``group`` method (``pit.daemon.NotaryService``), the whole group is
    judged, stamped and stored with one durable append; otherwise the
    messages are notarized one by one.  The pit's injector thread posts
    each group's records to the list, in the pit's order, while the
    committer notarizes the next group.  A message's reply is sent only
    after its group is on disk, never before; each message gets its own
    reply, whatever became of the others in its group.  For a pit with a
    spool (``spool_dir``, or the route's; ``pit mailman serve`` gives every
    pit one) the reply goes as soon as the group is on disk: injection
    follows in order, and what the list cannot take waits in the spool.
    Without a spool the reply waits for the injection.  The injector may
    fall ``inject_backlog`` deliveries behind; then the committer waits for
    it, and so the deliveries (Mailman's pace holds the MTA back, not this
    server's memory).  The LMTP reply for that recipient is:

    * 250 when the message is notarized (an empty list means the notary
      refused the message and told the sender: also 250);
    * 451 (try again later) when the notary raised, so the MTA keeps the
      message and retries: nothing is lost;
    * when injection fails, with a spool: the notarized messages wait there
      and ``flush_spool()`` injects them (the notary has already numbered
      them; they must not be notarized twice); without a spool, 451.

    A pit with a spool also keeps, in its spool directory, the number of the
    last record the list took (``posted``).  A server stopped between a
    250 and the list's taking the records (killed, the machine lost) posts,
    at its next start, every record its pit's archive holds after that one
    (:meth:`_catch_up`): the list may get a record twice after a crash,
    never lose one.

    Judges: a route whose ``notarize`` can ``open_judges(n)`` (the notary
    service) gets ``judges`` processes while the server runs, and each
    delivery's bytes go to one as they arrive (``prejudge``): the
    stateless part of its judgement (signature, parse) is then done off
    this process's interpreter lock by the time its group is committed
    (moderator/judges.py).  By default (None) two on a machine with more
    than two cores, none otherwise: on two cores they cost more CPU than
    they take off the committer (docs/pit-book.md, "Throughput over LMTP").
    """

    def __init__(self, routes: Mapping[str, PitRoute], mailman_lmtp: tuple[str, int],
                 host: str = "127.0.0.1", port: int = 0,
                 spool_dir: Path | str | None = None, max_group: int = 500,
                 inject_backlog: int = 2000, data_size_limit: int = DATA_SIZE_LIMIT,
                 timeout: float = TIMEOUT, max_recipients: int = MAX_RECIPIENTS,
                 judges: int | None = None):
        self.routes = {address.lower(): route for address, route in routes.items()}
        self.mailman_lmtp = mailman_lmtp
        self.host = host
        self._port = port
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._spool_lock = threading.Lock()
        # One lock per pit: the notary numbers messages in the order it sees
        # them, so they must reach the list in that order too; and one kept
        # connection to Mailman per pit, used under that lock.
        self._pit_locks = {address: threading.Lock() for address in self.routes}
        self._clients: dict[str, LMTPClient] = {}
        self._controller: LMTPServer | None = None
        self.data_size_limit, self.timeout = data_size_limit, timeout
        self.max_recipients = max_recipients
        self.max_group = max_group
        # Per pit: deliveries waiting for their group, and notarized groups
        # waiting for injection (the injection lock keeps the spool and the
        # kept connection to one thread at a time).
        self._queues = {address: _Queue() for address in self.routes}
        # at most inject_backlog deliveries wait for the list: past that the
        # committer waits, and so the MTA (a slow or stopped Mailman must not
        # grow this server's memory without end)
        self._injecting = {address: _Queue(inject_backlog) for address in self.routes}
        self._inject_locks = {address: threading.Lock() for address in self.routes}
        self._last_injected: dict[str, int] = {}   # list address -> the last record it took
        self._spool_dirs: dict[str, tuple] = {}     # list address -> (route, its spool or None)
        self._spool_empty: set[str] = set()         # pits whose spool a listing found empty since
        self.judges = default_judges() if judges is None else judges

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> "NotaryLMTPServer":
        self._port = self._port or free_port(self.host)
        for address in sorted(self.routes):
            opener = getattr(self.routes[address].notarize, "open_judges", None)
            if opener is not None and self.judges:
                opener(self.judges)
            self._injecting[address].start(
                lambda q, a=address: self._injector(a, q), f"inject-{address}")
            self._catch_up(address)
            self._queues[address].start(
                lambda q, a=address: self._committer(a, q), f"commit-{address}")
        self._controller = LMTPServer(
            _NotaryHandler(self), self.host, self._port,
            data_size_limit=self.data_size_limit, timeout=self.timeout,
            max_recipients=self.max_recipients).start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        for address in sorted(self.routes):     # what is queued is still committed
            self._queues[address].stop()
            self._injecting[address].stop()
            closer = getattr(self.routes[address].notarize, "close_judges", None)
            if closer is not None:
                closer()
        for _, client in sorted(self._clients.items()):
            client.close()
        self._clients.clear()

    def __enter__(self) -> "NotaryLMTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def deliver(self, rcpt: str, msg_bytes: bytes, envelope_sender: str) -> str:
        """Notarize one message for one pit and inject the result; return the
        LMTP reply line once its records are on disk (see :meth:`submit`)."""
        return self.submit(rcpt, msg_bytes, envelope_sender).result()

    def submit(self, rcpt: str, msg_bytes: bytes, envelope_sender: str
               ) -> concurrent.futures.Future:
        """Queue one message for pit ``rcpt``'s next group; the future's
        result is its LMTP reply line.  Groups keep arrival order.  With the
        server not started, the message is a group of its own, now."""
        item = _Delivery(rcpt, msg_bytes, envelope_sender)
        self.submit_all([item])
        return item.reply

    def submit_all(self, items: list[_Delivery]) -> None:
        """Queue deliveries, in order, each pit's together."""
        by_pit: dict[str, list[_Delivery]] = {}
        for item in items:
            by_pit.setdefault(item.rcpt.lower(), []).append(item)
        for address, group in by_pit.items():
            queue = self._queues[address]
            prejudge = getattr(self.routes[address].notarize, "prejudge", None)
            if self.judges and prejudge is not None and not queue.idle:
                # The committer is busy: these wait for the group after, and
                # a judge process can do the stateless part of their
                # judgement meanwhile (an idle committer takes them now:
                # no time to gain).
                for item in group:
                    item.content = _lf(item.content)      # as the notary judges it
                    item.ticket = prejudge(item.content)
            if not queue.put(group):
                self._commit(address, group)

    def _committer(self, address: str, q: _Queue) -> None:
        while group := q.take(self.max_group):
            self._commit(address, group)

    def _commit(self, address: str, group: list[_Delivery]) -> None:
        """Notarize one group (pit lock held) and hand it to the injector;
        a delivery the notary could not take is answered 451 there."""
        trace.mark("group.take", n=len(group))
        route = self.routes[address]
        try:
            with self._pit_locks[address]:
                results = self._notarize_group(route, group)
                if self._spool_of(route) is not None:
                    # On disk now, and the list cannot lose them: a failed
                    # injection spools them.  So the reply goes now, not
                    # after Mailman took them.
                    for item, result in zip(group, results):
                        reply = _durable_reply(item.rcpt, result)
                        _answer(item, reply)
                        trace.mark("lmtp.reply", code=reply[:3])
                self._inject_later(address, list(zip(group, results)))
        except BaseException as error:
            _answer_failed(group, error)
            if not isinstance(error, Exception):
                raise
            log.exception("delivery group for %s failed", address)

    def _inject_later(self, address: str, done: list) -> None:
        """Queue ``(delivery, records or exception)`` pairs for injection, in
        order (pit lock held); injected now when the server is not running."""
        if not self._injecting[address].put(done):
            self._inject(address, done)

    def _injector(self, address: str, q: _Queue) -> None:
        while done := q.take(self.max_group):
            self._inject(address, done)

    def _inject(self, address: str, done: list) -> None:
        """Inject each delivery's records in order and answer it: never a
        reply before its records are on disk, never a delivery left without one."""
        route = self.routes[address]
        try:
            with self._inject_locks[address]:
                try:
                    for item, result in done:
                        if isinstance(result, BaseException):
                            reply = _durable_reply(item.rcpt, result)
                        else:
                            reply = self._inject_all(item.rcpt, route, result)
                        if not item.reply.done():
                            _answer(item, reply)
                            trace.mark("lmtp.reply", code=reply[:3])
                finally:
                    self._note_injected(route)
        except BaseException as error:
            _answer_failed([item for item, _ in done], error)
            if not isinstance(error, Exception):
                raise
            log.exception("injecting into %s failed", route.list_address)

    def _catch_up(self, address: str) -> None:
        """Queue for the list what the archive holds after the last record
        the list took (the spool's ``posted`` file): a server stopped after
        a delivery's 250 and before Mailman took its records (killed, or the
        machine lost) posts them at its next start.  For a route with a
        spool whose ``notarize`` can read its archive back (``NotaryService``:
        ``last_seq()``, ``records_after(seq)``).  The spooled messages are
        among those records, so the spool is emptied first; the first start
        notes the archive's head and posts nothing."""
        route = self.routes[address]
        spool = self._spool_of(route)
        records_after = getattr(route.notarize, "records_after", None)
        if spool is None or records_after is None:
            return
        with self._inject_locks[address]:
            posted = self._posted(route)
            if posted is None:
                self._note_posted(route, route.notarize.last_seq())
                return
            records = records_after(posted)
            if not records:
                return
            log.info("%s: %d records archived after %d, the last the list took: "
                     "posting them", address, len(records), posted)
            for path in sorted(spool.glob("*.eml")):
                path.unlink()
        self._inject_later(address, [(_Delivery(address, b"", ""), records)])

    def _note_injected(self, route: PitRoute) -> None:
        """Note the last record injected since the last note (injection lock held)."""
        self._note_posted(route, self._last_injected.pop(route.list_address.lower(), None))

    def _posted(self, route: PitRoute) -> int | None:
        try:
            return int((self._spool_of(route) / POSTED_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _note_posted(self, route: PitRoute, seq: int | None) -> None:
        """Remember *seq* as the last record the list took (injection lock
        held).  Not fsync'd: a note that falls back after a crash only
        posts some records again, it never skips one."""
        spool = self._spool_of(route)
        if seq is None or spool is None:
            return
        path = os.path.join(spool, POSTED_FILE)
        try:
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except FileNotFoundError:
            spool.mkdir(parents=True, exist_ok=True)
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, b"%d\n" % seq)
        finally:
            os.close(fd)
        os.replace(path + ".tmp", path)

    def _notarize_group(self, route: PitRoute, group: list[_Delivery]) -> list:
        """Each delivery's messages to post, or the exception that kept it off disk."""
        items = [(_lf(item.content), item.sender) for item in group]
        together = getattr(route.notarize, "group", None)
        if together is not None:
            try:
                if any(item.ticket is not None for item in group):
                    return together(items, [item.ticket for item in group])
                return together(items)
            except Exception as error:
                log.exception("notary for %s failed", route.list_address)
                return [error] * len(group)
        out: list = []
        for msg_bytes, sender in items:
            try:
                out.append(route.notarize(msg_bytes, sender))
            except Exception as error:
                log.exception("notary for %s failed", route.list_address)
                out.append(error)
        return out

    def post(self, address: str, produce: Callable[[], list], wait: bool = True) -> str:
        """Call ``produce()`` with the pit's lock held and inject what it
        returns, exactly like a delivery's notarized messages (spooled if the
        list is unreachable).  For messages the notary makes on its own, such
        as a seal on a timer: they take their place in the pit's order.
        Returns the LMTP-style reply line once injected, or with ``wait``
        false "" at once (the injector posts them behind what it has);
        exceptions of ``produce`` propagate."""
        address = address.lower()
        item = _Delivery(address, b"", "")
        with self._pit_locks[address]:
            self._inject_later(address, [(item, produce())])
        return item.reply.result() if wait else ""

    def _inject_all(self, rcpt: str, route: PitRoute, outgoing: list) -> str:
        """Inject notarized messages in order (injection lock held); spool the rest on failure."""
        if isinstance(outgoing, Refusal):
            return _durable_reply(rcpt, outgoing)
        if self._has_spooled(route) and not self._flush_pit(rcpt.lower(), route)[1]:
            # Older notarized messages still wait: these go behind them.
            for pending in outgoing:
                self._spool(route, pending)
            return f"250 2.0.0 <{rcpt}>: notarized, spooled for the list"
        for index, notarized in enumerate(outgoing):
            try:
                self.inject(route, notarized)
            except NotForTheList as error:
                self._left_out(route, notarized, error)
            except MailError as error:
                log.error("injecting into %s failed: %s", route.list_address, error)
                if self._spool_of(route) is None:
                    return f"451 4.4.1 <{rcpt}>: list unreachable, try again later"
                for pending in outgoing[index:]:
                    self._spool(route, pending)
                return f"250 2.0.0 <{rcpt}>: notarized, spooled for the list"
        return f"250 2.0.0 <{rcpt}>: notarized"

    def inject(self, route: PitRoute, notarized: bytes) -> None:
        """Post one notarized message to the list through Mailman's LMTP runner.

        Call with the injection lock held (the injector and flush_spool do).
        """
        if route.max_list_size and len(notarized) > route.max_list_size:
            raise NotForTheList(f"{len(notarized):,} bytes, over the pit's max_list_message_size "
                                f"of {route.max_list_size:,}")
        key = route.list_address.lower()
        client = self._clients.get(key)
        if client is None or (client.host, client.port) != tuple(self.mailman_lmtp):
            if client is not None:
                client.close()
            client = self._clients[key] = LMTPClient(*self.mailman_lmtp)
        status = client.send(approved(notarized, route.approval_secret),
                             route.notary_address, [route.list_address])
        code, text = status[route.list_address]
        if code in _REFUSED_FOR_GOOD:
            raise NotForTheList(f"Mailman refused it: {code} {text}")
        if code != 250:
            raise MailError(f"Mailman refused the post to {route.list_address}: {code} {text}")
        if self._spool_of(route) is not None:
            found = _STAMP_SEQ.search(notarized, 0, 4096)
            if found:
                self._last_injected[key] = int(found.group(1))

    def _left_out(self, route: PitRoute, notarized: bytes, error: NotForTheList) -> None:
        """Say in the log that a record stays off the list, and count it as
        taken (a restart's catch-up must not offer it again)."""
        found = _STAMP_SEQ.search(notarized, 0, 4096)
        seq = found.group(1).decode() if found else "?"
        log.error("%s: record %s left out of the list (it is in the archive): %s",
                  route.list_address, seq, error)
        if found and self._spool_of(route) is not None:
            self._last_injected[route.list_address.lower()] = int(seq)

    def _spool_of(self, route: PitRoute) -> Path | None:
        """The route's spool directory (None: it has none), worked out once a route."""
        known = self._spool_dirs.get(route.list_address)
        if known is not None and known[0] is route:
            return known[1]
        if route.spool_dir is not None:
            directory = Path(route.spool_dir)
        elif self.spool_dir is None:
            directory = None
        else:
            directory = self.spool_dir / route.list_address.lower()
        self._spool_dirs[route.list_address] = (route, directory)
        return directory

    def _spool(self, route: PitRoute, notarized: bytes) -> None:
        with self._spool_lock:
            directory = self._spool_of(route)
            directory.mkdir(parents=True, exist_ok=True)
            taken = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
            number = max(taken, default=-1) + 1
            # Names sort in injection order: zero-padded counters, no clock.
            path = directory / f"{number:09d}.eml"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(notarized)
            os.replace(tmp, path)
            self._spool_empty.discard(route.list_address.lower())

    def _has_spooled(self, route: PitRoute) -> bool:
        """Whether the pit's spool holds messages (injection lock held).  The
        directory is listed until a listing finds it empty, and again only
        after this server spooled into it (its one writer: ``_spool``), not
        once a delivery."""
        key = route.list_address.lower()
        if key in self._spool_empty:
            return False
        directory = self._spool_of(route)
        if directory is not None and directory.is_dir() and any(directory.glob("*.eml")):
            return True
        self._spool_empty.add(key)
        return False

    def _flush_pit(self, address: str, route: PitRoute) -> tuple[int, bool]:
        """Inject one pit's spool in order (injection lock held): (how many, all of them?)."""
        sent = 0
        with self._spool_lock:
            directory = self._spool_of(route)
            for path in sorted(directory.glob("*.eml")) if directory.is_dir() else []:
                notarized = path.read_bytes()
                try:
                    self.inject(route, notarized)
                except NotForTheList as error:
                    self._left_out(route, notarized, error)
                    path.unlink()
                    continue
                except MailError as error:
                    log.error("spool flush for %s stopped: %s", address, error)
                    self._note_injected(route)
                    return sent, False
                path.unlink()
                sent += 1
            self._note_injected(route)
        return sent, True

    def flush_spool(self) -> int:
        """Inject every spooled message, oldest first; return how many went out.

        A pit's flush stops at its first failure (order matters within a
        pit); new messages for that pit are spooled behind the old ones
        until a flush gets through.
        """
        sent = 0
        for address, route in sorted(self.routes.items()):
            if self._spool_of(route) is None:
                continue
            with self._inject_locks[address]:
                sent += self._flush_pit(address, route)[0]
        return sent
