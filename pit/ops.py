"""What the ``pit`` command does, as functions: create a pit, sign and send
requests, run the filters and post their output, replay.  The command line
(pit/cli.py), the demo and the tests all go through here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pit import mbox, message
from pit.archive import ENTRY_HEAD, Archive, entry_stamp
from pit.filter import FILTERS, Filter, run as run_filter_stream
from pit.pitdir import Pit, PitError, note_checkpoint, slug

TYPE_CHECKING = False  # typing is for type checkers only
if TYPE_CHECKING:      # imported where used: `pit replay` never needs gpg
    from pit.keyring import Keyring


__all__ = ["init", "operator_request", "add_member", "member_request", "add_members",
           "read_certificates", "filter_key", "pit_line", "request_text",
           "sign_request", "send_local", "replay", "run_filter", "post", "latest_checkpoint",
           "filter_position", "note_checkpoint",
           "filter_class", "FILTERS", "notary", "FilterKeyRefused", "operator_home"]


class FilterKeyRefused(PitError):
    """The notary refused to make a filter's new key a member (the message
    is its reason): pit(1) exit 5, as for any refusal."""
    exit = "refused"


def notary(pit: Pit):
    from moderator.notary import Notary
    return Notary(pit)


# -- creating a pit --------------------------------------------------------------

def init(root: str | os.PathLike, name: str, algo: str = "ed25519",
         operator_home: str | os.PathLike | None = None, operator_fpr: str | None = None,
         rules: int | None = None, **settings) -> Pit:
    """Create a pit: directories, the notary's key pair, the operator's key
    (made in ``<pit>/operator.gnupg`` unless one is given) and record 1, the
    genesis record, which publishes both keys and the pit's *rules*
    (pit.kinds.rules; the latest unless given: docs/pit-book.md "Tickers")."""
    from pit.keyring import Keyring
    from pit.kinds import rules as rules_kind
    rules = rules_kind.LATEST if rules is None else rules
    if not 1 <= rules <= rules_kind.LATEST:
        raise PitError(f"rules {rules}: this pit knows rules 1 to {rules_kind.LATEST}")
    if not message.PIT_RE.fullmatch(name):
        raise PitError(f"bad pit name {name!r}: lower-case letters, digits and '-', "
                       "starting with a letter")
    pit = Pit.create(root, name, **settings)
    ring = Keyring(pit.gnupg)
    notary_fpr = ring.generate(f"{name} notary", pit.notary_address, algo=algo)
    if operator_home is None:
        operator_home = pit.root / "operator.gnupg"
        op = Keyring(operator_home)
        operator_fpr = op.generate(f"{name} operator", f"{name}-operator@{pit.domain}", algo=algo)
    else:
        op = Keyring(operator_home)
        if not operator_fpr:
            raise PitError("give the operator's key fingerprint with the operator's GnuPG home")
    ring.import_key(op.export(operator_fpr))
    ring.close()
    # kept relative to the pit when inside it (the pit may move), else absolute:
    # never relative to the directory pit init ran in (operator_home())
    home = Path(operator_home).resolve()
    if home.is_relative_to(pit.root.resolve()):
        home = home.relative_to(pit.root.resolve())
    pit.set(notary=notary_fpr, operator=operator_fpr, operator_home=str(home))
    said = f"notary {notary_fpr} operator {operator_fpr}" + (f" rules {rules}" if rules > 1 else "")
    text = (f"Pit: {name} {notary_fpr}\nGenesis: {said}\n\n"
            + ring.export(notary_fpr).strip() + "\n" + ring.export(operator_fpr).strip() + "\n")
    body = ring.clearsign(text, notary_fpr)
    now = time.time()
    with notary(pit) as n:
        n.genesis(body, now, rules)
    return pit


def operator_home(pit: Pit) -> Path:
    """The operator's GnuPG home, pit.conf's ``operator_home``: absolute, or
    relative to the pit.  Pits made before wrote it relative to the
    directory ``pit init`` ran in (``my-pit/operator.gnupg``), which is
    still read so from there when the pit holds no such path."""
    home = pit.get("operator_home")
    if not home:
        raise PitError(f"{pit.root}: no operator key configured")
    home = Path(home)
    if home.is_absolute() or (pit.root / home).exists() or not home.exists():
        return pit.root / home
    return home


def _operator(pit: Pit) -> tuple[Keyring, str]:
    from pit.keyring import Keyring
    return Keyring(operator_home(pit)), pit.operator


def pit_line(pit: Pit) -> str:
    """What a request's ``Pit:`` line says: the pit's name and its identity,
    the fingerprint of its notary key, so that a request signed for this pit
    is void in any other, whatever that one is called."""
    return f"{pit.name} {pit.notary}" if pit.notary else pit.name


def request_text(pit: Pit | str, account: str, ref: str, key: str, value: str) -> str:
    """The text a member signs.  Canonical when *value* is.  *pit* is the
    pit (its name and identity are written) or the ``Pit:`` value as text."""
    if not isinstance(pit, str):
        pit = pit_line(pit)
    return f"Pit: {pit}\nAccount: {account}\nRef: {ref}\n{key}: {value}\n"


def sign_request(pit: Pit, text: str, ring: Keyring, fpr: str, sender: str,
                 mime: bool = False) -> bytes:
    """A whole signed email for request *text* (inline clearsigned by default,
    PGP/MIME with *mime*)."""
    first = text.split("\n")[3] if text.count("\n") >= 4 else text.split("\n")[0]
    headers = [("From", sender), ("To", pit.address), ("Subject", first[:120]),
               ("Date", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())),
               ("Message-ID", f"<{time.time_ns()}.{os.getpid()}@{sender.partition('@')[2] or 'pit'}>")]
    from pit import signed          # here, not at the top: `pit replay` starts without email/crypto
    compose = signed.compose_pgp_mime if mime else signed.compose_clearsigned
    return compose(headers, text, ring, fpr)


def send_local(pit: Pit, raw: bytes) -> Path:
    """Deliver a message to a local pit's incoming maildir."""
    from moderator.notary import deliver
    return deliver(pit.not_a_replica(), raw)


