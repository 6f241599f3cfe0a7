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

Then each run puts back the state kept at record N and times ``pit.audit.
audit(pit, remember=True)``: the volumes before checked unchanged, every
new signature verified, stamps, chain, seals with stock gpg, the tree, the
consistency proof, both filters replayed over the new records, the new
state kept.  Min and median of *runs*; ``uptime``'s load before and after.
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

    def __init__(self, pit):
        from pit.signer import KeySigner
        from pit.keyring import Keyring
        self.pit = pit
        self.arch = Archive(pit.root)
        self.seq, self.head = self.arch.last_seq(), self.arch.last_hash()
        self.tree = merkle.Frontier()
        for _, msg in self.arch.read():
            self.tree.append(merkle.leaf_hash(bytes.fromhex(record_hash(msg))))
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
    """The pit's currencies and instruments as the notary resolves requests."""
    from moderator.notary import Notary
    n = Notary(pit)
    return n.registry_instruments, n.currencies, n.fees


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
    seal, and *new* records after it; cached.  Returns its directory."""
    from pit import audit as audit_mod
    root = cache_dir() / f"audit-incremental-n{n}-new{new}"
    done = root / "built"
    if done.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    t0 = time.time()
    pit = fresh_pit(root / "pit", max_message_size=str(64 << 20))
    assert ops.operator_request(pit, "Instrument", "BULK USD tick 0.01 lot 1").accepted
    raws = signed_orders(pit, new, "ed25519", traders=TRADERS, cache=False)
    d = ops.notary(pit).notarize(raws[:TRADERS])          # the traders' transfers
    assert all(x.accepted for x in d), [x.reason for x in d if not x.accepted]
    for kind, args in (("transfers", []), ("specialist", ["ACME"])):
        ops.run_filter(pit, kind, args)
    r = audit_mod.audit(pit.root, remember=True)
    assert r.ok and r.mode == "full", r.problem
    print(f"  start: {r.records} records, audited in full, {time.time() - t0:.1f} s", flush=True)
    instruments, currencies, fees = _registry(pit)
    members = _members(root / "pit")
    w = _Writer(pit)
    trader = "trader00"
    fpr = next(f for f, a in members.items() if a == trader)
    line = ops.pit_line(pit)
    t1 = time.time()
    saved = audit_mod._Audit.signed_record, audit_mod.PARALLEL_MIN_RECORDS
    audit_mod._Audit.signed_record = _trusting_signed_record
    audit_mod.PARALLEL_MIN_RECORDS = 1 << 62
    try:
        i = 0
        while w.seq < n:
            for _ in range(min(CHUNK, n - w.seq)):
                i += 1
                text = f"Pit: {line}\nAccount: {trader}\nRef: b{i}\nOrder: buy 1 BULK at 1.00\n"
                req = message.parse_request(text)
                fields = request_fields(req, instruments, currencies, fees, {})
                original = (f"From: {trader}@traders.example\nTo: {pit.address}\n"
                            f"Subject: buy 1 BULK\nMessage-ID: <b{i}@traders.example>\n"
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
            r = audit_mod.audit(pit.root, remember=True)
            assert r.ok and r.mode == "incremental", r.problem or r.fallback
            print(f"  history: {w.seq:,} records, state kept ({time.time() - t1:.0f} s)", flush=True)
    finally:
        audit_mod._Audit.signed_record, audit_mod.PARALLEL_MIN_RECORDS = saved
    state = root / "pit" / "audit-state" / "state.sqlite"
    shutil.copy(state, root / "state-at-n.sqlite")
    shutil.copy(root / "pit" / "verified.conf", root / "verified-at-n.conf")
    # the new records: real signed orders, stamped as the notary stamps them
    from moderator.notary import Refused
    refs: dict = {}
    registry = (instruments, currencies, fees)
    signers = {a: f for f, a in members.items()}
    for raw in raws[TRADERS:]:
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
    testkeys.stop_agents(root)
    done.write_text(f"{n} {new} {w.seq}\n")
    print(f"  built {root} in {time.time() - t0:.0f} s", flush=True)
    return root


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
    return times


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
