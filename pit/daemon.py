"""The long-running pieces of a pit on Mailman: the notary's mail service and
the filter daemons.

``NotaryService`` is the ``notarize`` of a pit's route in
``pit.mailhost.NotaryLMTPServer``: it wraps ``moderator.notary.Notary`` for
one local pit directory (the notary host's master archive).  Per message:

* accepted: the records exactly as appended (the stamped message, and a
  seal if ``seal_every`` forced one) are returned, to be posted to the list;
* refused: the notary has written the reject record and the notice (kept in
  ``outbox/notices.mbox`` as before); the service also *mails* the notice to
  the sender (SMTP to the outgoing mail host) and returns nothing;
* the same bytes again (an MTA redelivering after a crash): nothing at all.

Sealing every message would cost a gpg run each; the service notarizes with
``seal=False`` and a timer seals within ``seal_seconds`` of the oldest
unsealed record (and on stop), posting the seal through the server in the
pit's order.

``FilterDaemon`` runs one filter (a specialist, transfers, positions) over
the pit's archive whenever mail arrives for it, signs its report and
checkpoint with the filter's key and posts them to the pit's address by LMTP
(to the notary's server, so they are notarized and reach every member).
Runs are serialised by a lock file, deliveries during a run coalesce into
one next run (a pending flag file), and nothing is posted twice: a run
starts from where the *archive* says the filter stands
(``pit.ops.filter_position``), posts only a checkpoint when its last report
is archived without one, and after posting waits until its checkpoint is in
the archive before the next run.  docs/mailman.md has the picture.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import smtplib
import threading
import time
from typing import Callable

from pit import mbox, message, ops, signed, trace
from pit.archive import Archive
from pit.filter import run as run_filter_stream
from pit.keyring import Keyring
from pit.mailhost import LMTPClient, MailError, Refusal
from pit.pitdir import Pit, PitError

__all__ = ["DaemonError", "NotaryService", "FilterDaemon", "filter_address", "deliver",
           "EX_OK", "EX_USAGE", "EX_TEMPFAIL"]

log = logging.getLogger("pit.daemon")


class DaemonError(RuntimeError):
    """A daemon that cannot do its job as configured, with the reason.

    ``permanent`` is True when trying again cannot help (an unknown filter,
    bad filter arguments): the MTA may bounce.  Everything else may pass
    later (a key not made yet, a file the daemon's user cannot read yet, the
    notary down), and the MTA must retry."""

    def __init__(self, text: str, permanent: bool = False):
        super().__init__(text)
        self.permanent = permanent


# The exit codes of the MTA's delivery program (sysexits.h, as Postfix's
# pipe and Exim's pipe transport read them): 75 defers the message, the
# others bounce it.
EX_OK, EX_USAGE, EX_TEMPFAIL = 0, 64, 75


def filter_address(pit: Pit, name: str) -> str:
    """The list address of filter ``name`` (``<pit>-specialist-acme@<domain>``):
    its subscription, and the sender of its posts (pit.mailman.filter_list_address)."""
    from pit.mailman import filter_list_address
    return filter_list_address(pit.name, name, pit.domain)


# -- the notary ------------------------------------------------------------------

class NotaryService:
    """The real notary behind a pit's LMTP route.

    ``smtp`` is the outgoing mail host ``(host, port)`` for rejection notices
    (None: notices stay in the outbox only).  ``seal_seconds`` defaults to
    the pit's setting.  Call :meth:`attach` with the running server so timed
    seals reach the list, :meth:`start` to run the timer and :meth:`stop` to
    seal what is left and end it.  Thread-safe.
    """

    def __init__(self, pit: Pit | str | os.PathLike, smtp: tuple[str, int] | None = None,
                 seal_seconds: float | None = None, clock=time.time):
        from moderator.notary import Notary
        self.pit = pit if isinstance(pit, Pit) else Pit(pit)
        self.notary = Notary(self.pit, clock=clock)
        self.smtp = smtp
        self.seal_seconds = float(self.pit.get("seal_seconds") if seal_seconds is None
                                  else seal_seconds)
        # Seal a little before the limit: the seal's own time must still be
        # within seal_seconds of the oldest record it covers.
        self._margin = min(1.0, self.seal_seconds / 2)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._deadline: float | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._post: Callable[[Callable[[], list]], object] | None = None
        self.unsent: list[bytes] = []      # notices the mail host refused (also in the outbox)
        self._judges = None                # moderator.judges.Judges, while open

    # -- wiring ------------------------------------------------------------------
    def attach(self, server, address: str | None = None) -> None:
        """Post timed seals through ``server`` (a NotaryLMTPServer) for the
        pit's address, in the pit's order."""
        address = (address or self.pit.address).lower()
        # The timer does not wait for the list: the injector may be behind
        # (Mailman slow), and the next seal must not wait for it.
        self._post = lambda produce: server.post(address, produce, wait=False)

    def start(self) -> "NotaryService":
        """Start the seal timer; a tail left unsealed by a crash is sealed at once."""
        self.notary.seal_signer().ready()      # the key read now, not in the first seal
        with self._lock:
            if self.notary.unsealed:
                self._deadline = time.monotonic()
            self._stopping = False
        self._thread = threading.Thread(target=self._timer, name=f"seal-{self.pit.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Seal whatever is unsealed (posting the seal) and end the timer."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._seal_and_post()

    # -- judge processes (moderator.judges) -------------------------------------
    def open_judges(self, workers: int) -> None:
        """Start *workers* judge processes for this pit's deliveries (the
        notary's server does, with itself); 0: none."""
        self.close_judges()
        if workers > 0:
            from moderator.judges import Judges
            self._judges = Judges(self.pit.gnupg, self.notary.max_filter_size, workers).start()

    def close_judges(self) -> None:
        judges, self._judges = self._judges, None
        if judges is not None:
            judges.stop()

    def prejudge(self, msg_bytes: bytes):
        """Hand a delivery's bytes (LF line endings) to a judge process as
        they arrive; a ticket for :meth:`group`, or None."""
        judges = self._judges
        return judges.submit(msg_bytes) if judges is not None else None

    # -- the route's notarize ----------------------------------------------------
    def __call__(self, msg_bytes: bytes, envelope_sender: str) -> list[bytes]:
        """``notarize(msg_bytes, envelope_sender) -> records to post``.  O(len(msg))."""
        return self.group([(msg_bytes, envelope_sender)])[0]

    def group(self, deliveries: list[tuple[bytes, str]], tickets: list | None = None
              ) -> list[list[bytes]]:
        """Notarize ``(msg_bytes, envelope_sender)`` deliveries together, with
        one durable append (``Notary.notarize_mails``); return each one's
        records to post (a refused one: a ``pit.mailhost.Refusal``), in
        order, once all are on disk.  A seal that is due
        goes into the same append, after the group.  *tickets*: what
        :meth:`prejudge` gave for each (or None): a judge's result ready
        now is taken, none is waited for.  O(total bytes)."""
        with self._lock:
            prejudged = None
            if tickets and any(t is not None for t in tickets):
                prejudged = [t.value if t is not None else None for t in tickets]
            # Under steady traffic the timer may wait for the pit's lock
            # behind deliveries; the group holding it seals instead.
            due = self._deadline is not None and time.monotonic() >= self._deadline
            outcomes = self.notary.notarize_mails([m for m, _ in deliveries], seal=due,
                                                  prejudged=prejudged)
            if due and self.notary.unsealed:
                outcomes[-1].records += self.notary.seal_mail()     # the group was all redeliveries
            self._arm()
        if self._judges is not None:
            self._judges.tend()
        for outcome, (_, sender) in zip(outcomes, deliveries):
            if outcome.duplicate:
                log.info("%s: duplicate delivery from %s ignored", self.pit.name, sender)
            for notice in outcome.notices:
                self.mail_notice(notice)
        return [Refusal(o.decision.reason) if not (o.decision.accepted or o.duplicate)
                else o.records for o in outcomes]

    def last_seq(self) -> int:
        """The number of the archive's last record."""
        return self.notary.archive.last_seq()

    def records_after(self, seq: int) -> list[bytes]:
        """The archived records after record *seq*, in order, as posted to the list."""
        return [msg for _, msg in self.notary.archive.read(seq + 1)]

    def mail_notice(self, notice: bytes) -> None:
        """Send one rejection notice to the address in its To: header.

        The envelope sender is empty (RFC 3834: an automatic reply must not
        draw another).  A notice the mail host refuses stays in the outbox
        (and in ``unsent``) and is logged: the refused message's record is
        already on disk either way."""
        if self.smtp is None:
            return
        to = mbox.headers(notice, ["to"]).get("to", "")
        try:
            with smtplib.SMTP(*self.smtp, timeout=30) as smtp:
                smtp.sendmail("", [to], notice.replace(b"\n", b"\r\n"))
        except (OSError, smtplib.SMTPException) as error:
            log.error("%s: notice to %s not sent (%s); it is in the outbox",
                      self.pit.name, to, error)
            self.unsent.append(notice)

    # -- seals -------------------------------------------------------------------
    def seal_records(self) -> list[bytes]:
        """Seal what is unsealed now; return the seal record (or [])."""
        with self._lock:
            records = self.notary.seal_mail()
            self._arm()
            return records

    def _arm(self) -> None:
        """Keep the timer's deadline in step with the oldest unsealed record (lock held)."""
        if not self.notary.unsealed:
            self._deadline = None
        elif self._deadline is None:
            self._deadline = time.monotonic() + max(0.0, self.seal_seconds - self._margin)
            self._wake.notify_all()

    def _seal_and_post(self) -> None:
        try:
            if self._post is not None:
                self._post(self.seal_records)
            else:
                self.seal_records()
        except Exception:           # the timer must outlive a bad moment; it retries
            log.exception("%s: sealing failed", self.pit.name)

    def _timer(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (self._deadline is None
                                              or self._deadline > time.monotonic()):
                    wait = None if self._deadline is None else self._deadline - time.monotonic()
                    self._wake.wait(wait)
                if self._stopping:
                    return
            self._seal_and_post()
            with self._lock:
                if self.notary.unsealed and self._deadline is not None \
                        and self._deadline <= time.monotonic():
                    self._deadline = time.monotonic() + 0.5     # failed: try again soon


# -- the filters -------------------------------------------------------------------

class FilterDaemon:
    """Runs filter ``kind args`` of the local pit ``pit`` and posts its output by mail.

    ``lmtp`` is the notary's LMTP server ``(host, port)``; posts go to the
    pit's address (``address``, default the pit's) from the filter's own
    address.  ``sync`` (optional) is called before each look at the archive:
    on a host other than the notary's it brings the replica up to date
    (``pit.mirror.mirror``).  The filter's key must exist already
    (``pit mailman provision`` makes it): making one is a notarized request,
    which only the notary's host may do.

    Trigger it with :meth:`notify` (a delivery), or run :meth:`start` with
    ``poll`` seconds to look at the archive on its own, or, on the notary's
    host, with ``wake_on_append`` to run as soon as an append to the
    archive commits (pit.watch.AppendWatch), without waiting for the list
    to deliver the record: an order becomes a trade in milliseconds, while
    the list still carries every record to every member.  :meth:`kick` is
    one delivery handled synchronously (``pit mailman deliver``).  Its
    posts are signed in process (pit.signer.KeySigner), gpg's format.
    """

    def __init__(self, pit: Pit | str | os.PathLike, kind: str, args: list[str],
                 lmtp: tuple[str, int] | None = None, address: str | None = None,
                 sync: Callable[[], object] | None = None,
                 wait_seconds: float = 60.0, retry_seconds: float = 2.0,
                 smtp: tuple[str, int] | None = None, sender: str | None = None,
                 gnupghome: str | os.PathLike | None = None, fpr: str | None = None):
        try:
            self.cls = ops.filter_class(kind)
            self.args = list(args)
            self.name = self.cls(self.args).name
        except (PitError, ValueError) as error:
            raise DaemonError(f"{kind}: {error}", permanent=True) from None
        self.pit = pit if isinstance(pit, Pit) else Pit(pit)
        self.slug = ops.slug(self.name)
        if (lmtp is None) == (smtp is None):
            raise DaemonError("post either by LMTP to the notary or by SMTP to a mail host",
                              permanent=True)
        if self.pit.is_replica and not (address and sender and fpr and gnupghome):
            raise DaemonError(f"{self.pit.root} is a replica: give the pit's address, the "
                              "filter's own address, its key and its GnuPG home", permanent=True)
        fpr = fpr or self.pit.get(f"filter.{self.slug}")
        if not fpr:
            raise DaemonError(f"filter {self.name!r} has no key in {self.pit.root}; "
                              "make it with 'pit mailman provision' (or 'pit run') first")
        self.fpr = fpr
        self.ring = Keyring(gnupghome or self.pit.filters_gnupg)
        from pit.signer import KeySigner
        self.signing = KeySigner(self.ring, fpr)
        self.lmtp = lmtp
        self.smtp = smtp
        self.address = (address or self.pit.address).lower()
        self.sender = (sender or filter_address(self.pit, self.name)).lower()
        self.sync = sync
        self.wait_seconds = wait_seconds
        self.retry_seconds = retry_seconds
        self.lock_path = self.pit.root / f"daemon-{self.slug}.lock"
        self.pending_path = self.pit.root / f"daemon-{self.slug}.pending"
        self.runs = 0                      # runs that posted something (for tests and logs)
        self._event = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll: float | None = None
        self._client: LMTPClient | None = None
        self._watcher: threading.Thread | None = None

    # -- triggers ----------------------------------------------------------------
    def notify(self, msg_bytes: bytes = b"", envelope_sender: str = "") -> None:
        """A delivery to the filter's address (a MailSink callback, say):
        schedule a run unless the record is plainly none of its business.
        Returns at once; runs happen in the daemon's thread."""
        if msg_bytes:
            try:
                stamp = mbox.stamp(msg_bytes)
                if stamp and not self.cls(self.args).wants(stamp):
                    return
            except (mbox.MboxError, ValueError):
                pass                        # cannot tell: run and see
        self._mark_pending()
        self._event.set()

    def start(self, poll: float | None = None, wake_on_append: bool = False) -> "FilterDaemon":
        """Run in a thread: catch up now, then on each notify (and every
        ``poll`` seconds if the archive grew; with ``wake_on_append``, at
        each commit of the local archive)."""
        self._poll = poll
        self._stop.clear()
        self._mark_pending()
        self._event.set()
        if wake_on_append:
            from pit.watch import AppendWatch
            archive = Archive(self.pit.root)
            watch = AppendWatch(archive.dir)                   # before the first run
            self._watcher = threading.Thread(target=self._watch, args=(watch, archive.last_seq()),
                                             name=f"watch-{self.slug}", daemon=True)
            self._watcher.start()
        self._thread = threading.Thread(target=self._loop, name=f"daemon-{self.slug}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread after the run in progress (if any)."""
        self._stop.set()
        self._event.set()
        for thread in (self._watcher, self._thread):
            if thread is not None:
                thread.join()
        self._watcher = self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def kick(self) -> bool:
        """Handle one delivery now: run (again and again while deliveries
        arrived meanwhile) unless another process or thread holds the run
        lock, whose holder then runs once more.  Returns True if this call
        ran.  Raises what the run raised."""
        self._mark_pending()
        ran = False
        while self.pending_path.exists() and not self._stop.is_set():
            with open(self.lock_path, "a+b") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return ran              # the holder sees the pending flag
                try:
                    while self.pending_path.exists() and not self._stop.is_set():
                        self.pending_path.unlink(missing_ok=True)
                        try:
                            self.run_once()
                        except BaseException:
                            self._mark_pending()      # not done: the next try runs it
                            raise
                        ran = True
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            # A delivery that came between the last look and the unlock set
            # the flag and found the lock held: look again.
        return ran

    def _watch(self, watch, seen: int) -> None:
        """Notify on each commit of the archive that brought a record of the
        filter's business (its own report and checkpoint are not: a run
        for them would find nothing to say), after record *seen* (which the
        first run covers).  O(new records' stamps)."""
        archive, flt = Archive(self.pit.root), self.cls(self.args)
        with watch:
            while not self._stop.is_set():
                if not watch.wait(0.5):
                    continue
                wanted = False
                try:
                    if archive.last_seq() < seen:
                        seen, wanted = 0, True          # repaired or replaced: look again
                    for seq, msg in archive.read(seen + 1):
                        seen = seq
                        wanted = wanted or flt.wants(mbox.stamp(msg))
                except Exception:                       # cannot tell: run and see
                    wanted = True
                trace.mark("watch.woke", seen=seen, wanted=int(wanted))
                if wanted:
                    self.notify()

    def _mark_pending(self) -> None:
        with open(self.pending_path, "ab"):
            pass

    def _loop(self) -> None:
        seen = -1
        while not self._stop.is_set():
            self._event.wait(self._poll)
            self._event.clear()
            trace.mark("daemon.wake")
            if self._stop.is_set():
                return
            try:
                if self._poll is not None and not self.pending_path.exists():
                    self._call_sync()       # a replica's source may be away: retried below
                    last = Archive(self.pit.root).last_seq()
                    if last == seen:
                        continue
                    seen = last
                    self._mark_pending()
                self.kick()
            except Exception:
                log.exception("%s: run failed; retrying in %s s", self.name, self.retry_seconds)
                if self._stop.wait(self.retry_seconds):
                    return
                self._event.set()

    # -- one run -----------------------------------------------------------------
    def run_once(self) -> int:
        """Catch up with the archive once; return how many messages were posted.

        If the filter's last report is archived without its checkpoint (a
        crash between the two), only that checkpoint is posted first, rebuilt
        as of the report.  Then the filter replays its checkpoint plus the
        newer records and posts its report and checkpoint if it had anything
        to say, waiting until the checkpoint is archived.  O(new records)."""
        trace.mark("run.start")
        self._call_sync()
        posted = 0
        ck, reported = ops.filter_position(self.pit, self.name)
        trace.mark("run.position", ck=ck[1] if ck else 0)
        if reported > (ck[1] if ck else 0):
            out = self._replay(upto=reported, checkpoint=ck)[1]
            posted += self._post([out[-1]])
            ck = self._await_checkpoint(reported)
        flt, out = self._replay(checkpoint=ck)
        trace.mark("run.replayed", covered=_covered(out[-1]) if out else 0, lines=len(flt.lines))
        if flt.lines:
            if self.smtp is not None:
                # Through a mail host the two posts may arrive in either
                # order (the notary refuses a checkpoint before its report):
                # the checkpoint goes once the report is in the archive.
                posted += self._post(out[:-1])
                self._await_report(_covered(out[-1]))
                posted += self._post(out[-1:])
            else:
                posted += self._post(out)
            self._await_checkpoint(_covered(out[-1]))
            trace.mark("run.done")
            self.runs += 1
        return posted

    def _replay(self, upto: int | None = None, checkpoint=None):
        flt, buffer = self.cls(self.args), io.BytesIO()
        run_filter_stream(flt, ops.replay(self.pit, self.cls(self.args), upto=upto,
                                          checkpoint=checkpoint), buffer)
        # Only the new messages (report, checkpoint); the rest are records already.
        new = [m for m in mbox.iter_messages(buffer.getvalue()) if not mbox.stamp(m)]
        return flt, new

    def _post(self, messages: list[bytes]) -> int:
        """Sign each message with the filter's key and post it.  By LMTP a
        run's report and checkpoint go pipelined on one connection (the
        notary can take both in one group commit, judged in this order);
        any refusal is an error, as a report the notary refused leaves its
        checkpoint refused too."""
        raws = []
        for msg in messages:
            raw = self._sign(msg)
            trace.mark("post.signed", bytes=len(raw))
            if self.smtp is not None:
                self._send_smtp(raw)
            else:
                raws.append(raw)
        if not raws:
            return len(messages)
        if self._client is None:
            self._client = LMTPClient(*self.lmtp)
        try:
            replies = self._client.send_many(raws, self.sender, self.address)
        except MailError as error:
            raise DaemonError(f"{self.name}: cannot post to {self.address}: {error}") from None
        for code, text in replies:
            trace.mark("post.acked", code=code)
            if code != 250:
                raise DaemonError(f"{self.name}: the notary at {self.lmtp[0]}:{self.lmtp[1]} "
                                  f"answered {code} {text}")
        return len(messages)

    def _send_smtp(self, raw: bytes) -> None:
        """Post through a mail host like any member (a filter on a host of its
        own): the notary judges it by its signature when it arrives.  Whether
        it was archived shows in the replica (``_await_checkpoint``); a post
        that arrives twice is refused there as an overlap."""
        data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            with smtplib.SMTP(*self.smtp, timeout=30) as smtp:
                smtp.sendmail(self.sender, [self.address], data)
        except (OSError, smtplib.SMTPException) as error:
            raise DaemonError(f"{self.name}: cannot post to {self.address} through "
                              f"{self.smtp[0]}:{self.smtp[1]}: {error}") from None

    def _sign(self, msg: bytes) -> bytes:
        """The filter's unsigned message, clearsigned by its key (as pit.ops.post does)."""
        head, _, body = msg.partition(b"\n\n")
        headers = [tuple(h.split(": ", 1)) for h in head.decode("ascii").split("\n")
                   if not h.lower().startswith(("mime-version", "content-type",
                                                "content-transfer-encoding"))]
        return signed.compose_clearsigned(headers, body.decode("utf-8"), self.signing, self.fpr)

    def _await_checkpoint(self, covered: int):
        """Wait until the archive holds this filter's checkpoint covering
        ``covered``; return its position.  Never run on without it: a second
        report over the same records would count them twice."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            ck = ops.filter_position(self.pit, self.name)[0]
            if ck and ck[1] >= covered:
                return ck
            if time.monotonic() > deadline:
                raise DaemonError(f"{self.name}: its checkpoint for record {covered} is not "
                                  f"in the archive after {self.wait_seconds:.0f} s")
            if self._stop.wait(0.05):
                raise DaemonError(f"{self.name}: stopped while waiting for its checkpoint")
            self._call_sync()

    def _await_report(self, to_seq: int) -> None:
        """Wait until the archive holds this filter's report up to record
        ``to_seq`` (or a checkpoint past it)."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            ck, reported = ops.filter_position(self.pit, self.name)
            if reported >= to_seq or (ck and ck[1] >= to_seq):
                return
            if time.monotonic() > deadline:
                raise DaemonError(f"{self.name}: its report up to record {to_seq} is not in the "
                                  f"archive after {self.wait_seconds:.0f} s")
            if self._stop.wait(0.05):
                raise DaemonError(f"{self.name}: stopped while waiting for its report")
            self._call_sync()

    def _call_sync(self) -> None:
        if self.sync is not None:
            self.sync()


def _covered(checkpoint_msg: bytes) -> int:
    """The ``Seq`` a filter's (unsigned) checkpoint message covers."""
    body = checkpoint_msg.partition(b"\n\n")[2].decode("utf-8")
    try:
        return message.parse_checkpoint(body).seq
    except message.MessageError as error:
        raise PitError(f"the filter wrote an unreadable checkpoint: {error}") from None


# -- the MTA's delivery program ------------------------------------------------------

def _user() -> str:
    import pwd
    try:
        return f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"
    except KeyError:
        return f"uid {os.getuid()}"


def deliver(pit_dir: str | os.PathLike, kind: str, args: list[str], lmtp: tuple[str, int],
            message_in=None) -> tuple[int, str]:
    """``pit mailman deliver``: one delivery of mail to a filter's address.

    Reads and drops the message (``message_in``, a binary file: the archive
    is the filter's input, the mail only its trigger), runs the filter (or
    leaves the run in progress a note to run once more) and returns
    ``(exit code, one line to print)``:

    * ``EX_OK`` (0): ran, or the running run will run again;
    * ``EX_USAGE`` (64): an unknown filter or bad filter arguments: the
      MTA's configuration is wrong, trying again cannot help (bounces);
    * ``EX_TEMPFAIL`` (75) for everything else, which may pass later: no
      pit (yet) at ``pit_dir``, a file the program's user cannot read or
      write, the filter's key not made yet, gpg failing, the notary
      unreachable or answering 4xx or 5xx, the checkpoint not archived in
      time, an unexpected error.  The MTA keeps the message and retries;
      nothing is lost, and a filter's address never bounces for a fault
      of the pit's own (a bounce would count against the subscription).
    """
    from pit.keyring import KeyringError
    from pit.mailhost import MailError
    try:
        if message_in is not None:
            while message_in.read(1 << 16):
                pass
        daemon = FilterDaemon(pit_dir, kind, args, lmtp)
        daemon.kick()
    except DaemonError as error:
        return (EX_USAGE if error.permanent else EX_TEMPFAIL), str(error)
    except PermissionError as error:
        where = error.filename or pit_dir
        return EX_TEMPFAIL, (f"cannot use {where} as {_user()}: {error.strerror}; the pit's "
                             "files must belong to the user the MTA runs this as")
    except (PitError, MailError, KeyringError, OSError) as error:
        return EX_TEMPFAIL, f"{type(error).__name__}: {error}"
    except Exception as error:             # a fault of ours: keep the mail, say what it was
        log.exception("delivery to %s %s failed", kind, " ".join(args))
        return EX_TEMPFAIL, f"internal error: {type(error).__name__}: {error}"
    return EX_OK, ""


# -- the notary's server for one or more pits ---------------------------------------

def notary_server(pit_dirs, listen: tuple[str, int], mailman: tuple[str, int],
                  smtp: tuple[str, int] | None, spool: str | os.PathLike | None = None,
                  judges: int | None = None):
    """``pit mailman serve``: one NotaryLMTPServer for every pit in ``pit_dirs``,
    each pit's address routed to its own notary (``NotaryService``), keyring,
    archive, secret and spool (``<pit>/spool``, or ``spool/<pit address>``).
    The pit is chosen by the recipient; *judges*: judge processes a pit
    (NotaryLMTPServer's).  Returns ``(server, services)``, not started.  Raises DaemonError naming a pit that is not on Mailman yet or
    an address two pits share."""
    from pathlib import Path

    from pit.mailhost import NotaryLMTPServer, PitRoute
    routes, services = {}, {}
    for pit_dir in pit_dirs:
        pit = pit_dir if isinstance(pit_dir, Pit) else Pit(pit_dir)
        address, secret = pit.get("mailman_list"), pit.get("mailman_secret")
        if not address or not secret:
            raise DaemonError(f"{pit.root} is not on Mailman yet: run 'pit mailman provision' first")
        address = address.lower()
        if address in routes:
            raise DaemonError(f"{pit.root} and {services[address].pit.root} are both {address}")
        services[address] = NotaryService(pit, smtp=smtp)
        where = Path(spool) / address if spool else pit.root / "spool" / address
        routes[address] = PitRoute(address, pit.notary_address, services[address], secret, where,
                                   max_list_size=pit.getint("max_list_message_size"))
    if not routes:
        raise DaemonError("no pit to serve")
    server = NotaryLMTPServer(routes, mailman, host=listen[0], port=listen[1], judges=judges)
    return server, services