def operator_request(pit: Pit, key: str, value: str, extra: str = "", now: bool = True):
    """Sign a request as the operator and notarize it at once.  Returns the
    notary's Decision."""
    ring, fpr = _operator(pit)
    with notary(pit) as n:
        ref = f"op-{n.seq + 1}"
        text = request_text(pit, "operator", ref, key, value) + extra
        raw = sign_request(pit, text, ring, fpr, f"{pit.name}-operator@{pit.domain}")
        return n.notarize([raw])[0]


def add_member(pit: Pit, armored_key: str, accounts: Iterable[str]):
    """Record a member: its key and the accounts it owns (a signed operator
    request carrying the key block).  A key that is revoked, expired or has
    no usable signing key is refused (KeyringError, saying which): it could
    never sign a request the notary accepts."""
    from pit.keyring import Keyring, KeyringError
    import shutil
    tmp = Keyring(pit.root / "tmp.gnupg")
    try:
        fpr = tmp.import_key(armored_key)
        key = tmp._key(fpr)
    finally:
        tmp.close()
        tmp.stop_agent()
        shutil.rmtree(tmp.home, ignore_errors=True)
    if key.revoked:
        raise KeyringError(f"key {fpr} is revoked; a revoked key cannot be a member")
    if key.expired:
        when = time.strftime("%Y-%m-%d", time.gmtime(key.expires)) if key.expires else "?"
        raise KeyringError(f"key {fpr} expired on {when}; renew it (gpg --quick-set-expire) "
                           "and export it again")
    if "S" not in key.capabilities:
        raise KeyringError(f"key {fpr} has no usable signing key (capabilities "
                           f"{key.capabilities or 'none'})")
    return fpr, member_request(pit, fpr, armored_key, accounts)


def member_request(pit: Pit, fpr: str, armored_key: str, accounts: Iterable[str]):
    """The operator's Member request for key *fpr* as it is, unchecked (what
    :func:`add_member` sends once the key is found fit)."""
    value = f"add {fpr} accounts {', '.join(sorted(accounts))}"
    return operator_request(pit, "Member", value, "\n" + armored_key.strip() + "\n")


