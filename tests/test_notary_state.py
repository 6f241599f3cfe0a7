"""The notary starts from its state kept beside the archive
(archives/notary-state.sqlite, pit.notarystate), not from record 1: after a
restart, a crash between an append and the state's commit, or with a state
that is another pit's, corrupt, or ahead of the archive, it holds exactly
what a load from scratch computes, and a state it cannot use is ignored
with a one-line reason recorded and rebuilt.  The audit compares the state
with its full replay."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from moderator.notary import Notary, deliver
from pit import notarystate, ops
from pit.archive import Archive
from pit.audit import audit

from conftest import copy_of_traded, copy_pit, traded_pit

ROOT = Path(__file__).resolve().parents[1]
STATE = Path("archives") / notarystate.STATE_NAME
RUNNER = ("import sys; from moderator.notary import Notary; "
          "Notary(sys.argv[1]).run_maildir(batch=int(sys.argv[2]))")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return traded_pit(tmp_path_factory.mktemp("state"))


def with_send(p):
    def send(name, ref, key, value):
        ring, fpr = p.keys[name]
        ops.send_local(p, signed_request(p, name, ref, key, value))
    p.send = send
    return p


def signed_request(p, name, ref, key, value) -> bytes:
    ring, fpr = p.keys[name]
    return ops.sign_request(p, ops.request_text(p, name, ref, key, value), ring, fpr,
                            f"{name}@example.org")


@pytest.fixture
def pit(template, tmp_path):
    return with_send(copy_of_traded(template, tmp_path))


def state_of(n: Notary) -> dict:
    """Everything the notary's judgement reads, from a loaded notary."""
    st = n.state
    out = dict(st.content())
    out["recent"] = sorted(d for (d,) in st.db.execute("SELECT digest FROM recent"))
    out["bounded"] = (n.seq, n.head, n.tree.root().hex(), list(n.unsealed),
                      {k: repr(v) for k, v in n.registry_instruments.items()},
                      {k: repr(v) for k, v in n.currencies.items()}, repr(n.fees),
                      dict(n.filter_reports), dict(n.filter_checkpoints), st.last_us,
                      st.rejects_read)
    return out


def from_scratch(root: Path, tmp_path: Path) -> dict:
    """The state a notary computes from the archive alone (no saved state,
    no saved frontier), on a copy of the pit."""
    copy = copy_pit(root, tmp_path / f"scratch-{len(list(tmp_path.iterdir()))}")
    for name in os.listdir(copy / "archives"):
        if name.startswith(notarystate.STATE_NAME) or name == "tree":
            os.unlink(copy / "archives" / name)
    return state_of(Notary(copy))


def log_lines(root: Path) -> list[str]:
    p = root / "archives" / notarystate.LOG_NAME
    return p.read_text().splitlines() if p.exists() else []


def trade_more(p, tag: str) -> None:
    """Orders, a cancel, a replay and garbage through the maildir, and the
    specialist's report and checkpoint: records of every kind the rule folds."""
    p.send("alice", f"{tag}1", "Order", "buy 2 ACME at 12.40")
    p.send("bob", f"{tag}1", "Order", "sell 1 ACME at 12.60")
    p.send("alice", f"{tag}2", "Cancel", f"{tag}1")
    p.send("alice", "o1", "Order", "buy 1 ACME at 1")           # a replay: refused
    ops.send_local(p, b"not an email at all\n")                  # refused: unreadable
    ops.notary(p).run_maildir()
    ops.run_filter(p, "specialist", ["ACME"])


def test_a_restart_holds_what_a_load_from_scratch_computes(pit, tmp_path):
    trade_more(pit, "r")
    assert (pit.root / STATE).exists()
    started = Notary(pit)
    assert state_of(started) == from_scratch(pit.root, tmp_path)
    assert started.seq == Archive(pit.root).last_seq()
    assert log_lines(pit.root) == []                 # nothing was ignored on the way
    assert notarystate.check(Archive(pit.root)) == (started.seq, [])
    assert audit(pit.root).ok
    # the state's look-ups answer as the rule says
    assert ("alice", "r1") in started.refs and started.refs["alice", "r1"][1] == "ACME"
    assert started.members.get(pit.keys["alice"][1]) == ("alice",)


