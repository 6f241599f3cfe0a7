"""pit-notary: the moderator and notary of a pit.

Every message enters a pit here.  The notary decides what becomes part of
the record:

1. the message is no larger than ``max_message_size`` and carries no
   ``X-Pit-`` header of its own;
2. it is signed (inline clearsigned or PGP/MIME), the signature is good,
   and the key is a current member key (in the pit's keyring, not expired,
   not revoked: gpg's judgement, checked in process by pit.openpgp); what
   is read is what a reader sees (pit.signed), and the signature is dated
   no more than ``signature_clock_skew`` ahead of the notary's clock and no
   more than ``signature_max_age`` behind it;
3. the signed text is a well-formed request for *this* pit (pit.message),
   whose account the signing key owns (operator requests need the
   operator's key; a filter's report needs that filter's key);
4. its ``(account, ref)`` was never seen before (replay protection), and
   the member is within its rate limit.

An accepted message is *stamped*: a gapless sequence number, a UTC time
that never goes backwards, the hash of the previous record (a hash chain),
the hash of the original bytes and the request's canonical fields.  The
original bytes follow the stamp unchanged, so its signature still verifies
with stock gpg.  A refused message goes to the reject record with its
reason, and a notice goes back where one may (see "No backscatter").

Seals.  Signing every record would cost a signature per record; instead
the notary *seals* batches, as Certificate Transparency logs do: a seal is
a record whose body, clearsigned with the notary's key, lists the hash of
every record it covers.  The notary signs in process (pit.signer.KeySigner:
gpg's own format, which stock gpg verifies; gpg itself signs when the key
cannot be read so), so a seal costs no gpg process.  Every record is sealed
at the end of the batch that brought it, and at most ``seal_every`` records
apart, so the delay is bounded by one batch; an auditor checks one message
on its own with its hash, the line of the seal that names it and one
``gpg --verify`` (docs/verifying.md).

The log.  The records are the leaves of a Merkle tree (RFC 9162, see
pit.merkle), and every seal is also a signed tree head: it carries the
tree's size (every record before the seal), its root hash and the notary's
time, under the same one gpg signature.  The notary keeps the tree's
frontier (O(log n) hashes) and folds each record into it as it stamps it,
one small hash a record; the root is computed only when a seal is made.
The frontier of each seal's tree is saved in ``archives/tree``, so a
notary starting on a large archive hashes only the records since its
newest seal (after checking the saved root is the one that seal signed).
So heads come at the seals' cadence (by size and by time), not per record,
and an auditor holding any two heads checks that the later one extends the
earlier one (a consistency proof), and any record against a head (an
inclusion proof; docs/verifying.md).

Nothing is lost: a message leaves the incoming maildir only after its
record, or its rejection, is on disk (fsync'd).  A run first moves the
messages it takes to ``incoming/cur``; if the notary dies before removing
them, the next run finds each one's digest among the last records or
rejections and only removes it (or, not found, judges it then).

Nothing stops it: a message the notary cannot read or judge, for any
reason, is refused (``unreadable: ...``) like any other, and the queue goes
on.  Header block size, MIME nesting and MIME part count are bounded before
any parser sees the message.

Any number of notaries may run on one pit (maildir runs, ``pit order
--notarize``, the LMTP service): each takes ``<pit>/notary.lock`` (flock)
around bringing its state up to the archive's head, judging, appending and
emptying ``incoming/cur``, so the chain stays gapless and a claimed file is
never seen by two runs.

No backscatter: a refusal notice goes to the registered address of the
member whose key signed; for mail no member key signed, only to a From
address that is a member's; otherwise the refusal is recorded and nothing
is mailed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from pit import archive as archive_mod
from pit import kinds, mbox, merkle, message, notarystate, openpgp, signed, trace
from pit.keyring import Keyring, KeyringError
from pit.filter import FILTERS
from pit.pitdir import Pit, note_checkpoint
from pit.units import UnitError

__all__ = ["Notary", "Decision", "MailOutcome", "Prejudged", "main", "prejudge", "request_fields",
           "stamp_text", "stamp_time"]

# Mailman's approval headers (pit/mailman.py): refused on the way in, so only
# the notary ever approves a post.  Header names only, at the start of a line.
_APPROVAL_HEADER = re.compile(rb"\n((?:x-)?approved?)[ \t]*:", re.IGNORECASE)

RESERVED_ACCOUNTS = ("operator", "notary", "fees")    # never a member's

# Bounds checked before any parser sees a message (a parser's recursion or
# quadratic corner is then out of reach): the header block, how deep MIME
# multiparts nest and how many parts they hold.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 1000
MAX_MIME_DEPTH = 16
MAX_MIME_PARTS = 256
_MULTIPART = re.compile(rb"multipart/", re.IGNORECASE)
_BOUNDARY = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^ \t;\r\n]{1,200}))',
                       re.IGNORECASE)


@dataclass
class Decision:
    """What became of one incoming message."""
    accepted: bool
    reason: str = ""               # why it was refused
    seq: int = 0                   # its sequence number, when accepted
    digest: str = ""
    line: int | None = None        # the line of the signed text at fault
    sender: str = ""               # where the notice of a refusal goes


@dataclass
class MailOutcome:
    """What :meth:`Notary.notarize_mail` did with one message."""
    decision: Decision
    records: list[bytes]           # appended to the archive, in order, as stored
    notices: list[bytes]           # notices for the sender (also in outbox/notices.mbox)
    duplicate: bool = False        # the same bytes were handled before: nothing done


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def stamp_time(us: int) -> str:
    """Microseconds since the epoch as the notary's ISO 8601 UTC text."""
    s, frac = divmod(us, 1_000_000)
    return datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:06d}Z"


def _sender_of(raw: bytes) -> str:
    try:
        h = mbox.headers(raw, ["from", "reply-to"])
    except mbox.MboxError:
        return ""                   # not an email: the notice goes to the postmaster
    addr = h.get("reply-to") or h.get("from") or ""
    if "<" in addr:
        addr = addr[addr.rfind("<") + 1:addr.rfind(">")]
    return addr.strip()