def add_members(pit: Pit, members: Iterable[tuple[str | Exception, Iterable[str]]],
                batch: int = 1000, progress=None) -> list[tuple[str | None, "Decision"]]:
    """Record many members at once (moving a membership in): *members* are
    ``(armoured certificate, accounts)`` (an entry whose certificate is an
    exception, as :func:`read_certificates` gives for what it could not
    read, is refused with its message).  The keys go into the pit's keyring
    in one gpg import a shard (``Keyring.import_keys``); a key gpg did not
    import, or judges revoked, expired or without a usable signing key, is
    refused, as ``add_member`` refuses it.  Then one member record each is
    notarized (each carrying its key block, as ``add_member`` makes it),
    *batch* to a notary batch, signed in process with the operator's key.
    Returns ``(fingerprint or None, Decision)`` in the order given.
    ``progress(done)`` is called after each batch.  O(members) in process
    plus gpg's imports, O(shard) a key.
    """
    from moderator.notary import Decision
    from pit.keyring import Keyring
    from pit.signer import Signer
    members = [(a, sorted(accounts)) for a, accounts in members]
    readable = [i for i, (a, _) in enumerate(members) if not isinstance(a, Exception)]
    keyring = Keyring(pit.gnupg)
    imported = keyring.import_keys([members[i][0] for i in readable])
    found: list = [a for a, _ in members]
    for i, got in zip(readable, imported):
        found[i] = got
    ring, fpr = _operator(pit)
    signer = Signer.from_keyring(ring, fpr)
    sender = f"{pit.name}-operator@{pit.domain}"
    now = time.time()
    out: list = [None] * len(members)
    todo = []
    for i, ((armored, accounts), got) in enumerate(zip(members, found)):
        if not isinstance(got, str):
            out[i] = (None, Decision(False, str(got)))
            continue
        unfit = _unfit(keyring.store, got, now)
        if unfit:
            out[i] = (got, Decision(False, unfit))
        elif not accounts:
            out[i] = (got, Decision(False, f"member {got}: no accounts given"))
        else:
            todo.append(i)
    keyring.close()
    with notary(pit) as n:
        for start in range(0, len(todo), batch):
            part = todo[start:start + batch]
            first = n.seq + 1
            raws = []
            for j, i in enumerate(part):
                armored, accounts = members[i]
                text = (request_text(pit, "operator", f"op-{first}-{j}", "Member",
                                     f"add {found[i]} accounts {', '.join(accounts)}")
                        + "\n" + armored.strip() + "\n")
                raws.append(sign_request(pit, text, signer, fpr, sender))
            for i, d in zip(part, n.notarize(raws)):
                out[i] = (found[i], d)
            if progress:
                progress(start + len(part))
    return out


def _unfit(store, fpr: str, now: float) -> str:
    """Why certificate *fpr* cannot be a member, by gpg's judgement of it (the
    key store): revoked, expired, no usable signing key; "" when it can."""
    keys = store.certificate(fpr)
    primary = next((k for k in keys if k.fingerprint == fpr), None)
    if primary is None:
        return f"key {fpr}: gpg does not list it (no valid user ID or self-signature)"
    if primary.revoked:
        return f"key {fpr} is revoked; a revoked key cannot be a member"
    if primary.expires is not None and primary.expires <= now:
        when = time.strftime("%Y-%m-%d", time.gmtime(primary.expires)) if primary.expires else "?"
        return (f"key {fpr} expired on {when}; renew it (gpg --quick-set-expire) "
                "and export it again")
    if not any(k.can_sign and not k.revoked and (k.expires is None or k.expires > now)
               for k in keys):
        return f"key {fpr} has no usable signing key"
    return ""