def test_killed_between_the_append_and_the_states_commit(pit, tmp_path):
    """The archive holds the records, the state does not: the next start
    folds them, and a replay of one is refused."""
    raws = [signed_request(pit, "alice", f"k{i}", "Order", f"buy 1 ACME at 11.{i:02d}")
            for i in range(4)]
    for i, raw in enumerate(raws):
        deliver(pit, raw, name=f"{i:05d}.crash")
    before = Notary(pit).seq
    env = dict(os.environ, PYTHONPATH=str(ROOT), PIT_ARCHIVE_CRASH_AT="notary-state-commit")
    p = subprocess.run([sys.executable, "-c", RUNNER, str(pit.root), "10"], env=env,
                       capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    assert Archive(pit.root).last_seq() > before          # appended ...
    db = sqlite3.connect(pit.root / STATE)
    assert int(db.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()[0]) == before
    db.close()                                             # ... the state not committed
    n = Notary(pit)
    assert state_of(n) == from_scratch(pit.root, tmp_path)
    assert log_lines(pit.root) == []                       # behind is not wrong
    # the claimed messages were archived before the kill: only removed now
    ds = n.run_maildir()
    assert ds == []
    deliver(pit, raws[0], name="again.crash")
    (d,) = Notary(pit).run_maildir()
    assert not d.accepted and d.reason.startswith("replayed: ref k0 of alice")


def test_a_state_from_another_pit_is_ignored_and_rebuilt(pit, template, tmp_path):
    other = with_send(copy_of_traded(template, tmp_path / "other"))
    trade_more(other, "x")                     # the same pit's copy, gone another way
    shutil.copy(other.root / STATE, pit.root / STATE)
    for suffix in ("-wal", "-shm"):
        if (other.root / f"{STATE}{suffix}").exists():
            shutil.copy(other.root / f"{STATE}{suffix}", pit.root / f"{STATE}{suffix}")
    n = Notary(pit)
    assert state_of(n) == from_scratch(pit.root, tmp_path)
    (line,) = log_lines(pit.root)
    assert "ignored notary-state.sqlite: it is at record" in line or \
        "is not the one it was made at" in line, line
    assert (pit.root / f"{STATE}.ignored").exists()


def test_a_state_ahead_of_the_archive_is_ignored_and_rebuilt(pit, tmp_path):
    """An archive put back from an older copy: the state names records it
    lacks."""
    old = tmp_path / "old-archives"
    shutil.copytree(pit.root / "archives", old)
    trade_more(pit, "a")
    Notary(pit)                                # the state is at the newer head
    for name in os.listdir(old):
        if not name.startswith(notarystate.STATE_NAME):
            shutil.copy(old / name, pit.root / "archives" / name)
    n = Notary(pit)
    assert state_of(n) == from_scratch(pit.root, tmp_path)
    (line,) = log_lines(pit.root)
    assert "the archive ends at record" in line, line


@pytest.mark.parametrize("damage", ["garbage", "truncated", "schema", "frontier", "pit", "registry",
                                    "trigger"])
def test_a_corrupt_or_hostile_state_is_ignored_with_a_reason(pit, tmp_path, damage):
    path = pit.root / STATE
    Notary(pit)                                 # checkpoints the write-ahead log on close
    if damage == "garbage":
        path.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1500])
    else:
        db = sqlite3.connect(path)
        sql = {"schema": "UPDATE meta SET value = '99' WHERE name = 'schema'",
               "frontier": "UPDATE meta SET value = '7 zz' WHERE name = 'tree'",
               "pit": "UPDATE meta SET value = 'elsewhere' WHERE name = 'pit'",
               "registry": "INSERT INTO registry VALUES (99999, 'currency', 'not a currency')",
               # a trigger that would quietly forget every reference the notary writes
               "trigger": "CREATE TRIGGER forget AFTER INSERT ON refs BEGIN "
                          "DELETE FROM refs WHERE account = new.account; END"}
        db.execute(sql[damage])
        db.commit()
        db.close()
    n = Notary(pit)
    assert state_of(n) == from_scratch(pit.root, tmp_path)
    (line,) = log_lines(pit.root)
    assert "ignored notary-state.sqlite: " in line and "\n" not in line
    # and the pit goes on
    pit.send("alice", "after", "Order", "buy 1 ACME at 12.00")
    assert [d.accepted for d in n.run_maildir()] == [True]


def test_the_audit_finds_a_state_that_differs_from_its_replay(pit):
    """A state whose seq and head are right but whose content was changed
    (a reference deleted: a replay would pass) is the audit's finding."""
    Notary(pit)
    assert audit(pit.root).ok
    db = sqlite3.connect(pit.root / STATE)
    db.execute("DELETE FROM refs WHERE account = 'alice' AND ref = 'o1'")
    db.commit()
    db.close()
    res = audit(pit.root)
    assert not res.ok
    text = res.problem
    assert "notary's snapshot" in text and "refs" in text and "'alice', 'o1'" in text, text


def test_two_notaries_on_one_pit_share_the_state(pit, tmp_path):
    """One notary's records reach the other through the archive and the
    state (its next turn of the lock reads them), as with two processes."""
    a, b = Notary(pit), Notary(pit)
    pit.send("alice", "two1", "Order", "buy 1 ACME at 12.00")
    assert [d.accepted for d in a.run_maildir()] == [True]
    pit.send("alice", "two1", "Order", "buy 1 ACME at 12.00")
    (d,) = b.run_maildir()
    assert not d.accepted and "replayed" in d.reason
    a.seal()                                   # a turn of the lock: a reads b's turn
    assert state_of(b) == state_of(a) == from_scratch(pit.root, tmp_path)