def request_fields(req: message.Request, instruments, currencies, fees,
                   refs) -> list[tuple[str, str]]:
    """The request's part of the stamp, as the notary writes it: *req*
    resolved against the pit's *instruments* and *currencies* (a cancel or
    modify with the ticker of the order it names, from *refs*: ``(account,
    ref) -> (seq, ticker)`` of the records so far), ``X-Pit-Pit`` first.
    Raises :class:`Refused` for what resolving finds wrong.  Tests that need
    a record without a signed message make its stamp with this and
    :func:`stamp_text`, never by hand.  O(len(request))."""
    ins = req.instruction
    target_ticker = None
    if isinstance(ins, (message.Cancel, message.Modify)):
        known = refs.get((req.account, ins.ref))
        if known is None or not known[1]:
            what = "cancel" if isinstance(ins, message.Cancel) else "modify"
            raise Refused(f"{what} {ins.ref}: {req.account} has no order with ref {ins.ref}")
        target_ticker = known[1]
    if req.kind in kinds.NUMBERS:
        try:
            req = message.resolve(req, instruments, currencies, ticker=target_ticker)
        except (message.MessageError, UnitError, KeyError) as e:
            raise Refused(f"malformed request: {e}", getattr(e, "line", None)) from None
    elif req.kind == "instrument":
        if ins.currency not in currencies:
            raise Refused(f"instrument {ins.ticker}: unknown currency {ins.currency}; "
                          f"define it first (Currency: {ins.currency} 0.01)", req.line)
        try:
            ins.instrument(currencies, fees)
        except UnitError as e:
            raise Refused(f"instrument {ins.ticker}: {e}", req.line) from None
    return [("X-Pit-Pit", req.pit)] + message.stamp_fields(req)


def stamp_text(seq: int, us: int, prev: str, digest: str, signer: str,
               fields: list[tuple[str, str]], when: str | None = None) -> str:
    """The stamp block of record *seq*: its number, time (*us*, microseconds),
    the hash of the record before, the digest of the original, the signer,
    then *fields*, one ``Key: value`` line each.  *when*: ``stamp_time(us)``,
    when the caller has it already."""
    head = [("X-Pit-Seq", str(seq)), ("X-Pit-Time", when or stamp_time(us)),
            ("X-Pit-Prev", prev), ("X-Pit-Digest", digest), ("X-Pit-Signer", signer)]
    return "".join(f"{k}: {v}\n" for k, v in head + fields)


def _check_shape(raw: bytes) -> None:
    """Refuse a message whose header block or MIME structure is beyond the
    bounds, before any parser sees it.  O(len(raw)); a byte search only for
    the usual message (one multipart at most, few ``--`` lines)."""
    end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[:end]
    if len(head) > MAX_HEADER_BYTES:
        raise Refused(f"header block too large: {len(head)} bytes, at most {MAX_HEADER_BYTES}")
    fields = head.count(b"\n") + 1 - head.count(b"\n ") - head.count(b"\n\t")
    if fields > MAX_HEADER_FIELDS:
        raise Refused(f"too many header fields: {fields}, at most {MAX_HEADER_FIELDS}")
    # (the count of _MULTIPART's matches, by one plain search of the
    # lowered bytes: _MULTIPART is an ASCII literal, its case ASCII's)
    if raw.lower().count(b"multipart/") <= 1 and raw.count(b"\n--") <= MAX_MIME_PARTS:
        return
    depth, parts = _mime_shape(raw)
    if depth > MAX_MIME_DEPTH:
        raise Refused(f"MIME parts nested {depth} deep, at most {MAX_MIME_DEPTH}")
    if parts > MAX_MIME_PARTS:
        raise Refused(f"too many MIME parts: {parts}, at most {MAX_MIME_PARTS}")


def _mime_shape(raw: bytes) -> tuple[int, int]:
    """(nesting depth, part count) of the multiparts in *raw*, from its
    boundary lines alone: a boundary opens a level where its first
    delimiter line appears and closes it (with every level inside) at its
    close delimiter.  Counts what a MIME parser would descend into, without
    parsing.  O(len(raw))."""
    declared = {a or b for a, b in _BOUNDARY.findall(raw)}
    open_: list[bytes] = []
    depth = parts = 0
    for line in raw.split(b"\n"):
        if not line.startswith(b"--"):
            continue
        word = line[2:].rstrip(b" \t\r")
        if word.endswith(b"--") and word[:-2] in open_:
            del open_[open_.index(word[:-2]):]
        elif word in declared:
            if word in open_:
                del open_[open_.index(word) + 1:]
            else:
                open_.append(word)
                depth = max(depth, len(open_))
            parts += 1
    return depth, parts


class Prejudged(NamedTuple):
    """What :func:`prejudge` found in one message: the part of its judgement
    that depends on its bytes alone."""
    digest: str                          # SHA-256 hex of the bytes judged
    signed: signed.Signed                # signed.extract of them
    proof: bytes | None                  # Verifier.proof of the signature (None: no proof)
    request: message.Request | None      # the signed request, parsed (None: not one, or malformed)


def prejudge(raw: bytes, verifier: openpgp.Verifier, max_bytes: int) -> Prejudged | None:
    """The stateless part of :meth:`Notary.judge` for *raw* (LF line
    endings, as judged): the signed part extracted, the signature's
    cryptography checked against the key it names in *verifier*, the
    request parsed.  None when there is nothing to take (larger than
    *max_bytes*, beyond the shape bounds, no signed part): the notary
    judges all of it itself then.  Deterministic in *raw* and the key's
    material (the judge process and the notary run the same code on the
    same bytes).  O(len(raw))."""
    if len(raw) > max_bytes:
        return None
    try:
        _check_shape(raw)                # bounds first, as judge() has them
        s = signed.extract(raw)
    except Exception:
        return None
    request = None
    if not s.text.startswith(("Report: ", "Checkpoint: ")):
        try:
            request = message.parse_request(_split_key_block(s.text)[0])
        except Exception:
            pass                          # judge() parses it again and says why
    return Prejudged(hashlib.sha256(raw).hexdigest(), s,
                     verifier.proof(s.signed_bytes, s.parsed), request)


class Refused(Exception):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason, self.line = reason, line