def read_certificates(data: bytes) -> list:
    """The certificates of a keyring file (``gpg --export``, armoured or
    binary, one block or many), each armoured on its own, in file order;
    in the place of what cannot be a member's certificate, a KeyringError
    saying why in one line: an armour block that does not decode, bytes that
    are not OpenPGP packets (the rest of that block), a secret key, packets
    before any key, a second copy of a certificate.  Two different copies
    of one key are both refused (gpg would merge them: ask for one).
    O(len(data))."""
    from pit import openpgp
    from pit.keyring import KeyringError
    if data.lstrip()[:5] == b"-----":
        text = data.decode("ascii", "replace")
        blocks = []
        for n, block in enumerate(text.split("-----BEGIN PGP ")[1:], 1):
            try:
                label, binary = openpgp.dearmor("-----BEGIN PGP " + block)
            except openpgp.OpenPGPError as e:
                blocks.append(KeyringError(f"armour block {n}: {e}"))
                continue
            if label == "PRIVATE KEY BLOCK":
                blocks.append(KeyringError(f"armour block {n}: {_SECRET}"))
                continue
            if label != "PUBLIC KEY BLOCK":
                blocks.append(KeyringError(f"armour block {n} is a {label.lower()}, not a public "
                                           "key block (gpg --export -a)"))
                continue
            blocks.append(binary)
    else:
        blocks = [data]
    out: list = []
    for n, binary in enumerate(blocks, 1):
        if isinstance(binary, Exception):
            out.append(binary)
            continue
        certs: list = []          # [kind, [packets]]: kind "public", "secret" or "stray"
        try:
            for tag, _body, whole in openpgp.iter_packets(binary):
                if tag == openpgp.TAG_PUBLIC_KEY:
                    certs.append(["public", []])
                elif tag == 5:                           # a secret key packet
                    certs.append(["secret", []])
                elif not certs:
                    certs.append(["stray", []])
                certs[-1][1].append(whole)
            error = None
        except openpgp.OpenPGPError as e:
            error = KeyringError(f"{'armour block %d: ' % n if len(blocks) > 1 else ''}"
                                 f"not OpenPGP data from there on ({e}); what came before is read")
        for kind, packets in certs:
            if kind == "secret":
                out.append(KeyringError(_SECRET))
            elif kind == "stray":
                out.append(KeyringError(f"{len(packets)} packets before the first public key: "
                                        "not a certificate"))
            else:
                out.append(openpgp.armor("PUBLIC KEY BLOCK", b"".join(packets)))
        if error is not None:
            out.append(error)
    return _no_duplicates(out)


_SECRET = ("a secret key: a pit takes public keys only (gpg --export, not "
           "--export-secret-keys); not imported")


def _no_duplicates(certs: list) -> list:
    from pit.keyring import KeyringError, certificate_fingerprint
    seen: dict[str, int] = {}
    out = list(certs)
    for i, armored in enumerate(certs):
        if isinstance(armored, Exception):
            continue
        try:
            fpr = certificate_fingerprint(armored)
        except KeyringError:
            continue                      # said again, with its reason, by the import
        if fpr not in seen:
            seen[fpr] = i
            continue
        first = seen[fpr]
        if certs[first] == armored:
            out[i] = KeyringError(f"key {fpr}: the same certificate again (certificate "
                                  f"{first + 1} of this file)")
        else:
            why = (f"key {fpr}: two different certificates in this file (certificates "
                   f"{first + 1} and {i + 1}); merge them with gpg and export one")
            out[i] = KeyringError(why)
            out[first] = KeyringError(why)
    return out


def filter_key(pit: Pit, name: str) -> tuple[Keyring, str]:
    """The signing key of the pit's filter *name*, made and made a member on first use."""
    from pit.keyring import Keyring
    ring = Keyring(pit.filters_gnupg)
    key = slug(name)
    fpr = pit.get(f"filter.{key}")
    if fpr:
        return ring, fpr
    fpr = ring.generate(name, f"{key}@{pit.domain}", algo="ed25519")
    words = name.split(" ")
    accounts = [f"{words[0]}:{t}" for t in words[1:]] or [name]
    _, d = add_member(pit, ring.export(fpr), accounts)
    if not d.accepted:
        raise FilterKeyRefused(f"refused by the notary: {d.reason}")
    pit.set(**{f"filter.{key}": fpr})
    return ring, fpr


# -- filters -----------------------------------------------------------------------