def test_a_notary_whose_state_another_rebuilt_opens_the_new_one(pit, tmp_path):
    a = Notary(pit)
    (pit.root / STATE).unlink()                # gone (set aside, say): the next start rebuilds
    b = Notary(pit)
    pit.send("alice", "re1", "Order", "buy 1 ACME at 12.00")
    assert [d.accepted for d in a.run_maildir()] == [True]
    assert a.state.inode == b.state.inode      # a writes where b and every later start read
    assert state_of(Notary(pit)) == from_scratch(pit.root, tmp_path)


def test_what_a_notary_hands_out_outlives_it(pit):
    """notary.members / refs read on after the notary itself is gone (a
    caller keeps only what it asked for)."""
    members, refs = Notary(pit).members, Notary(pit).refs
    assert members.get(pit.keys["alice"][1]) == ("alice",)
    assert ("alice", "o1") in refs


def test_a_schema_1_state_gets_its_accounts_table_in_place(pit, tmp_path):
    """A state written before rules 2 (schema 1: no accounts table, which
    rules 2 look a transfer's destination up in) is upgraded when opened,
    from its members table, without a fold from record 1: it then holds
    what a load from scratch computes, and the audit agrees."""
    trade_more(pit, "u")
    Notary(pit).state.close()
    db = sqlite3.connect(pit.root / STATE)
    db.execute("DROP TABLE accounts")
    db.execute("UPDATE meta SET value = '1' WHERE name = 'schema'")
    db.commit()
    db.close()
    started = Notary(pit)
    assert log_lines(pit.root) == []                 # upgraded, not ignored and rebuilt
    assert state_of(started) == from_scratch(pit.root, tmp_path)
    assert started.state.account_exists("alice") and not started.state.account_exists("nobody")
    assert notarystate.check(Archive(pit.root)) == (started.seq, [])


def test_a_member_record_finds_its_accounts_by_index(pit):
    """A member record replaces its key's rows of the accounts table: found
    by an index on the fingerprint, not a scan of every member's accounts
    (0.19 s a member record at 1,000,000 members: a bulk add O(N^2))."""
    n = Notary(pit)
    plans = [" ".join(str(c) for c in row)
             for sql in ("DELETE FROM accounts WHERE fingerprint = ?",
                         "SELECT account FROM accounts WHERE fingerprint = ?")
             for row in n.state.db.execute(f"EXPLAIN QUERY PLAN {sql}", ("X",))]
    assert plans and all("SCAN" not in p for p in plans), plans


def test_a_schema_2_state_without_the_accounts_index_gets_it_in_place(pit, tmp_path):
    """A state written before the accounts table had its index gets it when
    opened, without a fold from record 1."""
    trade_more(pit, "i")
    Notary(pit).state.close()
    db = sqlite3.connect(pit.root / STATE)
    db.execute("DROP INDEX accounts_fingerprint")
    db.commit()
    db.close()
    started = Notary(pit)
    assert log_lines(pit.root) == []                 # given its index, not ignored and rebuilt
    assert state_of(started) == from_scratch(pit.root, tmp_path)
    assert notarystate.check(Archive(pit.root)) == (started.seq, [])


def _open_files(under: Path) -> list[str]:
    """The files under *under* this process has open."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(under)):
            out.append(target)
    return sorted(out)


def test_a_notary_made_for_one_call_leaves_its_files_at_rest(pit, monkeypatch):
    """CPython's sqlite3 connections sit in reference cycles: dropped, they
    stayed open until the cycle collector ran, their WAL merged into the
    file later, at a moment nobody chose (a cached bench pit changed under
    a copy of it; a deleted GnuPG home's store stayed open).  With the
    collector off, the pit's operations leave no file open behind them."""
    import gc
    gc.collect()
    gc.disable()
    try:
        d = ops.operator_request(pit, "Deposit", "5 USD to alice")       # a notary for one call
        assert d.accepted, d.reason
        ring, fpr = pit.keys["alice"]
        ops.add_member(pit, ring.export(fpr), ["alice"])                  # a GnuPG home, deleted
        with ops.notary(pit) as n:                                        # the context manager
            assert n.seq > 0
        assert n.state is None
        ops.notary(pit).seq                                               # one dropped unclosed
        ops.run_filter(pit, "specialist", ["ACME"])                       # posts through a notary
        assert _open_files(pit.root) == []
        assert [f for f in _open_files(Path("/")) if "pit-keys.sqlite" in f] == []
        r = audit(pit.root)                                               # its own GnuPG home, deleted
        assert r.ok, r.problem
        assert [f for f in _open_files(Path("/")) if "pit-audit-gnupg-" in f] == []
    finally:
        gc.enable()