class Notary:
    """The notary of one local pit.  ``clock`` returns seconds (float); tests
    and benchmarks may pass their own."""

    def __init__(self, pit: Pit | str | os.PathLike, clock=time.time):
        self.pit = (pit if isinstance(pit, Pit) else Pit(pit)).not_a_replica()
        self.clock = clock
        self.archive = archive_mod.Archive(self.pit.root)
        self.keyring = Keyring(self.pit.gnupg)
        self.max_size = self.pit.getint("max_message_size")
        self.max_filter_size = max(self.max_size, self.pit.getint("max_filter_message_size"))
        self.rate_limit = self.pit.getint("rate_limit")
        self.rate_interval = self.pit.getint("rate_interval") * 1_000_000
        self.seal_every = self.pit.getint("seal_every")
        self.sig_max_age = self.pit.getint("signature_max_age")
        self.sig_clock_skew = self.pit.getint("signature_clock_skew")
        self.rejects_path = self.pit.rejects / "rejects.mbox"
        self.notices_path = self.pit.outbox / "notices.mbox"
        self.lock_path = self.pit.root / "notary.lock"
        self._lock_depth = 0
        self._signer: str | None = None     # the member key that signed the message being judged
        self._seal_signer = None            # pit.signer.KeySigner, made at the first seal
        self.state: notarystate.NotaryState | None = None
        self.last_us = 0                    # the newest time stamped or refused here
        self._addresses: dict[str, tuple[str, ...]] | None = None
        self._addresses_at = -1
        self._members_seen = -1
        with self._locked():                # open (or rebuild) the state, bring it to the head
            pass

    # -- state, derived from the archive ----------------------------------------
    # The notary's state is the fold of the archive by one rule
    # (pit.notarystate.NotaryState.remember), kept in SQLite beside the
    # archive and bound to the record it is exact at.  A start opens it and
    # folds only the records after it; memory holds what the pit's
    # configuration bounds, not its history.
    seq = property(lambda self: self.state.seq)
    head = property(lambda self: self.state.head)
    tree = property(lambda self: self.state.tree)
    unsealed = property(lambda self: self.state.unsealed)
    refs = property(lambda self: self.state.refs)
    members = property(lambda self: self.state.members)
    registry_instruments = property(lambda self: self.state.registry_instruments)
    currencies = property(lambda self: self.state.currencies)
    fees = property(lambda self: self.state.fees)
    filter_reports = property(lambda self: self.state.filter_reports)
    filter_checkpoints = property(lambda self: self.state.filter_checkpoints)
    recent_set = property(lambda self: self.state.recent)

    def close(self) -> None:
        """Close the notary's state and key store: their SQLite files at
        rest when it returns.  A notary made for one call closes so
        (``with Notary(pit) as n``); one that lives as long as its process
        need not."""
        if self.state is not None:
            self.state.close()
            self.state = None
        self.keyring.close()

    def __enter__(self) -> "Notary":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _load(self) -> None:
        """Open the pit's state (or rebuild it from record 1, the reason
        recorded), lock held.  The caller folds the records after it."""
        self.verifier = self.keyring.load_verifier()
        self._addresses = None
        if self.state is not None:
            self.state.close()
            self.state = None
        state, _ = notarystate.open_state(self.pit, self.archive)
        self.state = state if state is not None else self._rebuild()
        self._members_seen = self.state.members_version

    def _rebuild(self) -> "notarystate.NotaryState":
        """A new state folded from the whole archive, written under another
        name and put in place once complete."""
        path = self.archive.dir / notarystate.STATE_NAME
        tmp = path.with_name(notarystate.STATE_NAME + ".new")
        state = notarystate.NotaryState.create(tmp, notarystate.binding_of(self.pit),
                                               self.pit.operator, wal=False)
        state.begin()
        saved = self._saved_tree()
        skip = saved.size if saved else 0
        for seq, msg in self.archive.read():
            st = mbox.stamp(msg)
            if seq <= skip and seq > 1:
                # covered by the saved frontier: not hashed again (every
                # record up to the newest seal; the seal and what follows are)
                state.remember(seq, st, None)
                continue
            if seq == skip + 1 and saved is not None:
                if not self._signed_root_is(msg, saved):
                    state.close()
                    return self._rebuild_hashing_all()
                state.tree = saved
            state.remember(seq, st, archive_mod.record_hash(msg))
        if state.tree.size != state.seq:
            state.close()
            return self._rebuild_hashing_all()     # the archive ends where the file says
        state.rejects_read = 0
        state.commit()
        state.close()
        os.replace(tmp, path)
        archive_mod.fsync_dir(path.parent)
        return notarystate.NotaryState.open(path, notarystate.binding_of(self.pit))

    def _follow_rejects(self) -> None:
        """Remember the digests of reject entries written since the last look
        (by this notary or another one on the pit).  O(new entries)."""
        size = _size(self.rejects_path)
        if size <= self.state.rejects_read:
            return
        with open(self.rejects_path, "rb") as f:
            f.seek(self.state.rejects_read)
            data = f.read(size - self.state.rejects_read)
        if not data.endswith(b"\n"):
            # A notary killed while appending left a torn entry: never
            # answered for, its message is still waiting and is judged again.
            cut = data.rfind(b"\nFrom ") + 1          # 0: the torn entry is the first
            os.truncate(self.rejects_path, self.state.rejects_read + cut)
            data, size = data[:cut], self.state.rejects_read + cut
        for msg in mbox.iter_messages(data):
            d = _reject_digest(msg)
            if d:
                self.state.add_recent(d)
        self.state.rejects_read = size

    def _follow(self) -> None:
        """Bring the state up to the archive's head and the reject record's
        end, which other notaries on the pit (or one killed before it saved
        its state) may have moved (lock held).  O(records appended since)
        when the archive only grew."""
        if self.state is not None and self.state.replaced():
            self.state.close()
            self.state = None                   # another notary rebuilt it: open the new one
        if self.state is not None:
            try:
                self.state.begin()
                if self.state.changed_elsewhere():
                    self.state.reload()         # another notary's turn
            except Exception as e:
                self._drop_state(f"it could not be read: {type(e).__name__}: {e}")
        last = self.archive.last_seq()
        if self.state is not None and last < self.state.seq:
            self.state.rollback()
            self.state.close()
            self.state = None                   # repaired or replaced: open_state says why
        if self.state is None:
            self._load()
            self.state.begin()
            last = self.archive.last_seq()
        st = self.state
        if last > st.seq:
            notarystate.fold(st, self.archive, st.seq + 1)
        if st.members_version != self._members_seen:   # another notary imported member keys
            self.verifier = self.keyring.load_verifier()
            self._addresses = None
        self.last_us = max(self.last_us, st.last_us)
        self._follow_rejects()

    def _drop_state(self, why: str) -> None:
        """Stop using a state that failed: the reason recorded, the next
        turn of the lock opens (or rebuilds) it."""
        st, self.state = self.state, None
        if st is None:
            return
        try:
            if st._in_tx:
                st.db.execute("ROLLBACK")
        except Exception:
            pass
        st.close()
        notarystate.record(self.archive, why)

    @contextmanager
    def _locked(self):
        """Hold the pit's notary lock (re-entrant), with the state brought up
        to date on taking it and saved on letting go.  Every judgement and
        append happens inside.  What fails inside leaves the saved state as
        it was (the archive is the truth: it is folded again next time)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                self._follow()
                yield
                self.state.commit()
                self._members_seen = self.state.members_version
            except BaseException as e:
                try:
                    self.state.rollback()
                except Exception:
                    self._drop_state(f"it could not be rolled back after {type(e).__name__}: {e}")
                raise
            finally:
                self._lock_depth = 0
        finally:
            os.close(fd)                     # releases the flock

    # -- the tree's frontier, saved at each seal ---------------------------------
    # archives/tree holds the frontier of the newest seal's tree (its
    # Tree-Size records), one line.  It is a cache for rebuilding the state:
    # it is used only when its root is the Root that seal signed, so a
    # rebuild hashes only the records since the newest seal.
    @property
    def _tree_path(self) -> Path:
        return self.archive.dir / "tree"

    def _saved_tree(self):
        try:
            return merkle.Frontier.from_text(self._tree_path.read_text("ascii"))
        except (OSError, ValueError):
            return None

    def _signed_root_is(self, msg: bytes, tree) -> bool:
        """Is *msg* the seal whose signed tree head is *tree*?"""
        try:
            seal = message.parse_seal(signed.extract(mbox.split_stamp(msg)[1]).text)
        except (signed.SignedError, message.MessageError, ValueError):
            return False
        return seal.tree_size == tree.size and seal.root == tree.root().hex()

    def _rebuild_hashing_all(self) -> "notarystate.NotaryState":
        saved, self._saved_tree = self._saved_tree, lambda: None
        try:
            return self._rebuild()
        finally:
            self._saved_tree = saved

    def _tree_saved(self) -> None:
        """After an append that held a seal: save that seal's frontier."""
        tree, self._sealed_tree = getattr(self, "_sealed_tree", None), None
        if tree is None:
            return
        tmp = self._tree_path.with_name("tree.tmp")
        try:
            tmp.write_text(tree.to_text() + "\n", "ascii")
            os.replace(tmp, self._tree_path)
        except OSError:
            pass                    # a cache: the next rebuild hashes what it must

    def _recent(self, digest: str) -> None:
        self.state.add_recent(digest)

    def _remember(self, seq: int, st: dict, h: str, us: int | None = None) -> None:
        """Fold one record into the notary's state (*us*: its time, when the
        caller has it as a number already).  O(1) amortized."""
        self.state.remember(seq, st, h, us)

    # -- judging one message ----------------------------------------------------
    def judge(self, raw: bytes, now_us: int, pre: "Prejudged | None" = None):
        """Check one message.  Returns the stamp fields of the accepted record
        (without sequence, time, hashes) or raises Refused.  O(len(raw)).

        *pre*: :func:`prejudge` of these very bytes (done beforehand, in a
        judge process: moderator.judges); its parse and signature check are
        taken instead of doing them again, everything that depends on the
        pit's state (keys, members, refs, clock) is judged here as always,
        so the outcome is the same with or without it."""
        # A filter's report or checkpoint may be far larger than any order (a
        # checkpoint holds the whole book): it has a limit of its own, and is
        # refused below unless its signer owns the filter's account.
        if len(raw) > self.max_filter_size or (
                len(raw) > self.max_size and not _looks_like_filter_output(raw)):
            limit = self.max_filter_size if len(raw) > self.max_filter_size else self.max_size
            raise Refused(f"too large: {len(raw)} bytes, the limit is {limit}")
        _check_shape(raw)
        head = raw[:raw.find(b"\n\n")] if b"\n\n" in raw else raw
        low = (b"\n" + head).lower()
        if b"\nx-pit-" in low:
            raise Refused("the message carries X-Pit- headers; only the notary writes those")
        # (the pattern matches only where the lowered head has "approve")
        approval = _APPROVAL_HEADER.search(b"\n" + head) if b"approve" in low else None
        if approval:
            # On Mailman the notary's own posts carry the pit's approval secret
            # in this header family; a sender's copy is a guess at the door.
            raise Refused(f"the message carries an {approval.group(1).decode('ascii', 'replace')} "
                          "header; only the notary approves posts to the list")
        try:
            s = pre.signed if pre is not None else signed.extract(raw)
        except signed.SignedError as e:
            raise Refused({"unsigned": "unsigned", "ambiguous": "ambiguous"}.get(
                e.status, "malformed signature") + f": {e.reason}") from None
        except (ValueError, LookupError) as e:
            # bytes that are not an email at all must be refused, never stop the notary
            raise Refused(f"malformed message: not a readable email ({_one_line(str(e))[:200]})") from None
        v = self.verifier.verify(s.signed_bytes, s.parsed, now=now_us // 1_000_000,
                                 proof=pre.proof if pre is not None else None)
        if not v.ok:
            reasons = {"bad": "bad signature", "unknown-key": "unknown key",
                       "expired-key": "expired key", "revoked-key": "revoked key",
                       "malformed": "malformed signature", "invalid": "invalid signature"}
            raise Refused(f"{reasons.get(v.status, v.status)}: {v.detail}")
        late = openpgp.time_refusal(v.created, now_us // 1_000_000, self.sig_clock_skew, self.sig_max_age)
        if late:
            raise Refused(f"signature time: {late}")
        fpr = v.fingerprint
        accounts = self.members.get(fpr)
        if accounts is None:
            raise Refused(f"unknown key: {fpr} is not a member of pit {self.pit.name}")
        self._signer = fpr
        text = s.text
        filter_output = text.startswith(("Report: ", "Checkpoint: "))
        if filter_output:
            fields = self._filter_output(text, accounts)
        elif len(raw) > self.max_size:
            raise Refused(f"too large: {len(raw)} bytes, the limit is {self.max_size}")
        else:
            fields = self._request(text, accounts, fpr, pre.request if pre is not None else None)
        if self.rate_limit and fpr != self.pit.operator and not filter_output:
            # a member's flood is what the limit stops; the operator's
            # housekeeping and the filters' output must always get through
            sent = self.state.sent_since(fpr, now_us - self.rate_interval)
            if sent >= self.rate_limit:
                raise Refused(f"rate limited: {fpr} sent {sent} messages in "
                              f"{self.rate_interval // 1_000_000} s; the limit is {self.rate_limit}")
        return fpr, fields, v

    def _request(self, text: str, accounts, fpr: str,
                 parsed: message.Request | None = None) -> list[tuple[str, str]]:
        body, key_block = _split_key_block(text)
        try:
            req = parsed if parsed is not None else message.parse_request(body)
        except message.MessageError as e:
            raise Refused(f"malformed request: {e}", getattr(e, "line", None)) from None
        if req.pit != self.pit.name:
            raise Refused(f"the request is for pit {req.pit}, this is pit {self.pit.name}")
        if req.pit_id != self.pit.notary:
            if not req.pit_id:
                raise Refused(f"the request names pit {req.pit} without its identity: write "
                              f"'Pit: {req.pit} {self.pit.notary}' (the pit's notary key)", 1)
            raise Refused(f"the request is for another pit named {req.pit} (identity "
                          f"{req.pit_id}); this pit's identity is {self.pit.notary}", 1)
        base = req.account.partition(":")[0]
        if req.kind in kinds.OPERATOR:
            if fpr != self.pit.operator or req.account != "operator":
                raise Refused(f"{req.kind} requests are the operator's; "
                              f"the signing key owns {', '.join(accounts)}")
        elif base not in accounts or base in RESERVED_ACCOUNTS or base in FILTERS:
            raise Refused(f"the signing key does not own account {req.account}")
        if (req.account, req.ref) in self.refs:
            seq = self.refs[req.account, req.ref][0]
            raise Refused(f"replayed: ref {req.ref} of {req.account} was used by record {seq}")
        ins = req.instruction
        if req.kind == "member" and ins.action == "add":
            _check_member_accounts(ins.accounts)
            self._check_one_specialist(ins.fingerprint, ins.accounts)
            if not key_block:
                raise Refused("a member request must carry the member's public key block")
            try:
                self.keyring.import_key(key_block, expect=ins.fingerprint)
            except KeyringError as e:
                raise Refused(f"the member's key block: {e}") from None
            # later messages of this same batch may be signed by the new key:
            # the verifier reads the store import_key has just written
        elif req.kind == "rules":
            why = kinds.rules.refusal(self.state.rules, ins.version)
            if why:
                raise Refused(why)
        fields = request_fields(req, self.registry_instruments, self.currencies, self.fees, self.refs)
        if req.kind == "transfer" and self.state.rules >= 2:
            why = kinds.rules.transfer_refusal(req.account, ins.asset, ins.to,
                                               self.registry_instruments, self._owned)
            if why:
                raise Refused(why)
        return fields

    def _owned(self, account: str) -> bool:
        """Does a member's key (not a filter's) own the plain *account*?"""
        return account.partition(":")[0] not in FILTERS and self.state.account_exists(account)

    def _check_one_specialist(self, fpr: str, accounts) -> None:
        """Each ticker has one specialist: a key's specialist accounts
        (tickers and ranges, pit.tickerset) may not overlap one another, nor
        another key's, nor a specialist that has posted to the archive,
        unless they are the same account (a filter's new key).  O(members)
        for a filter key, O(1) for anyone else."""
        from pit.tickerset import MAX_WORDS, TickerSet, TickerSetError
        words = [a.partition(":")[2] for a in accounts if a.startswith("specialist:")]
        if not words:
            return
        try:
            mine = TickerSet(words, MAX_WORDS)
        except TickerSetError as e:
            raise Refused(f"the specialist accounts of one key: {e}") from None
        others = [(f"key {f}", a.partition(":")[2]) for f, accts in self.members.items()
                  if f != fpr for a in accts if a.startswith("specialist:")]
        others += [(f"the filter {name} (it has posted)", w)
                   for name in {*self.filter_reports, *self.filter_checkpoints}
                   if name.startswith("specialist ") for w in name.split(" ")[1:]]
        for who, w in others:
            if w in mine.words:
                continue                          # the same account: the filter's new key
            try:
                hit = TickerSet([w]).overlaps(mine)
            except TickerSetError:
                continue
            if hit:
                raise Refused(f"specialist:{hit} overlaps specialist:{w} of {who}: "
                              "each ticker has one specialist")

    def _filter_output(self, text: str, accounts) -> list[tuple[str, str]]:
        """A report or checkpoint: accepted only from a registered filter's
        own key (one whose member record grants filter accounts only, and
        all of this filter's)."""
        try:
            fs = message.filter_stamp(text)
        except message.MessageError as e:
            raise Refused(f"malformed {text.split(':')[0].lower()}: {e}",
                          getattr(e, "line", None)) from None
        if fs.pit != self.pit.name:
            raise Refused(f"the {fs.kind} is for pit {fs.pit}, this is pit {self.pit.name}")
        kind = fs.filter.split(" ")[0]
        if kind not in FILTERS:
            raise Refused(f"{fs.filter!r} is not a filter of this pit (filters: {', '.join(FILTERS)})")
        if not all(a.partition(":")[0] in FILTERS for a in accounts):
            raise Refused(f"the {fs.kind} of {fs.filter} is not signed by a filter's key "
                          f"(the signing key owns {', '.join(accounts)})")
        for a in fs.accounts:
            if a not in accounts:
                raise Refused(f"the signing key does not own filter account {a}")
        if (fs.accounts[0], fs.ref) in self.refs:
            raise Refused(f"replayed: {fs.kind} {fs.ref} of {fs.accounts[0]} was used by record "
                          f"{self.refs[fs.accounts[0], fs.ref][0]}")
        self._refuse_overlap(fs)
        return fs.fields()

    def _refuse_overlap(self, fs) -> None:
        """Two runs of one filter over the same records (two specialists for
        a ticker, a daemon restarted while its post was on the way) must not
        both be archived, or their trades would count twice: a report must
        start after the filter's newest report, and a checkpoint must close
        that report (cover exactly its last record) and do so once; a
        checkpoint of a filter that has reported nothing closes nothing."""
        name, _, span = fs.summary.rpartition(" ")
        last = self.filter_reports.get(name)
        if fs.kind == "report":
            first = int(span.partition("-")[0])
            if last and first <= last[1]:
                raise Refused(f"overlaps report {last[0]}-{last[1]} of {name} (record {last[2]}): "
                              f"a report must start after record {last[1]}")
            return
        covered, done = int(span), self.filter_checkpoints.get(name)
        if not last:
            # posted after its report, but the mail path may deliver it first
            raise Refused(f"checkpoint {covered} of {name} closes no report: the filter has "
                          "no report archived (a checkpoint follows its report)")
        if covered != last[1] or (done and done[0] >= covered):
            if done and done[0] >= last[1]:
                why = f"report {last[0]}-{last[1]} already has its checkpoint (record {done[1]})"
            else:
                why = f"it must cover record {last[1]}, the end of report {last[0]}-{last[1]}"
            raise Refused(f"checkpoint {covered} of {name} does not close the filter's newest "
                          f"report: {why}")

    # -- notarizing a batch -----------------------------------------------------
    def notarize(self, raws: list[bytes], seal: bool = True) -> list[Decision]:
        """Judge, stamp and store a batch; seal it.  Every message ends in
        exactly one place, the archive or the reject record, both on disk
        before this returns.  O(total bytes)."""
        with self._locked():
            return self._notarize(raws, seal)

    def _notarize(self, raws: list[bytes], seal: bool) -> list[Decision]:
        return [d for d, _, _ in self._notarize_group(raws, seal)]

    def _notarize_group(self, raws: list[bytes], seal: bool,
                        prejudged: list[Prejudged | None] | None = None,
                        digests: list[str] | None = None
                        ) -> list[tuple[Decision, list[bytes], list[bytes]]]:
        """Judge and stamp *raws* in order, then store them all with one
        durable append to the archive (and one to the reject record, one to
        the notices): ``(decision, records, notices)`` per message, where
        *records* are the message's record and any seal that followed it,
        exactly as appended (a final seal goes with the last message).
        *prejudged*: a :func:`prejudge` (or None) per message, taken for
        the message whose digest it names.  *digests*: each message's
        digest, when the caller has them (*raws* with LF line endings)."""
        records: list[tuple[bytes, str, int]] = []
        rejects: list[bytes] = []
        notices: list[bytes] = []
        out: list[tuple[Decision, list[bytes], list[bytes]]] = []
        for i, raw in enumerate(raws):
            raw = raw.replace(b"\r\n", b"\n")
            digest = digests[i] if digests else hashlib.sha256(raw).hexdigest()
            pre = prejudged[i] if prejudged else None
            if pre is not None and pre.digest != digest:
                pre = None
            # A message seen before is judged again, not dropped: a replay
            # is refused (and recorded) for its reused (account, ref).
            # Crash recovery of the maildir is run_maildir's job (cur/).
            now = self._now()
            self._signer = None
            try:
                fpr, fields, _ = self.judge(raw, now, pre)
            except Refused as e:
                refusal = e
            except sqlite3.Error:
                raise                       # the state's store failed, not the message
            except Exception as e:          # nothing a message does may stop the notary
                refusal = Refused(f"unreadable: {type(e).__name__}: {_one_line(str(e))[:300]}")
            else:
                refusal = None
            if refusal is not None:
                d = Decision(False, _one_line(refusal.reason), digest=digest, line=refusal.line,
                             sender=self._notice_to(raw))
                rejects.append(self._reject_entry(raw, d, now))
                mine = []
                if d.sender:
                    notices.append(self._notice(raw, d, now))
                    mine = list(mbox.iter_messages(notices[-1]))     # as the outbox reads
                self._recent(digest)
                out.append((d, [], mine))
                continue
            rec = self._stamp(raw, digest, fpr, fields, now)
            # The From line's date: the stamp's second, as a number (what
            # mbox would parse the stamp's time text back to).
            records.append((rec, "notary", now // 1_000_000))
            out.append((Decision(True, seq=self.seq, digest=digest), [rec], []))
            if self.seal_every and len(self.unsealed) >= self.seal_every:
                records.append(self._seal_record())
                out[-1][1].append(records[-1][0])
        if seal and self.unsealed:
            records.append(self._seal_record())
            if out:
                out[-1][1].append(records[-1][0])
        trace.mark("group.judged", n=len(raws), records=len(records))
        if records:
            last = self.archive.append(records)
            trace.mark("group.durable", first=last - len(records) + 1, last=last)
            self._tree_saved()
            self._note_checkpoints(records)
        if rejects:
            _append_durably(self.rejects_path, rejects)
            self.state.rejects_read = _size(self.rejects_path)    # ours: already remembered
        if notices:
            _append_durably(self.notices_path, notices)
        return out

    def _note_checkpoints(self, records) -> None:
        """Keep ``checkpoints/index`` (which record holds each filter's newest
        checkpoint) in step with the archive, so replay seeks straight to it.
        The index is a cache: a reader that finds it behind scans the archive."""
        for rec, _, _ in records:
            st = mbox.stamp(rec)
            if st.get("x-pit-kind") == "checkpoint":
                name, _, covered = st["x-pit-request"].rpartition(" ")
                note_checkpoint(self.pit, name, int(st["x-pit-seq"]), int(covered))

    def genesis(self, body: str, now: float, rules: int = 1) -> None:
        """Record 1: the notary's clearsigned statement of its own key and the
        operator's (and the pit's rules, when not 1), which every audit starts from."""
        with self._locked():
            self._genesis(body, now, rules)

    def _genesis(self, body: str, now: float, rules: int = 1) -> None:
        if self.seq:
            raise ValueError("the pit already has a genesis record")
        us = int(now * 1_000_000)
        self.last_us = us
        head = (f"From: {self.pit.notary_address}\nTo: {self.pit.address}\n"
                f"Subject: {self.pit.name} genesis\n"
                f"Date: {_rfc5322(us)}\nMessage-ID: <genesis.{self.pit.name}@{self.pit.domain}>\n"
                f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
                f"Content-Transfer-Encoding: 7bit\n\n")
        msg = head.encode() + body.encode()
        fields = [("X-Pit-Pit", self.pit.name), ("X-Pit-Kind", "genesis"),
                  ("X-Pit-Account", "notary"), ("X-Pit-Ref", "genesis"),
                  ("X-Pit-Request", f"notary {self.pit.notary} operator {self.pit.operator}"
                                    + (f" rules {rules}" if rules > 1 else ""))]
        rec = self._stamp(msg, hashlib.sha256(msg).hexdigest(), self.pit.notary, fields, us)
        self.archive.append([(rec, "notary", stamp_time(us)), self._seal_record()])
        self._tree_saved()

    def seal(self) -> None:
        """Seal whatever is unsealed now (the daemon's timer calls this)."""
        with self._locked():
            if self.unsealed:
                self.archive.append([self._seal_record()])
                self._tree_saved()

    # -- the mail path (pit/daemon.py: NotaryService) ---------------------------
    def notarize_mail(self, raw: bytes) -> "MailOutcome":
        """Notarize one message that came by mail, without sealing it: see
        :meth:`notarize_mails`, of which this is a group of one."""
        return self.notarize_mails([raw])[0]

    def notarize_mails(self, raws: list[bytes], seal: bool = False,
                       prejudged: list[Prejudged | None] | None = None) -> list["MailOutcome"]:
        """Notarize messages that came by mail together (group commit): each
        judged in turn as if alone, then all stored with one durable append
        (archive, reject record, notices), so a group costs the fsyncs of one
        message.  Returns one :class:`MailOutcome` per message, in order, once
        every record is on disk: the records exactly as appended (the
        stamped message and any seal ``seal_every`` forced after it; with
        *seal*, the group's seal goes with its last message) and the notices
        written to the outbox for the sender.  Not sealed otherwise: the
        mail path seals by size and on a timer (:meth:`seal_mail`).

        Idempotent for redelivery: an MTA may deliver the same bytes again
        after a crash; if the digest is among the recent records or
        rejections (or earlier in the group), nothing is done
        (``duplicate``), so the message is neither archived twice nor
        recorded as a replay of itself.  *prejudged*: see :meth:`judge`
        (one :func:`prejudge` or None per message).  O(total bytes) plus one
        append."""
        raws = [raw.replace(b"\r\n", b"\n") for raw in raws]
        digests = [hashlib.sha256(raw).hexdigest() for raw in raws]
        with self._locked():
            trace.mark("notary.locked")
            fresh, seen = [], set()
            for i, digest in enumerate(digests):
                if digest not in self.recent_set and digest not in seen:
                    fresh.append(i)
                    seen.add(digest)
            done = dict(zip(fresh, self._notarize_group(
                [raws[i] for i in fresh], seal,
                [prejudged[i] for i in fresh] if prejudged else None,
                [digests[i] for i in fresh])))
        trace.mark("notary.unlocked")
        out = []
        for i, digest in enumerate(digests):
            if i in done:
                decision, records, notices = done[i]
                out.append(MailOutcome(decision, records, notices))
            else:
                out.append(MailOutcome(Decision(False, "duplicate delivery", digest=digest),
                                       [], [], True))
        return out

    def seal_mail(self) -> list[bytes]:
        """Seal whatever is unsealed; return the seal record as appended
        ([] when nothing was unsealed).  One signature (:meth:`_seal_signature`)."""
        with self._locked():
            first = self.seq + 1
            self.seal()
            return self._records_from(first)

    def _records_from(self, first: int) -> list[bytes]:
        return [msg for _, msg in self.archive.read(first)] if self.seq >= first else []

    def _now(self) -> int:
        us = int(self.clock() * 1_000_000)
        if us <= self.last_us:
            us = self.last_us + 1            # never backwards, never equal
        self.last_us = us
        return us

    def _stamp(self, original: bytes, digest: str, fpr: str,
               fields: list[tuple[str, str]], now: int) -> bytes:
        seq = self.seq + 1
        when = stamp_time(now)
        rec = stamp_text(seq, now, self.head, digest, fpr, fields, when).encode("ascii") + original
        st = {"x-pit-time": when, "x-pit-digest": digest, "x-pit-signer": fpr}
        st.update((k.lower(), v) for k, v in fields)
        self._remember(seq, st, archive_mod.record_hash(rec), now)
        return rec

    def _seal_record(self) -> tuple[bytes, str, int]:
        first = self.unsealed[0][0]
        now = self._now()
        # The seal is the signed tree head of every record before it.
        self._sealed_tree = self.tree.copy()
        seal = message.Seal(self.pit.name, first, tuple(h for _, h in self.unsealed),
                            self.tree.size, self.tree.root().hex(), stamp_time(now))
        env = message.Envelope(self.pit.notary_address, self.pit.address, stamp_time(now))
        body = self._seal_signature(message.seal_text(seal))
        msg = _with_body(message.write_message(seal, env), body)
        digest = hashlib.sha256(msg).hexdigest()
        fields = [("X-Pit-Pit", self.pit.name), ("X-Pit-Kind", "seal"),
                  ("X-Pit-Account", "notary"), ("X-Pit-Ref", f"seal-{seal.last}"),
                  ("X-Pit-Request", f"{seal.first}-{seal.last}")]
        rec = self._stamp(msg, digest, self.pit.notary, fields, now)
        return rec, "notary", now // 1_000_000

    def _seal_signature(self, text: str) -> str:
        """*text* clearsigned with the notary's key, exactly as ``gpg
        --clearsign`` writes it: in process (pit.signer.KeySigner, which
        stock gpg verifies), so a seal costs a signature, not a gpg process;
        by gpg itself when the key is not valid or cannot be read so."""
        return self.seal_signer().clearsign(text)

    def seal_signer(self):
        """The notary key's in-process signer (pit.signer.KeySigner), made
        at the first call; a long-running notary calls it before traffic
        (``.ready()``) so that no delivery waits for gpg to read the key."""
        if self._seal_signer is None:
            from pit.signer import KeySigner
            self._seal_signer = KeySigner(self.keyring, self.pit.notary)
        return self._seal_signer

    def _reject_entry(self, raw: bytes, d: Decision, now: int) -> bytes:
        head = (f"X-Pit-Rejected: {_one_line(d.reason)}\nX-Pit-Time: {stamp_time(now)}\n"
                f"X-Pit-Digest: {d.digest}\n")
        if d.line is not None:
            head += f"X-Pit-Line: {d.line}\n"
        return mbox.format_message(head.encode("utf-8") + raw, "notary", stamp_time(now))

    def _notice_to(self, raw: bytes) -> str:
        """Where the notice of a refusal may go: the registered address of
        the member whose key signed it (the From address when that is one of
        the key's, else its first); for mail no member key signed, the
        sender's address only when it is a member's; else "" (recorded, not
        mailed: a stranger's forged From is nobody to write to)."""
        try:
            sender = _sender_of(raw).lower()
        except Exception:
            sender = ""
        store = self.keyring.store
        if self._signer is not None:
            own = store.addresses(self._signer) if self._signer in self.members else ()
            return sender if sender in own else (own[0] if own else "")
        if sender and any(f in self.members for f in store.certificates_with(sender)):
            return sender
        return ""

    def member_addresses(self) -> dict[str, tuple[str, ...]]:
        """``{fingerprint: (email, ...)}`` of the current members, from their
        keys' user ids as gpg lists them (the key store), cached until the
        members change.  O(members): a notice looks up its one member
        instead (``_notice_to``)."""
        if self._addresses is None or self._addresses_at != self.state.members_version:
            store = self.keyring.store
            self._addresses = {f: store.addresses(f) for f in self.members}
            self._addresses_at = self.state.members_version
        return self._addresses

    def _notice(self, raw: bytes, d: Decision, now: int) -> bytes:
        try:
            h = mbox.headers(raw, ["message-id", "subject", "from", "date"])
        except mbox.MboxError:
            h = {}
        quoted = tuple((k.capitalize() if k != "message-id" else "Message-ID", _one_line(v))
                       for k, v in h.items() if v)
        to = d.sender if message.ADDRESS_RE.fullmatch(d.sender or "") else f"postmaster@{self.pit.domain}"
        env = message.Envelope(self.pit.notary_address, to, stamp_time(now))
        try:
            rej = message.Rejection(self.pit.name, _one_line(d.reason)[:900], d.line,
                                    h.get("message-id") or None, quoted)
            body = message.write_message(rej, env)
        except (message.MessageError, ValueError):
            # the original's headers cannot be quoted as they are: leave them out
            rej = message.Rejection(self.pit.name, _one_line(d.reason)[:900], d.line)
            body = message.write_message(rej, env)
        return mbox.format_message(body, self.pit.notary_address, stamp_time(now))

    # -- the incoming maildir ---------------------------------------------------
    def run_maildir(self, batch: int = 1000) -> list[Decision]:
        """Notarize everything waiting in ``<pit>/incoming/new`` (oldest name
        first), removing each file only once its outcome is on disk.

        A batch is first moved to ``incoming/cur`` (claimed), then judged,
        then removed.  A file still in ``cur/`` when a run starts was claimed
        by a run that died: if its digest is among the last records or
        rejections its outcome is on disk and it is only removed; otherwise
        it is judged now.  So a crash anywhere loses nothing and stores
        nothing twice, while the same bytes delivered *again* through
        ``new/`` are judged again (and refused as a replay).  O(messages)."""
        new, cur = self.pit.incoming / "new", self.pit.incoming / "cur"
        cur.mkdir(parents=True, exist_ok=True)
        out: list[Decision] = []
        # Every run empties cur/ before it lets go of the lock, so whatever
        # the lock holder finds there was left by a run that died.
        with self._locked():
            left = []
            names, others = _message_files(cur, sorted(os.listdir(cur)))
            out += self._set_aside(cur, "incoming/cur", others)
            for n in names:
                raw = (cur / n).read_bytes().replace(b"\r\n", b"\n")
                if hashlib.sha256(raw).hexdigest() in self.recent_set:
                    os.unlink(cur / n)          # handled before the crash
                else:
                    left.append(n)
            if left:
                out += self._run_claimed(cur, left)
        names, others = _message_files(new, sorted(os.listdir(new)) if new.exists() else [])
        if others:
            with self._locked():
                out += self._set_aside(new, "incoming/new", others)
        for i in range(0, len(names), batch):
            with self._locked():
                claimed = []
                for n in names[i:i + batch]:
                    try:
                        os.rename(new / n, cur / n)
                    except FileNotFoundError:
                        continue                # another notary took it
                    claimed.append(n)
                if not claimed:
                    continue
                archive_mod.fsync_dir(cur)
                archive_mod.fsync_dir(new)
                out += self._run_claimed(cur, claimed)
        return out

    def _set_aside(self, folder: Path, shown: str, others: list[tuple[str, str]]) -> list[Decision]:
        """The entries of a maildir folder that are no message file (*others*:
        ``(name, what)``): each moved to ``incoming/bad/``, refused once and
        recorded in the reject record (with no message bytes: it has none),
        so that no later run meets it again.  Under the lock."""
        bad = self.pit.incoming / "bad"
        bad.mkdir(exist_ok=True)
        out, entries, now = [], [], self._now()
        for name, what in others:
            target = bad / name
            while os.path.lexists(target):
                target = target.with_name(target.name + "+")
            try:
                os.rename(folder / name, target)
            except FileNotFoundError:
                continue                        # another notary took it
            d = Decision(False, f"unreadable: {shown}/{name} is not a message file ({what}): "
                                f"moved to incoming/bad/{target.name}")
            out.append(d)
            entries.append(self._reject_entry(b"", d, now))
        if entries:
            archive_mod.fsync_dir(bad)
            archive_mod.fsync_dir(folder)
            _append_durably(self.rejects_path, entries)
            self.state.rejects_read = _size(self.rejects_path)    # ours: already remembered
        return out

    def _run_claimed(self, cur: Path, names: list[str]) -> list[Decision]:
        raws = [(cur / n).read_bytes() for n in names]
        out = self.notarize(raws)
        for n in names:
            os.unlink(cur / n)
        archive_mod.fsync_dir(cur)
        return out


def _message_files(folder: Path, names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The *names* in a maildir folder that are message files (regular
    files, also through a link), and ``(name, what)`` for each other entry
    (a directory, a FIFO, whose read would wait for ever, a dangling link),
    which is no message and must not stop the queue.  O(names)."""
    import stat
    files, others = [], []
    for n in names:
        try:
            mode = os.stat(folder / n).st_mode
        except FileNotFoundError:
            if not os.path.lexists(folder / n):
                continue                    # another notary took it
            mode = None
        if mode is not None and stat.S_ISREG(mode):
            files.append(n)
            continue
        others.append((n, "a dangling symbolic link" if mode is None
                       else "a directory" if stat.S_ISDIR(mode)
                       else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"))
    return files, others


def deliver(pit: Pit, raw: bytes, name: str | None = None) -> Path:
    """Drop one message into the pit's incoming maildir, durably (tmp, fsync,
    rename into new/).  This is what a mail system's delivery does."""
    global _counter
    _counter += 1
    name = name or f"{time.time_ns():020d}.{os.getpid()}_{_counter}.pit"
    tmp = pit.incoming / "tmp" / name
    with open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    dst = pit.incoming / "new" / name
    os.rename(tmp, dst)
    return dst


_counter = 0


def _reject_digest(entry: bytes) -> str:
    """The X-Pit-Digest the notary wrote at the head of a reject entry.  Reads
    only the leading X-Pit- lines, the first digest winning: what follows is
    the refused message, which may be anything at all.  O(stamp size)."""
    block, _ = mbox.split_stamp(entry)
    for line in block.split(b"\n"):
        if line.startswith(b"X-Pit-Digest: "):
            return line[14:].strip().decode("ascii", "replace")
    return ""


def _check_member_accounts(accounts) -> None:
    """A member owns trading accounts, a filter's key filter accounts
    (``specialist:ACME``, ``transfers``): never both, and nobody the
    operator's, the notary's or the fee account."""
    reserved = [a for a in accounts if a.partition(":")[0] in RESERVED_ACCOUNTS]
    if reserved:
        raise Refused(f"account {reserved[0]} is the pit's own; no member may own it")
    filt = [a for a in accounts if a.partition(":")[0] in FILTERS]
    if filt and len(filt) != len(accounts):
        raise Refused(f"filter account {filt[0]} goes to a filter's own key, which owns "
                      "filter accounts only")


def _looks_like_filter_output(raw: bytes) -> bool:
    """A clearsigned report or checkpoint (the larger limit applies)?"""
    i = raw.find(b"-----BEGIN PGP SIGNED MESSAGE-----\n", 0, 1 << 16)
    if i < 0:
        return False
    j = raw.find(b"\n\n", i)
    return raw.startswith((b"Report: ", b"Checkpoint: "), j + 2)


def _split_key_block(text: str) -> tuple[str, str]:
    i = text.find("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    if i < 0:
        return text, ""
    return text[:i].rstrip("\n") + "\n", text[i:]


def _with_body(msg: bytes, body: str) -> bytes:
    head, _, _ = msg.partition(b"\n\n")
    return head + b"\n\n" + body.encode("utf-8")


def _rfc5322(us: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(us // 1_000_000))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """*text* as one printable line: whitespace runs made one space, other
    control characters and undecodable bytes written as escapes."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], " ".join(text.split()))


_us = notarystate.stamp_us     # a stamp's time in microseconds (tests read records with it)


def _append_durably(path: Path, entries: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    archive_mod.append_locked(path, b"".join(entries))


def main(argv=None) -> int:
    """pit-notary PIT : notarize everything waiting in PIT/incoming."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: pit-notary PIT", file=sys.stderr)
        return 2
    n = Notary(argv[0])
    decisions = n.run_maildir()
    ok = sum(d.accepted for d in decisions)
    print(f"{ok} notarized, {len(decisions) - ok} rejected", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