def specialist_jobs(pit: Pit) -> list[list[str]]:
    """The specialists the pit runs, each as ``["specialist", WORD, ...]``:
    one for each member key granted specialist accounts (its words, tickers
    and ranges: pit.tickerset), then one for each instrument that none of
    those serves (its key made when it first posts).  What the notary
    knows (its members and instruments, as it starts): O(members +
    instruments) besides the notary's start.  A replica has no notary: its
    archive's member and instrument records are read (stamps only),
    O(their bytes)."""
    from pit.tickerset import TickerSet, TickerSetError
    def specialist_keys(members) -> set[tuple[str, ...]]:
        return {tuple(a.partition(":")[2] for a in accounts if a.startswith("specialist:"))
                for _, accounts in members}

    if pit.is_replica:
        members, tickers = _members_and_tickers(pit)
        keys = specialist_keys(members)
    else:
        with notary(pit) as nt:            # its members read as they stream, not kept
            keys, tickers = specialist_keys(nt.members.items()), set(nt.registry_instruments)
    jobs, sets = [], []
    for words in sorted(keys - {()}):
        try:
            sets.append(TickerSet(words))
        except TickerSetError:
            continue
        jobs.append(["specialist", *sets[-1].words])
    jobs += [["specialist", t] for t in sorted(tickers) if not any(t in s for s in sets)]
    return jobs


def _members_and_tickers(pit: Pit) -> tuple[list, set[str]]:
    """``(members.items(), tickers)`` read from the archive's member and
    instrument records, as the notary folds them."""
    from pit import kinds
    members: dict[str, tuple[str, ...]] = {}
    tickers: set[str] = set()
    for _, msg in Archive(pit.root).records_of_kind(1, ("member", "instrument")):
        st = mbox.stamp(msg)
        text = st.get("x-pit-request", "")
        try:
            ins = kinds.parse(st.get("x-pit-kind", ""), text)
        except (ValueError, KeyError):
            continue
        if st.get("x-pit-kind") == "instrument":
            tickers.add(ins.ticker)
        elif ins.action == "add":
            members[ins.fingerprint] = tuple(ins.accounts)
        else:
            members.pop(ins.fingerprint, None)
    return list(members.items()), tickers


def specialist_of(pit: Pit, ticker: str, jobs: list[list[str]] | None = None) -> list[str]:
    """The words of the specialist that serves *ticker* (``["A-M"]``), or
    ``[ticker]`` when none does yet."""
    from pit.tickerset import TickerSet
    for job in jobs if jobs is not None else specialist_jobs(pit):
        if ticker in TickerSet(job[1:]):
            return job[1:]
    return [ticker]


def filter_class(kind: str):
    import importlib
    if kind not in FILTERS:
        raise PitError(f"unknown filter {kind!r}: one of {', '.join(FILTERS)}")
    mod, _, cls = FILTERS[kind].partition(":")
    return getattr(importlib.import_module(mod), cls)


# Records after the indexed checkpoint from which filter_position asks the
# notary's store first (docs/pit-book.md, "The filter's position from the
# notary's store").
STORE_AFTER = 4096


