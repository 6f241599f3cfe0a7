"""The tamper matrix: damage a small real archive in every way an attacker
or a failing disk would, and require the audit to detect every one and
name the record concerned (and never to crash).

One small traded pit (orders, filter reports and checkpoints, seals that
are signed tree heads) is built through the real notary.  Each case writes
a damaged copy of its archive and audits it with the head of the intact
archive remembered, as a replica that saw it would:

* single bytes: every byte of every ``From`` line and of every newline
  that ends an entry, and seeded random positions, to >= 1,000 positions
  (``PIT_TAMPER_ALL=1``, or ``make tamper``: every byte of the archive;
  ``PIT_TAMPER_SEED`` draws the byte that replaces each one);
* every record deleted, duplicated, swapped with the next;
* truncation after every record and after every seal (with the index
  rewritten to agree, as a forger would);
* forged records with a correct hash chain (text changed, digest, chain
  recomputed, index rewritten);
* forked histories re-signed with the notary's own key, from every seal.

Every case is audited as ``pit audit`` does by default, incrementally,
from the auditor's state kept at a seal in the middle of the archive
(pit.auditstate), and, when that audit ran incrementally rather than falling
back to a full one, again with ``full=True``: both must fail and name the
same record.

Located means: the failure names the record whose entry holds the damaged
byte (for a truncation, the first record lost; for a fork, a range of
records that holds the first changed one).  The counts are printed (run
with ``-s``) for docs/pit-book.md.

gpg verdicts are memoized by exact input and key set for speed (a real gpg
home per distinct key history, a real ``gpg --verify`` per distinct input):
the audit's logic is what is under test here, gpg's verdicts are the same
for the same bytes.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import pytest

from pit import audit as audit_mod
from pit import mbox, ops
from pit.archive import record_hash
from pit.audit import AuditFailure, audit
from pit.pitdir import Pit

from conftest import funded_pit

SAMPLES = 1_000


_RealKeys = audit_mod._Keys


class _CachedKeys:
    """audit._Keys with gpg's answers memoized by (keys imported, input):
    one real GnuPG home per distinct history of imports."""

    homes: dict[tuple, tuple] = {}        # history -> (real _Keys, result of its last add)
    verdicts: dict[tuple, object] = {}

    def __init__(self):
        self.history: tuple = ()
        self.generation = 0
        self.verifier = None
        self.ring = self

    @classmethod
    def _home(cls, history: tuple):
        if history not in cls.homes:
            k, result = _RealKeys(), ("ok", [])
            for block in history:
                try:
                    result = ("ok", k.add(block))
                except Exception as e:           # noqa: BLE001 - the real audit meets the same
                    result = ("error", e)
            cls.homes[history] = (k, result)
        return cls.homes[history]

    def add(self, armored: str) -> list[str]:
        k, (kind, value) = self._home(self.history + (armored,))
        if kind == "error":
            raise value
        self.history += (armored,)
        self.verifier = k.verifier
        self.generation += 1
        return value

    def verify_gpg(self, data: bytes, signature=None):
        key = (self.history, data, signature)
        if key not in self.verdicts:
            self.verdicts[key] = self._home(self.history)[0].ring.verify_gpg(data, signature)
        return self.verdicts[key]

    def preload(self, blocks) -> None:
        pass                # a speed-up only: the verdicts are the same without it

    def restore(self, blocks) -> None:
        for block in blocks:
            self.add(block)

    def portable(self):
        return None

    def close(self):
        pass

    @classmethod
    def close_all(cls):
        for k, _ in cls.homes.values():
            k.close()
        cls.homes.clear()
        cls.verdicts.clear()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("tamper")
    p = funded_pit(base)
    p.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    p.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(p).run_maildir()
    ops.run_filter(p, "specialist", ["ACME"])
    for ring, _ in p.keys.values():
        ring.stop_agent()
    pristine = base / "pit"
    data = (pristine / "archives" / "000001.mbox").read_bytes()
    starts = [0] + [m.start() + 1 for m in re.finditer(rb"\nFrom ", data)]
    msgs = list(mbox.iter_messages(data))
    assert len(msgs) == len(starts)
    kinds = [mbox.stamp(m)["x-pit-kind"] for m in msgs]
    work = base / "work"
    (work / "archives").mkdir(parents=True)
    saved = audit_mod._Keys
    audit_mod._Keys = _CachedKeys
    try:
        # the auditor's own state, kept by an audit of the archive as it
        # stood at a seal in the middle
        seals = [i + 1 for i, k in enumerate(kinds) if k == "seal"]
        middle = seals[len(seals) // 2]
        early = base / "early"
        (early / "archives").mkdir(parents=True)
        (early / "archives" / "000001.mbox").write_bytes(data[:starts[middle]])
        (early / "archives" / "index").write_text(
            f"# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n000001.mbox 1 {middle} {middle} "
            f"{starts[middle]}\n")
        r = audit(early, remember=True)
        assert r.ok, r.problem
        kept = (early / "audit-state" / "state.sqlite").read_bytes()
        shutil.copy(pristine / "archives" / "index", work / "archives" / "index")
        shutil.copy(pristine / "archives" / "000001.mbox", work / "archives" / "000001.mbox")
        r = audit(work, remember=True, full=True)      # the head a replica remembers
        assert r.ok, r.problem
        state = (work / "verified.conf").read_text()
        w = {"base": base, "pit": pristine, "data": data, "starts": starts, "msgs": msgs,
             "kinds": kinds, "work": work, "state": state, "counts": {}, "kept": kept,
             "kept_at": middle, "modes": {"incremental": 0, "full": 0}, "disagree": []}
        yield w
        print(f"\ntamper matrix, incremental from the auditor's state at record {middle}: "
              f"{w['modes']['incremental']} cases audited incrementally and again in full, "
              f"{w['modes']['full']} fell back to a full audit (bytes before record {middle} "
              f"changed); disagreements {len(w['disagree'])}")
    finally:
        audit_mod._Keys = saved
        _CachedKeys.close_all()


def _write(w, data: bytes, count: int | None = None) -> None:
    work = w["work"]
    (work / "archives" / "000001.mbox").write_bytes(data)
    n = len(w["starts"]) if count is None else count
    (work / "archives" / "index").write_text(
        "# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n"
        + (f"000001.mbox 1 {n} {n} {len(data)}\n" if n else ""))
    (work / "verified.conf").write_text(w["state"])
    (work / "audit-state").mkdir(exist_ok=True)
    (work / "audit-state" / "state.sqlite").write_bytes(w["kept"])


def _named(problem: str) -> int | None:
    m = re.match(r"record (\d+):", problem or "")
    return int(m.group(1)) if m else None


def _record_at(w, pos: int) -> int:
    starts = w["starts"]
    lo = 0
    for i, s in enumerate(starts):
        if s <= pos:
            lo = i
    return lo + 1


def _tally(w, case: str, ok: bool, problem: str, accept) -> str:
    """Count one case: 'located', 'unlocated', 'missed' or 'crashed'."""
    c = w["counts"].setdefault(case, {"tried": 0, "located": 0, "unlocated": 0,
                                      "missed": 0, "crashed": 0})
    c["tried"] += 1
    if ok:
        c["missed"] += 1
        return "missed"
    if problem.startswith("CRASH"):
        c["crashed"] += 1
        return "crashed"
    if accept(_named(problem), problem):
        c["located"] += 1
        return "located"
    c["unlocated"] += 1
    return "unlocated"


def _audit_once(w, data: bytes, count: int | None, full: bool):
    _write(w, data, count)
    try:
        r = audit(w["work"], remember=True, full=full)
    except Exception as e:                             # noqa: BLE001 - counted, then failed
        return False, f"CRASH {type(e).__name__}: {e}", "crashed"
    problem = r.problem or ""
    if r.ok:
        return True, "", r.mode
    if "the record cannot be checked" in problem:     # the safety net caught a broken check
        return False, "CRASH " + problem, r.mode
    return False, problem, r.mode


def _audit(w, data: bytes, count: int | None = None):
    """The default audit (incremental from the kept state, or full with
    the reason); when it ran incrementally, the full audit too, which must
    agree (both fail, naming the same record)."""
    ok, problem, mode = _audit_once(w, data, count, full=False)
    w["modes"]["incremental" if mode == "incremental" else "full"] += 1
    if mode == "incremental":
        full_ok, full_problem, _ = _audit_once(w, data, count, full=True)
        if (ok, _named(problem)) != (full_ok, _named(full_problem)):
            w["disagree"].append((problem.split("\n")[0][:140], full_problem.split("\n")[0][:140]))
    return ok, problem


def _report(w, case: str, bad: list) -> None:
    c = w["counts"][case]
    print(f"\ntamper matrix, {case}: tried {c['tried']}, detected and located {c['located']}, "
          f"detected not located {c['unlocated']}, missed {c['missed']}, crashed {c['crashed']}")
    assert not bad, f"{len(bad)} of {c['tried']} not detected and located: {bad[:5]}"
    assert not w["disagree"], f"incremental and full audits disagree: {w['disagree'][:5]}"


def _positions(w) -> list[int]:
    data, starts = w["data"], w["starts"]
    if os.environ.get("PIT_TAMPER_ALL"):
        return list(range(len(data)))
    special = set()
    for s in starts:
        special.update(range(s, data.index(b"\n", s) + 1))      # every From line
        if s:
            special.add(s - 1)                                  # the newline ending an entry
    special.add(len(data) - 1)
    rng = random.Random(16)
    rest = [p for p in range(len(data)) if p not in special]
    return sorted(special | set(rng.sample(rest, max(0, SAMPLES - len(special)))))


def test_every_sampled_byte_changed_is_detected_and_located(world):
    w = world
    data, bad = w["data"], []
    rng = random.Random(int(os.environ.get("PIT_TAMPER_SEED", "9162")))
    for pos in _positions(w):
        new = bytearray(data)
        # a different byte, sometimes one that is not UTF-8 or is a newline
        new[pos] = rng.choice([data[pos] ^ 0x01, 0xFF, 0x0A, 0x20, 0x58])
        if new[pos] == data[pos]:
            new[pos] ^= 0x02
        ok, problem = _audit(w, bytes(new))
        true = _record_at(w, pos)
        outcome = _tally(w, "byte", ok, problem, lambda n, p: n == true)
        if outcome != "located":
            bad.append((pos, true, outcome, problem.split("\n")[0][:120]))
    _report(w, "byte", bad)


def _entries(w) -> list[bytes]:
    data, starts = w["data"], w["starts"]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def test_deleted_duplicated_and_reordered_records_are_located(world):
    w, bad = world, []
    es = _entries(w)
    for i in range(len(es)):
        for case, new, first in [
                ("delete", es[:i] + es[i + 1:], i + 1),
                ("duplicate", es[:i + 1] + es[i:], i + 2),
                ("swap", es[:i] + es[i + 1:i + 2] + es[i:i + 1] + es[i + 2:], i + 1)]:
            if case == "swap" and i + 1 >= len(es):
                continue
            ok, problem = _audit(w, b"".join(new), len(new))
            outcome = _tally(w, case, ok, problem, lambda n, p: n == first)
            if outcome != "located":
                bad.append((case, i + 1, outcome, problem.split("\n")[0][:120]))
    for case in ("delete", "duplicate", "swap"):
        _report(w, case, [b for b in bad if b[0] == case])


def test_truncation_at_every_record_and_every_head_names_the_first_record_lost(world):
    w, bad = world, []
    es = _entries(w)
    for keep in range(0, len(es)):
        case = "truncate at a head" if w["kinds"][keep - 1] == "seal" else "truncate"
        new = b"".join(es[:keep])
        ok, problem = _audit(w, new, keep)
        lost = keep + 1
        outcome = _tally(w, case, ok, problem,
                         lambda n, p: n == lost or (keep == 0 and "no records" in p))
        if outcome != "located":
            bad.append((case, keep, outcome, problem.split("\n")[0][:140]))
    for case in ("truncate", "truncate at a head"):
        _report(w, case, [b for b in bad if b[0] == case])


def _rechain(msgs: list[bytes], start: int) -> list[bytes]:
    """Recompute X-Pit-Digest of record *start* and X-Pit-Prev from there on."""
    out = list(msgs)
    stamp, original = mbox.split_stamp(out[start])
    import hashlib
    stamp = re.sub(rb"X-Pit-Digest: [0-9a-f]+\n",
                   b"X-Pit-Digest: " + hashlib.sha256(original).hexdigest().encode() + b"\n", stamp)
    out[start] = stamp + original
    for i in range(start + 1, len(out)):
        prev = record_hash(out[i - 1]).encode()
        out[i] = re.sub(rb"X-Pit-Prev: [0-9a-f]+\n", b"X-Pit-Prev: " + prev + b"\n", out[i], count=1)
    return out


def test_forged_records_with_a_correct_hash_chain_are_located(world):
    w, bad = world, []
    msgs = w["msgs"]
    for i, m in enumerate(msgs):
        _, original = mbox.split_stamp(m)
        # change one letter of the signed text (or of the seal's body)
        j = original.find(b"\n\n") + 3
        if j < 3 or j >= len(original):
            continue
        forged = list(msgs)
        forged[i] = m[:len(m) - len(original)] + original[:j] + \
            bytes([original[j] ^ 0x01]) + original[j + 1:]
        forged = _rechain(forged, i)
        times = [mbox.stamp(x)["x-pit-time"] for x in forged]
        data = b"".join(mbox.format_message(x, "notary", t) for x, t in zip(forged, times))
        ok, problem = _audit(w, data, len(forged))
        outcome = _tally(w, "forged, chain correct", ok, problem, lambda n, p: n == i + 1)
        if outcome != "located":
            bad.append((i + 1, outcome, problem.split("\n")[0][:140]))
    _report(w, "forged, chain correct", bad)


def test_a_fork_resigned_with_the_notary_key_is_caught_by_the_remembered_head(world, tmp_path):
    w, bad = world, []
    es = _entries(w)
    heads = [i + 1 for i, k in enumerate(w["kinds"]) if k == "seal"]
    for keep in heads[:-1]:
        # the notary itself, from the archive cut after seal `keep`, writes
        # another history: a valid archive by itself, signed by the real key
        fork = tmp_path / f"fork{keep}"
        shutil.copytree(w["pit"], fork, ignore=shutil.ignore_patterns("S.*", "*.lock"))
        cut = b"".join(es[:keep])
        (fork / "archives" / "000001.mbox").write_bytes(cut)
        (fork / "archives" / "index").write_text(
            f"# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n000001.mbox 1 {keep} {keep} {len(cut)}\n")
        p = Pit(fork)
        for n in range(len(es) - keep):                 # as long as the real one, or longer
            code = "X" + chr(65 + n // 26) + chr(65 + n % 26)
            assert ops.operator_request(p, "Currency", f"{code} 0.01").accepted
        alone = audit(fork)
        assert alone.ok, alone.problem                  # no audit alone can tell
        data = (fork / "archives" / "000001.mbox").read_bytes()
        ok, problem = _audit(w, data, data.count(b"\nFrom ") + 1)
        first_changed = keep + 1
        def accept(n, p):
            m = re.search(r"records? (\d+)(?:-(\d+))? differ", p)
            return m is not None and int(m.group(1)) <= first_changed <= int(m.group(2) or m.group(1)) \
                and "history was rewritten" in p
        outcome = _tally(w, "fork re-signed", ok, problem, accept)
        if outcome != "located":
            bad.append((keep, outcome, problem.split("\n")[0][:160]))
        from pit.keyring import Keyring
        Keyring(fork / "gnupg").stop_agent()
        shutil.rmtree(fork)
    _report(w, "fork re-signed", bad)
