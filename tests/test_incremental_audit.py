"""The incremental audit, through the path a member takes: signed mail in,
the real notary (``pit notarize``), the real filters (``pit run``), a
replica kept with ``pit mirror``, and ``pit audit`` of it.  The first audit
of a replica is full and leaves the auditor's state (audit-state/); the
next checks only what is new, and must catch whatever a full audit
catches, before and after that state.  (The tamper matrix, tests/
test_tamper.py, holds every damage case to the same verdict both ways.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pit import cli, message, ops

from conftest import copy_of_traded, traded_pit

needs_rsync = pytest.mark.skipif(not shutil.which("rsync"), reason="rsync: make install")
pytestmark = needs_rsync


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return traded_pit(tmp_path_factory.mktemp("incremental"))


@pytest.fixture
def pit(template, tmp_path):
    return copy_of_traded(template, tmp_path)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def send(p, name, ref, key, value) -> None:
    ring, fpr = p.keys[name]
    ops.send_local(p, ops.sign_request(p, ops.request_text(p, name, ref, key, value),
                                       ring, fpr, f"{name}@example.org"))


def trade(p, capsys, ref: str) -> None:
    """A buy and a sell by mail, notarized, and the filters run."""
    send(p, "alice", ref, "Order", "buy 3 ACME at 12.50")
    send(p, "bob", ref, "Order", "sell 3 ACME at 12.50")
    assert run(capsys, "--pit", p.root, "notarize")[0] == 0
    assert run(capsys, "--pit", p.root, "run")[0] == 0


def audit_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "audit", *argv, "--json")
    row = json.loads(out)
    assert code == (0 if row["ok"] else 1), out + err
    return row


def mirrored(p, tmp_path, capsys) -> Path:
    """A replica of *p*, audited once (in full: the first audit)."""
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", p.root, replica)
    assert code == 0, out + err
    row = audit_json(capsys, replica)
    assert row["ok"] and row["mode"] == "full", row
    assert "no audit of this copy has passed here yet" in row["fallback"]
    assert (replica / "audit-state" / "state.sqlite").exists()
    assert not (replica / "archives" / "audit-state").exists()
    return replica


def grow(p, replica, capsys, ref: str = "o7") -> str:
    trade(p, capsys, ref)
    code, out, err = run(capsys, "mirror", p.root, replica)
    assert code == 0, out + err
    return out


def volume(root: Path) -> Path:
    return root / "archives" / "000001.mbox"


def entry_starts(data: bytes) -> list[int]:
    return [0] + [m.start() + 1 for m in re.finditer(rb"\nFrom ", data)]


def named(problem: str) -> int:
    return int(re.match(r"record (\d+):", problem).group(1))


def test_the_next_audit_checks_only_the_new_records_and_agrees_with_a_full_one(pit, tmp_path, capsys):
    replica = mirrored(pit, tmp_path, capsys)
    kept = audit_json(capsys, replica)            # nothing new: still a pass
    assert kept["ok"] and kept["mode"] == "incremental"
    before = kept["records"]
    out = grow(pit, replica, capsys)
    # pit mirror's log check, too, reads only what is new since the auditor's state
    assert re.search(rf"log of \d+ records checked \(records {before + 1}-\d+: those before, "
                     rf"the auditor's state at record {before} holds verified\)", out), out
    code, out, err = run(capsys, "audit", replica)
    assert code == 0, out
    n = int(re.search(r"records +(\d+) \(1-", out).group(1))
    assert n > before
    assert f"incremental: records {before + 1}-{n} checked after the auditor's state at record {before}" in out
    assert re.search(rf"consistency proof {before - 1} -> {n - 1} \(\d+ hashes\) from the signed "
                     r"tree head the auditor verified, checked", out), out
    inc = audit_json(capsys, replica)
    full = audit_json(capsys, replica, "--full")
    assert full["mode"] == "full" and inc["mode"] == "incremental" and inc["since"] == n
    for k in ("ok", "records", "head", "tree_root", "seals", "heads", "signatures", "kinds",
              "filters", "reports", "checkpoints"):
        assert inc[k] == full[k], k


def test_a_record_changed_before_the_kept_state_is_caught(pit, tmp_path, capsys):
    replica = mirrored(pit, tmp_path, capsys)
    grow(pit, replica, capsys)
    data = bytearray(volume(replica).read_bytes())
    i = data.index(b"Deposit: 10000.00")            # the operator's deposit to alice
    seq = next(n for n, s in enumerate(entry_starts(bytes(data)), 1) if s > i) - 1
    data[i + 9] = ord("9")
    volume(replica).write_bytes(bytes(data))
    row = audit_json(capsys, replica)
    assert not row["ok"] and row["mode"] == "full"
    assert "000001.mbox changed since it was verified" in row["fallback"], row["fallback"]
    assert named(row["problem"]) == seq, row["problem"]


def test_a_rewritten_history_is_caught(pit, tmp_path, capsys):
    """The source's host forks the log from an older seal and re-signs it
    with the notary's own key; the replica receives it (as rsync would
    bring it, bypassing pit mirror's own check)."""
    replica = mirrored(pit, tmp_path, capsys)
    grow(pit, replica, capsys)
    assert audit_json(capsys, replica)["mode"] == "incremental"
    data = volume(Path(pit.root)).read_bytes()
    starts = entry_starts(data)
    seals = [i for i, s in enumerate(starts) if b"\nX-Pit-Kind: seal\n" in data[s:s + 400]]
    keep = seals[-4] + 1
    volume(Path(pit.root)).write_bytes(data[:starts[keep]])
    (Path(pit.root) / "archives" / "index").write_text(
        f"# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n000001.mbox 1 {keep} {keep} {starts[keep]}\n")
    for code_ in ("XAA", "XAB", "XAC", "XAD", "XAE", "XAF"):
        assert ops.operator_request(pit, "Currency", f"{code_} 0.01").accepted
    shutil.copytree(Path(pit.root) / "archives", replica / "archives", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.lock", "notary-state*"))
    row = audit_json(capsys, replica)
    assert not row["ok"]
    assert "history was rewritten" in row["problem"], row["problem"]
    first = int(re.search(r"records? (\d+)(?:-\d+)? differ", row["problem"]).group(1))
    assert first <= keep + 1


def test_a_record_changed_after_the_kept_state_is_caught_incrementally(pit, tmp_path, capsys):
    replica = mirrored(pit, tmp_path, capsys)
    since = audit_json(capsys, replica)["records"]
    grow(pit, replica, capsys)
    pristine = volume(replica).read_bytes()
    starts = entry_starts(pristine)
    i = pristine.index(b"Order: buy 3 ACME at 12.50", starts[since])
    seq = next(n for n, s in enumerate(starts, 1) if s > i) - 1
    assert seq > since
    data = bytearray(pristine)
    data[i + 11] = ord("4")                           # buy 4, not 3: the signature breaks
    volume(replica).write_bytes(bytes(data))
    row = audit_json(capsys, replica)
    assert not row["ok"] and row["mode"] == "incremental", row
    assert named(row["problem"]) == seq, row["problem"]
    assert named(audit_json(capsys, replica, "--full")["problem"]) == seq
    # a failed audit keeps the state it started from
    volume(replica).write_bytes(pristine)
    row = audit_json(capsys, replica)
    assert row["ok"] and row["mode"] == "incremental" and row["since"] == since, row


def test_the_audit_line_says_where_an_incremental_audit_started_also_when_it_fails(pit, tmp_path,
                                                                                  capsys):
    """pit mirror with nothing new, and a failing incremental audit, say
    which records they read (not 'records 8-7', not an empty line)."""
    replica = mirrored(pit, tmp_path, capsys)
    since = audit_json(capsys, replica)["records"]
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    assert f"records {since + 1}-{since}" not in out, out
    assert f"no record new since the auditor's state at record {since}" in out, out
    grow(pit, replica, capsys)
    data = bytearray(volume(replica).read_bytes())
    i = data.index(b"Order: buy 3 ACME at 12.50", entry_starts(bytes(data))[since])
    data[i + 11] = ord("4")
    volume(replica).write_bytes(bytes(data))
    code, out, err = run(capsys, "audit", replica)
    assert code == 1 and "RESULT: FAIL" in out, out
    line = next(l for l in out.splitlines() if l.startswith("  audit "))
    assert line == f"  audit          incremental: from record {since + 1} on, after the " \
                   f"auditor's state at record {since}", line


def test_a_truncated_archive_is_caught_after_and_before_the_kept_state(pit, tmp_path, capsys):
    replica = mirrored(pit, tmp_path, capsys)
    since = audit_json(capsys, replica)["records"]
    grow(pit, replica, capsys)                       # pit mirror remembers the newest head
    data = volume(replica).read_bytes()
    starts = entry_starts(data)
    total = len(starts)
    for keep, mode in ((since + 2, "incremental"), (since - 4, "full")):
        cut = data[:starts[keep]]
        volume(replica).write_bytes(cut)
        (replica / "archives" / "index").write_text(
            f"# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n000001.mbox 1 {keep} {keep} {len(cut)}\n")
        row = audit_json(capsys, replica)
        assert not row["ok"] and row["mode"] == mode, row
        assert f"records {keep + 1}-{total} were lost" in row["problem"] or \
            f"record {keep + 1}:" in row["problem"], row["problem"]


def test_a_forged_report_by_a_filter_in_the_new_records_is_caught(pit, tmp_path, capsys):
    replica = mirrored(pit, tmp_path, capsys)
    since = audit_json(capsys, replica)["records"]
    send(pit, "alice", "o8", "Order", "buy 2 ACME at 12.50")
    send(pit, "bob", "o8", "Order", "sell 2 ACME at 12.50")
    assert run(capsys, "--pit", pit.root, "notarize")[0] == 0
    # the specialist's key signs a report with one trade more than happened
    flt, _ = ops.run_filter(pit, "specialist", ["ACME"], post_output=False)
    assert flt.lines
    body = flt.report_head() + "\n".join(flt.lines + flt.lines[:1]) + "\n"
    decisions = ops.post(pit, flt.name, [message.filter_output("report", flt.name, flt.pit,
                                                               body, flt.time)])
    assert decisions and all(d.accepted for d in decisions), decisions
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    row = audit_json(capsys, replica)
    assert not row["ok"] and row["mode"] == "incremental", row
    assert "specialist ACME report differs from the replay" in row["problem"], row["problem"]
    seq = named(row["problem"])
    assert seq > since
    assert named(audit_json(capsys, replica, "--full")["problem"]) == seq


def split_volumes(root: Path, per: int) -> list[str]:
    """The copy's archive rewritten as volumes of *per* records (the same
    entries, byte for byte, as a long archive's volumes of 50,000)."""
    from pit.archive import Archive
    entries = [e for _, e, _ in Archive(root).read_entries()]
    for f in (root / "archives").glob("*.mbox"):
        f.unlink()
    names, lines = [], ["# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n"]
    for i in range(0, len(entries), per):
        chunk, name = entries[i:i + per], f"{i // per + 1:06d}.mbox"
        (root / "archives" / name).write_bytes(b"".join(chunk))
        lines.append(f"{name} {i + 1} {i + len(chunk)} {len(chunk)} {sum(map(len, chunk))}\n")
        names.append(name)
    (root / "archives" / "index").write_text("".join(lines))
    return names


def test_a_moved_copy_has_its_volumes_hashed_once_not_at_every_audit(pit, tmp_path, capsys,
                                                                     monkeypatch):
    """A replica copied or restored elsewhere (cp -a, a backup: every volume
    a new inode) has its verified volumes hashed again by the next audit,
    which keeps their new inodes: the audit after that hashes only the
    volume holding the kept head, as before the move."""
    from pit import auditstate
    replica = mirrored(pit, tmp_path, capsys)
    names = split_volumes(replica, 10)
    assert len(names) >= 3
    assert audit_json(capsys, replica)["mode"] == "full"      # the volumes it kept are gone
    assert audit_json(capsys, replica)["mode"] == "incremental"
    moved = tmp_path / "moved"
    shutil.copytree(replica, moved)                            # times kept, inodes new
    hashed = []
    real = auditstate._digest
    monkeypatch.setattr(auditstate, "_digest", lambda p, size: hashed.append(p.name) or real(p, size))
    row = audit_json(capsys, moved)
    assert row["ok"] and row["mode"] == "incremental", row
    assert hashed == names                                     # every one: its inode moved
    hashed.clear()
    row = audit_json(capsys, moved)
    assert row["ok"] and row["mode"] == "incremental", row
    assert hashed == names[-1:]                                # the one holding the head