def filter_position(pit: Pit, name: str, archive: Archive | None = None
                    ) -> tuple[tuple[int, int] | None, int]:
    """Where filter *name* stands in the archive: ``((record, covered), last)``
    with the record holding its newest checkpoint and the ``Seq`` that
    covers (or None), and the ``To-Seq`` of its newest report if that
    report is archived after the newest checkpoint (its own checkpoint is
    not archived: a run in progress, or one stopped between the two), else
    0.  So ``last`` is not how far the filter has reported: once the
    checkpoint follows the report it is 0, and ``covered`` says how far.
    ``checkpoints/index`` or the notary's store (``notarystate.filter_rows``:
    where the filter stood at the record the store is exact at), whichever
    is further on, says where to start (the store is read only when
    ``STORE_AFTER`` or more records follow the indexed checkpoint); the
    archive after that record is scanned (stamps only), so the answer is
    exact, and the same, whether
    the index and the store are up to date, behind or gone.  *archive* is
    the pit's :class:`Archive` when the caller has one (what it found
    walking its volumes is kept there).  O(records after the indexed
    checkpoint or the store's record)."""
    ck = None
    idx = pit.checkpoints / "index"
    if idx.exists():
        for line in idx.read_text().splitlines():
            w = line.split(" ")
            if len(w) == 3 and w[0] == slug(name):
                ck = (int(w[1]), int(w[2]))
    last = 0
    start = ck[0] + 1 if ck else 1
    arch = archive if archive is not None else Archive(pit.root)
    # The store only pays when the scan after the index's checkpoint is long
    # (a daemon's run, with its checkpoint indexed, scans a few records).
    kept = None
    if arch.last_seq() - start >= STORE_AFTER:
        from pit.notarystate import filter_rows     # (with SQLite and OpenSSL: ~20 ms to load)
        kept = filter_rows(arch, name)
    if kept is not None and kept[0] >= start:
        at, checkpoint, report = kept
        ck = (checkpoint[1], checkpoint[0]) if checkpoint else None
        if report and (ck is None or report[2] > ck[0]):
            last = report[1]        # a report archived after the newest checkpoint
        start = at + 1
    for seq, msg in arch.records_of_kind(start, ("report", "checkpoint")):
        st = mbox.stamp(msg)
        kind = st.get("x-pit-kind")
        if kind in ("checkpoint", "report"):
            who, _, span = st.get("x-pit-request", "").rpartition(" ")
            if who == name:
                if kind == "checkpoint":
                    ck = (seq, int(span))
                    last = 0            # reports before it are checkpointed
                else:
                    last = int(span.rpartition("-")[2])
    return ck, last


def latest_checkpoint(pit: Pit, name: str) -> tuple[int, int] | None:
    """``(record seq, covered seq)`` of filter *name*'s newest archived checkpoint."""
    return filter_position(pit, name)[0]


def _replay_head(pit: Pit, flt: Filter, arch: Archive, from_start: bool,
                 checkpoint: tuple[int, int] | None | bool) -> tuple[list, int]:
    """Where a replay starts: the checkpoint record to send first (*checkpoint*
    True: the filter's newest, none *from_start*; None or ``(record, covered)``:
    as given) as ``[(seq, entry, body_start)]`` or ``[]``, and the first record
    after what it covers."""
    if checkpoint is True:
        checkpoint = None if from_start else filter_position(pit, flt.name, arch)[0]
    if not checkpoint:
        return [], 1
    rec, covered = checkpoint
    return list(arch.read_entries(rec, rec)), covered + 1


def replay_entries(pit: Pit, flt: Filter, from_start: bool = False, upto: int | None = None,
                   checkpoint: tuple[int, int] | None | bool = True
                   ) -> Iterator[tuple[bytes, int]]:
    """The filter's input: its newest checkpoint (*checkpoint* True: look it
    up; None or a ``(record, covered)`` pair: as given), then every later
    record up to *upto* that concerns it, as ``(entry, body_start)``: mbox
    entries copied byte for byte from the archive (``From `` line and mboxrd
    quoting as stored), what ``pit replay`` writes.  Only the entries
    yielded are copied out of the archive (a large record the filter does
    not want, a seal or another filter's report, is read no further than
    its stamp).  O(new records)."""
    arch = Archive(pit.root)
    head, start = _replay_head(pit, flt, arch, from_start, checkpoint)
    for _, entry, body in head:
        yield entry, body
    wants, stamp = flt.wants, mbox.stamp
    # An order record for one of the filter's order_tickers is wanted (the
    # promise of Filter.order_tickers): known by one match, without a stamp.
    order = mbox.order_entry(flt.order_tickers) if flt.order_tickers else None
    for _, buf, pos, body, end in arch.entry_spans(start, upto):
        if order is not None:
            m = order(buf, pos, end)
            if m is not None and m[6][-1] != 32:         # (32: a request ending in a space)
                yield buf[pos:end], body - pos
                continue
        if end - body <= ENTRY_HEAD:           # most records: copied whole, as entry_stamp would
            entry = buf[pos:end]
            if wants(stamp(entry, body - pos)):
                yield entry, body - pos
            continue
        st, entry = entry_stamp(buf, pos, body, end)
        if wants(st):
            yield (buf[pos:end] if entry is None else entry), body - pos


