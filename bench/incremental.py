"""Incremental audit: ``pit audit`` of 10,000 new records on a copy whose
auditor's state is kept at record N, for N of 100k / 1M / 10M records.

    python -m bench.incremental [--sizes 100000,1000000] [--new 10000] [--runs 3]

Target: <= 10 s at 10,000,000 records, and flat (the same at every N).

Each pit is built once and kept under ``$PIT_BENCH_CACHE`` (default
``bench/out``; the session's shared cache is ``/work/bench-cache``):

* a real start: genesis, USD, ACME and BULK, ten traders with real keys
  made members and funded, their transfers notarized by the real notary,
  the transfers filter and the ACME specialist run and posted, then a full
  ``pit audit`` (which keeps the auditor's state);
* the history: order records for BULK (no specialist serves it) by a
  trader, stamped with the notary's own functions (``request_fields``,
  ``stamp_text``), chained, sealed every 10,000 records with signed tree
  heads signed by the notary's key (in process, as the notary signs
  them).  Their signature blocks are dummies, as bench.replay's are:
  signing and verifying millions of orders is the moderator's and the
  full audit's business, not this figure's.  The auditor's state over
  them is made by the audit itself, ``pit audit`` run after every chunk of
  250,000 records with only the members' signature check switched off
  (chain, digests, stamps, seals with gpg, tree heads, filters: all as
  always);
* the new records: *new* real signed orders from the ten traders
  (bench.fixtures, a mix of every order type), stamped as above, sealed
  every 1,000.

A larger pit grows from the largest smaller one in the cache, which is
copied and never changed: the copy is cut back to the head its auditor's
state was kept at (its new records taken off, their signed mails kept),
the history goes on from there chunk by chunk as above, and the same new
records are stamped again after it.  A build stopped half way (a pit
marked ``building``) goes on from the last chunk its audit verified.

Then each run puts back the state kept at record N and times ``pit.audit.
audit(pit, remember=True)``: the volumes before checked unchanged, every
new signature verified, stamps, chain, seals with stock gpg, the tree, the
consistency proof, both filters replayed over the new records, the new
state kept.  Min and median of *runs*, the CPU of the audit's process and
of its signature-checking workers, and the peak memory of one more run in
a fresh process; ``uptime``'s load before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import time
from pathlib import Path

from bench.fixtures import OUT, fresh_pit, signed_orders
from moderator.notary import request_fields, stamp_time, stamp_text
from pit import mbox, merkle, message, ops, signed, testkeys
from pit.archive import Archive, record_hash
from pit.pitdir import Pit

TARGET = 10.0
CHUNK = 250_000           # history records a state-building audit takes at a time
SEAL_EVERY = 10_000       # history records a seal covers
NEW_SEAL_EVERY = 1_000    # new records a seal covers
TRADERS = 10
FAKE_SIG = ("-----BEGIN PGP SIGNATURE-----\n\n"
            "iHUEARYKAB0WIQQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
            "=AAAA\n-----END PGP SIGNATURE-----\n")


def cache_dir() -> Path:
    return Path(os.environ.get("PIT_BENCH_CACHE", OUT))


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


class _Writer:
    """Appends records as the notary stamps them: chain, time, tree, seals."""

    def __init__(self, pit, tree: merkle.Frontier):
        """*tree*: the tree of the records before the archive's last (a seal:
        the tree a copy's auditor verified)."""
        from pit.signer import KeySigner
        from pit.keyring import Keyring
        self.pit = pit
        self.arch = Archive(pit.root)
        self.seq, self.head = self.arch.last_seq(), self.arch.last_hash()
        assert tree.size == self.seq - 1, (tree.size, self.seq)
        self.tree = tree.copy()
        self.tree.append(merkle.leaf_hash(bytes.fromhex(self.head)))
        from datetime import datetime, timezone
        last = mbox.stamp(next(self.arch.read(self.seq, self.seq))[1])["x-pit-time"]
        self.us = int(datetime.strptime(last[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=timezone.utc).timestamp()) * 1_000_000 + int(last[20:26])
        self.unsealed: list[tuple[int, str]] = []
        self.out: list = []
        ring = Keyring(pit.gnupg)
        self.signer = KeySigner(ring, pit.notary)
        ring.stop_agent()

    def _append(self, original: bytes, signer: str, fields) -> None:
        self.seq += 1
        self.us += 7
        digest = hashlib.sha256(original).hexdigest()
        rec = stamp_text(self.seq, self.us, self.head, digest, signer, fields).encode() + original
        self.head = record_hash(rec)
        self.tree.append(merkle.leaf_hash(bytes.fromhex(self.head)))
        self.out.append((rec, "notary", stamp_time(self.us)))
        return rec

    def record(self, original: bytes, signer: str, fields) -> None:
        self._append(original, signer, fields)
        self.unsealed.append((self.seq, self.head))

    def seal(self) -> None:
        from moderator.notary import _with_body
        first = self.unsealed[0][0]
        when = stamp_time(self.us + 7)
        seal = message.Seal(self.pit.name, first, tuple(h for _, h in self.unsealed),
                            self.tree.size, self.tree.root().hex(), when)
        env = message.Envelope(self.pit.notary_address, self.pit.address, when)
        msg = _with_body(message.write_message(seal, env),
                         self.signer.clearsign(message.seal_text(seal)))
        self._append(msg, self.pit.notary,
                     [("X-Pit-Pit", self.pit.name), ("X-Pit-Kind", "seal"),
                      ("X-Pit-Account", "notary"), ("X-Pit-Ref", f"seal-{seal.last}"),
                      ("X-Pit-Request", f"{seal.first}-{seal.last}")])
        self.unsealed = []

    def flush(self) -> None:
        if self.out:
            self.arch.append(self.out)
            self.out = []


def _registry(pit):
    """The pit's currencies and instruments as the notary resolves requests:
    the notary's own fold of the start's records into a state of its own
    (the registry is all in the start; the history and the new records are
    orders and seals), so that no notary follows the long archive."""
    import tempfile
    from pit import notarystate
    with tempfile.TemporaryDirectory(prefix=f"bench-registry-{os.getpid()}-") as tmp:
        st = notarystate.NotaryState.create(Path(tmp) / notarystate.STATE_NAME,
                                            notarystate.binding_of(pit), pit.operator, wal=False)
        try:
            st.begin()
            notarystate.fold(st, Archive(pit.root), 1, 1_000)
            st.commit()
            return st.registry_instruments, st.currencies, st.fees
        finally:
            st.close()


def _trusting_signed_record(self, seq: int, st: dict, original: bytes) -> None:
    """pit.audit._Audit.signed_record without the signature check (the
    history's dummy signatures): everything else as always."""
    from pit.audit import STAMP_FIELDS, AuditFailure
    body = original.partition(b"\n\n")[2].decode()
    text = body.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----")[0]
    accounts = self.members.get(st.get("x-pit-signer", ""))
    if accounts is None:
        raise AuditFailure(seq, "signed by a key that was not a member then")
    self.res.signatures += 1
    fields = self.expected_fields(seq, st, text, accounts)
    if fields != [(k, st[k]) for k in STAMP_FIELDS if k in st]:
        raise AuditFailure(seq, "the stamp does not say what the signed text says")


def build(n: int, new: int) -> Path:
    """The pit of *n* records with the auditor's state kept at its last
    seal, and *new* records after it; cached.  Returns its directory.

    A larger pit grows from the largest smaller one cached (its history,
    the auditor's state at its N, the head it verified, copied; its new
    records taken off and put back after the longer history), and a build
    stopped half way goes on from the last chunk its audit verified."""
    root = cache_dir() / f"audit-incremental-n{n}-new{new}"
    if (root / "built").exists():
        return root
    t0 = time.time()
    if (root / RESUME).exists():
        print(f"  going on with {root} from its last verified chunk", flush=True)
    else:
        if root.exists():
            shutil.rmtree(root)
        base = _base(n, new)
        if base is None:
            _start(root, new)
        else:
            _grow_from(base, root)
    _history(root, n, t0)
    state = root / "pit" / "audit-state" / "state.sqlite"
    shutil.copy(state, root / "state-at-n.sqlite")
    shutil.copy(root / "pit" / "verified.conf", root / "verified-at-n.conf")
    seq = _new_records(root)
    testkeys.stop_agents(root)
    (root / RESUME).unlink()
    (root / "built").write_text(f"{n} {new} {seq}\n")
    print(f"  built {root} in {time.time() - t0:.0f} s", flush=True)
    return root


RESUME = "building"           # a build under way: history verified to verified.conf's seal
NEW = "new.mbox"              # the new records' signed mails, to put after the history


def _start(root: Path, new: int) -> None:
    """A new pit: the real start, fully audited; the traders' signed orders
    kept in *root*/new.mbox."""
    from pit import audit as audit_mod
    t0 = time.time()
    pit = fresh_pit(root / "pit", max_message_size=str(64 << 20))
    assert ops.operator_request(pit, "Instrument", "BULK USD tick 0.01 lot 1").accepted
    raws = signed_orders(pit, new, "ed25519", traders=TRADERS, cache=False)
    with ops.notary(pit) as n:
        d = n.notarize(raws[:TRADERS])                    # the traders' transfers
    assert all(x.accepted for x in d), [x.reason for x in d if not x.accepted]
    for kind, args in (("transfers", []), ("specialist", ["ACME"])):
        ops.run_filter(pit, kind, args)
    r = audit_mod.audit(pit.root, remember=True)
    assert r.ok and r.mode == "full", r.problem
    assert _verified(pit.root)[0] == Archive(pit.root).last_seq()   # the history starts at a seal
    _keep_mails(root / NEW, raws[TRADERS:])
    (root / RESUME).write_text("")
    print(f"  start: {r.records} records, audited in full, {time.time() - t0:.1f} s", flush=True)


def _base(n: int, new: int) -> Path | None:
    """The largest built pit of fewer than *n* records and the same *new*."""
    best = None
    for d in cache_dir().glob(f"audit-incremental-n*-new{new}"):
        m = d.name[len("audit-incremental-n"):].split("-")[0]
        if m.isdigit() and int(m) < n and (d / "built").exists() and (
                best is None or int(m) > best[0]):
            best = (int(m), d)
    return best and best[1]


def _grow_from(base: Path, root: Path) -> None:
    """*root* as a copy of the built *base* (never changed) cut back to the
    head its auditor's state was kept at; its new records' signed mails
    kept in *root*/new.mbox."""
    import subprocess
    t0 = time.time()
    tmp = root.with_name(root.name + ".copying")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    subprocess.run(["cp", "-a", "--reflink=auto", f"{base}/.", str(tmp)], check=True)
    pit_dir = tmp / "pit"
    for name in ("built", "state-at-n.sqlite", "verified-at-n.conf"):
        (tmp / name).unlink()
    shutil.copy(base / "state-at-n.sqlite", pit_dir / "audit-state" / "state.sqlite")
    shutil.copy(base / "verified-at-n.conf", pit_dir / "verified.conf")
    seal, _ = _verified(pit_dir)
    arch = Archive(pit_dir)
    mails = []
    for _, msg in arch.read(seal + 1):
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") != "seal":
            mails.append(mbox.split_stamp(msg)[1])
    _keep_mails(tmp / NEW, mails)
    _cut(arch, seal)
    (tmp / RESUME).write_text("")
    tmp.rename(root)
    print(f"  copied {base.name} ({len(mails):,} new mails kept, archive cut back to record "
          f"{seal:,}) in {time.time() - t0:.0f} s", flush=True)


def _keep_mails(path: Path, raws) -> None:
    with open(path, "wb") as f:
        for raw in raws:
            f.write(mbox.format_message(raw, "bench@traders.example", 0))


def _verified(pit_dir: Path) -> tuple[int, merkle.Frontier]:
    """The seal a copy's auditor verified and its tree (of the records before it)."""
    return _verified_conf(pit_dir / "verified.conf")


def _verified_conf(path: Path) -> tuple[int, merkle.Frontier]:
    import configparser
    cp = configparser.ConfigParser()
    cp.read(path)
    v = cp["verified"]
    return int(v["seal"]), merkle.Frontier.from_text(v["frontier"])


def _cut(arch: Archive, seq: int) -> None:
    """Take every record after *seq* off the bench's archive (a stopped
    build's unverified tail, or a smaller pit's new records)."""
    from pit.archive import Volume
    vols = arch.volumes()
    keep = [v for v in vols if v.first <= seq]
    last = keep[-1]
    if last.last != seq:
        end = next(e for s, _, _, _, e in arch.entry_spans(seq, seq))
        keep[-1] = Volume(name=last.name, first=last.first, last=seq,
                          count=seq - last.first + 1, bytes=end)
    arch._write_index(keep)
    for v in vols:
        if v.first > seq:
            (arch.dir / v.name).unlink()
    os.truncate(arch.dir / keep[-1].name, keep[-1].bytes)


def _history(root: Path, n: int, t0: float) -> None:
    """Order records (dummy signatures) up to record *n*, the auditor's
    state built by the audit itself every CHUNK records."""
    from pit import audit as audit_mod
    pit = Pit(root / "pit")
    seal, tree = _verified(pit.root)
    _cut(Archive(pit.root), seal)
    instruments, currencies, fees = _registry(pit)
    members = _members(pit.root)
    w = _Writer(pit, tree)
    trader = "trader00"
    fpr = next(f for f, a in members.items() if a == trader)
    line, address = ops.pit_line(pit), pit.address

    def order(ref: str) -> str:
        return f"Pit: {line}\nAccount: {trader}\nRef: {ref}\nOrder: buy 1 BULK at 1.00\n"

    def fields_of(ref: str) -> list[tuple[str, str]]:
        return request_fields(message.parse_request(order(ref)), instruments, currencies, fees, {})

    # The orders differ in their ref only, and so do their stamps: the
    # notary's fields are made once and the ref put in (the audit checks
    # every stamp against its text as always; checked here at each chunk).
    stamp = fields_of("b0")
    assert [v for k, v in stamp if k == "X-Pit-Ref"] == ["b0"], stamp
    saved = audit_mod._Audit.signed_record, audit_mod.PARALLEL_MIN_RECORDS
    audit_mod._Audit.signed_record = _trusting_signed_record
    audit_mod.PARALLEL_MIN_RECORDS = 1 << 62
    try:
        while w.seq < n:
            t1, c1, s1 = time.time(), time.process_time(), w.seq
            ref = f"b{w.seq + 1}"
            assert fields_of(ref) == [(k, ref if k == "X-Pit-Ref" else v) for k, v in stamp]
            for _ in range(min(CHUNK, n - w.seq)):
                ref = f"b{w.seq + 1}"      # unique: a record's seq is never an earlier one's
                text = order(ref)
                fields = [(k, ref if k == "X-Pit-Ref" else v) for k, v in stamp]
                original = (f"From: {trader}@traders.example\nTo: {address}\n"
                            f"Subject: buy 1 BULK\nMessage-ID: <{ref}@traders.example>\n"
                            f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
                            f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{text}"
                            + FAKE_SIG).encode()
                w.record(original, fpr, fields)
                if len(w.unsealed) >= SEAL_EVERY:
                    w.seal()
                    w.flush()
            if w.unsealed:
                w.seal()
            w.flush()
            t2, c2 = time.time(), time.process_time()
            r = audit_mod.audit(pit.root, remember=True)
            assert r.ok and r.mode == "incremental", r.problem or r.fallback
            t3, c3 = time.time(), time.process_time()
            k = w.seq - s1
            print(f"  history: {w.seq:,} records, state kept: {k:,} written in {t2 - t1:.0f} s "
                  f"({k / (t2 - t1):,.0f}/s, CPU {c2 - c1:.1f} s), audited in {t3 - t2:.0f} s "
                  f"({k / (t3 - t2):,.0f}/s, CPU {c3 - c2:.0f} s); "
                  f"{time.time() - t0:.0f} s in all, {_load()}", flush=True)
    finally:
        audit_mod._Audit.signed_record, audit_mod.PARALLEL_MIN_RECORDS = saved


def _new_records(root: Path) -> int:
    """The new records: the traders' real signed orders kept in new.mbox,
    stamped as the notary stamps them (what it would refuse left out),
    sealed every NEW_SEAL_EVERY.  Returns the last record's seq."""
    from moderator.notary import Refused
    pit = Pit(root / "pit")
    seal, tree = _verified(pit.root)
    _cut(Archive(pit.root), seal)
    w = _Writer(pit, tree)
    registry = _registry(pit)
    signers = {a: f for f, a in _members(pit.root).items()}
    refs: dict = {}
    for raw in mbox.iter_file(root / NEW):
        s = signed.extract(raw)
        req = message.parse_request(s.text)
        try:
            fields = request_fields(req, *registry, refs)
        except Refused:
            continue                      # the notary would refuse it: not a record
        w.record(raw, signers[req.account.partition(":")[0]], fields)
        st = dict(fields)
        if st.get("X-Pit-Ref"):
            refs[req.account, req.ref] = (w.seq, st.get("X-Pit-Ticker", ""))
        if len(w.unsealed) >= NEW_SEAL_EVERY:
            w.seal()
    if w.unsealed:
        w.seal()
    w.flush()
    return w.seq


def _members(pit_dir: Path) -> dict:
    """fingerprint -> first account of each member, as the audit kept them."""
    import sqlite3
    db = sqlite3.connect(pit_dir / "audit-state" / "state.sqlite")
    try:
        return {f: a.split(",")[0] for f, a in db.execute("SELECT fingerprint, accounts FROM members")}
    finally:
        db.close()


def measure(root: Path, runs: int) -> list[float]:
    from pit.audit import audit
    pit_dir = root / "pit"
    times, cpus = [], []
    for _ in range(runs):
        shutil.copy(root / "state-at-n.sqlite", pit_dir / "audit-state" / "state.sqlite")
        shutil.copy(root / "verified-at-n.conf", pit_dir / "verified.conf")
        t, c, w = time.perf_counter(), time.process_time(), _children_cpu()
        r = audit(pit_dir, remember=True)
        times.append(time.perf_counter() - t)
        cpus.append((time.process_time() - c, _children_cpu() - w))
        assert r.ok and r.mode == "incremental", r.problem or r.fallback
    testkeys.stop_agents(root)
    print(f"    {r.records - r.since:,} records checked after record {r.since:,}: "
          f"{r.signatures} signatures in all", flush=True)
    own = [a for a, _ in cpus]
    total = [a + b for a, b in cpus]
    print(f"    CPU: the audit's process min {min(own):.2f} s, median {statistics.median(own):.2f} s; "
          f"with its signature-checking workers min {min(total):.2f} s, median "
          f"{statistics.median(total):.2f} s", flush=True)
    own_peak, workers_peak = _memory(root)
    print(f"    memory: the audit's process peak (VmHWM) {own_peak / 2**20:.0f} MiB; its "
          f"signature-checking workers' peak (ru_maxrss, pages shared with the audit "
          f"counted) {workers_peak / 2**20:.0f} MiB", flush=True)
    return times


def _memory(root: Path) -> tuple[int, int]:
    """(peak RSS of the audit's own process, largest peak RSS of its
    workers) in bytes, from one more run in a fresh process: VmHWM of its
    memory after exec (the bench process's pages are not counted)."""
    import subprocess
    import sys
    pit_dir = root / "pit"
    shutil.copy(root / "state-at-n.sqlite", pit_dir / "audit-state" / "state.sqlite")
    shutil.copy(root / "verified-at-n.conf", pit_dir / "verified.conf")
    code = ("import resource, sys\n"
            "from pit.audit import audit\n"
            "r = audit(sys.argv[1], remember=True)\n"
            "assert r.ok and r.mode == 'incremental', r.problem or r.fallback\n"
            "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            "print(int(hwm.split()[1]) * 1024, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(pit_dir)], capture_output=True,
                         text=True, check=True).stdout.split()
    testkeys.stop_agents(root)
    return int(out[0]), int(out[1])


def _children_cpu() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.incremental",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build-only", action="store_true",
                    help="build (or find) the pits and stop: the timing runs are what "
                         "takes the bench lock")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    print(f"incremental audit of {args.new:,} new records ({_load()}, {os.cpu_count()} cores)")
    for n in sizes:
        root = build(n, args.new)
        if args.build_only:
            continue
        times = measure(root, args.runs)
        best = min(times)
        print(f"  {n:>12,} records: pit audit of {args.new:,} new: min {best:.2f} s, median "
              f"{statistics.median(times):.2f} s over {len(times)} runs "
              f"(target <= {TARGET:.0f} s: {'ok' if best <= TARGET else 'ABOVE target'})",
              flush=True)
    print(f"({_load()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