def replay_pieces(pit: Pit, flt: Filter, from_start: bool = False, upto: int | None = None,
                  checkpoint: tuple[int, int] | None | bool = True
                  ) -> Iterator[tuple[int, bytes]]:
    """What `pit replay` writes: the bytes of :func:`replay_entries`'s
    entries one after the other, in pieces ``(seq, piece)`` (*seq*: the
    last record in the piece), a run of records at a
    time (``Archive.entry_runs``): one copy out of the archive per run
    instead of one per entry, and most entries found and recognised by one
    pattern search each (docs/pit-book.md, "The replay and the specialist
    on one core").  O(new records)."""
    if not flt.order_tickers:
        for entry, body in replay_entries(pit, flt, from_start, upto, checkpoint):
            yield int(entry[body + 11:entry.index(b"\n", body)]), entry   # (X-Pit-Seq: N)
        return
    arch = Archive(pit.root)
    head, start = _replay_head(pit, flt, arch, from_start, checkpoint)
    for rec, entry, _ in head:
        yield rec, entry
    wants, stamp = flt.wants, mbox.stamp

    def wanted(buf, pos: int, body: int, end: int) -> bool:      # as replay_entries decides
        if end - body <= ENTRY_HEAD:
            return wants(stamp(buf[pos:end], body - pos))
        return wants(entry_stamp(buf, pos, body, end)[0])

    yield from arch.entry_runs(mbox.order_entry_head(flt.order_tickers), wanted, start, upto)


def replay(pit: Pit, flt: Filter, from_start: bool = False, upto: int | None = None,
           checkpoint: tuple[int, int] | None | bool = True) -> Iterator[bytes]:
    """:func:`replay_entries` as message bytes, for running a filter in process."""
    unquote = mbox.unquote
    for entry, body in replay_entries(pit, flt, from_start, upto, checkpoint):
        yield unquote(entry[body:-1])      # without the separating newline


def run_filter(pit: Pit, kind: str, args: list[str], post_output: bool = True):
    """Replay, run and (by default) post one filter.  Returns
    ``(filter, decisions)``.

    Nothing is posted twice: if the filter's last report reached the
    archive but its checkpoint did not (a crash between the two), the run
    first rebuilds the state as of that report and posts only the
    checkpoint, then goes on from there."""
    import io
    cls = filter_class(kind)
    name = cls(args).name
    decisions = []
    ck, reported = filter_position(pit, name)
    if post_output and reported > (ck[1] if ck else 0):
        flt = cls(args)
        out = io.BytesIO()
        run_filter_stream(flt, replay(pit, cls(args), upto=reported, checkpoint=ck), out)
        last = list(mbox.iter_messages(out.getvalue()))[-1]      # the final checkpoint
        decisions += post(pit, name, [last])
        ck = latest_checkpoint(pit, name)
    flt = cls(args)
    out = io.BytesIO()
    run_filter_stream(flt, replay(pit, cls(args), checkpoint=ck), out)
    if post_output and flt.lines:
        decisions += post(pit, flt.name, mbox.iter_messages(out.getvalue()))
    return flt, decisions


def post(pit: Pit, name: str, messages: Iterable[bytes]):
    """Sign a filter's new (unstamped) messages with its key and notarize them."""
    from pit import signed
    ring, fpr = filter_key(pit, name)
    raws = []
    for msg in messages:
        if mbox.stamp(msg):
            continue                       # passed through or re-emitted: already a record
        head, _, body = msg.partition(b"\n\n")
        headers = [tuple(h.split(": ", 1)) for h in head.decode("ascii").split("\n")
                   if not h.lower().startswith(("mime-version", "content-type",
                                                "content-transfer-encoding"))]
        raws.append(signed.compose_clearsigned(headers, body.decode("utf-8"), ring, fpr))
    if not raws:
        return []
    with notary(pit) as n:
        return n.notarize(raws)            # the notary notes checkpoints in checkpoints/index
