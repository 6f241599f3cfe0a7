"""The archive: rollover, index seek, sequence guard, locking, repair."""

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pit import archive, mbox
from pit.archive import Archive, ArchiveError, SequenceError

ROOT = Path(__file__).resolve().parents[1]


def record(seq, prev, body=b"From: alice@example.org\n\nFrom the floor\n>From here\n"):
    digest = hashlib.sha256(body).hexdigest()
    return (f"X-Pit-Seq: {seq}\nX-Pit-Time: 2026-11-22T00:52:38Z\nX-Pit-Prev: {prev}\n"
            f"X-Pit-Digest: {digest}\n").encode() + body


def append_n(arch, n, body=None):
    with arch.writer() as w:
        seq, prev, batch = w.last_seq, w.last_hash, []
        for _ in range(n):
            seq += 1
            m = record(seq, prev) if body is None else record(seq, prev, body)
            batch.append((m, "notary@demo", "2026-11-22T00:52:38Z"))
            prev = archive.record_hash(m)
        return w.append(batch), [m for m, _, _ in batch]


def test_rollover_index_and_seek(tmp_path):
    arch = Archive(tmp_path, volume_limit=4)
    stored = []
    for n in (3, 5, 1, 4):
        _, msgs = append_n(arch, n)
        stored += msgs
    assert [v.name for v in arch.volumes()] == ["000001.mbox", "000002.mbox", "000003.mbox",
                                                 "000004.mbox"]
    assert [(v.first, v.last, v.count) for v in arch.volumes()] == [
        (1, 4, 4), (5, 8, 4), (9, 12, 4), (13, 13, 1)]
    for v in arch.volumes():
        assert (tmp_path / "archives" / v.name).stat().st_size == v.bytes
    assert arch.count() == arch.last_seq() == 13
    assert arch.last_hash() == archive.record_hash(stored[-1])
    assert list(arch.read()) == list(enumerate(stored, 1))
    assert list(arch.read(6, 10)) == [(s, stored[s - 1]) for s in range(6, 11)]
    assert arch.check() == []


def test_seek_reads_only_the_volumes_needed(tmp_path):
    arch = Archive(tmp_path, volume_limit=2)
    append_n(arch, 6)
    (tmp_path / "archives" / "000001.mbox").write_bytes(b"damaged")
    assert [s for s, _ in arch.read(3)] == [3, 4, 5, 6]
    with pytest.raises(ArchiveError, match="000001.mbox: truncated at byte 7"):
        list(arch.read(1))


def test_signed_bytes_survive(tmp_path):
    body = (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nFrom alice\n>From bob\n"
            b"Order: buy 1 ACME at 1\n-----BEGIN PGP SIGNATURE-----\n\niHUEARYK\n=abcd\n"
            b"-----END PGP SIGNATURE-----")
    arch = Archive(tmp_path)
    _, msgs = append_n(arch, 2, body=body)
    for (_, got), sent in zip(arch.read(), msgs):
        assert got == sent and mbox.split_stamp(got)[1] == body


def test_out_of_sequence_and_bad_chain_refused(tmp_path):
    arch = Archive(tmp_path)
    append_n(arch, 2)
    last = arch.last_hash()
    with pytest.raises(SequenceError, match="X-Pit-Seq '4', expected 3"):
        arch.append([(record(4, last), "n", 0)])
    with pytest.raises(SequenceError, match="X-Pit-Seq '2', expected 3"):
        arch.append([(record(2, last), "n", 0)])
    with pytest.raises(SequenceError, match="X-Pit-Prev"):
        arch.append([(record(3, "f" * 64), "n", 0)])
    with pytest.raises(SequenceError, match="X-Pit-Seq None"):
        arch.append([(b"From: a\n\nno stamp\n", "n", 0)])
    # a batch with a bad record in the middle writes nothing
    good = record(3, last)
    with pytest.raises(SequenceError):
        arch.append([(good, "n", 0), (record(5, "0" * 64), "n", 0)])
    assert arch.last_seq() == 2 and arch.check() == []


def test_uncommitted_tail_is_quarantined_by_next_writer(tmp_path):
    arch = Archive(tmp_path)
    append_n(arch, 3)
    vol = tmp_path / "archives" / "000001.mbox"
    committed = vol.stat().st_size
    with open(vol, "ab") as f:
        f.write(b"From notary@demo Thu Jan  1 00:00:00 1970\nX-Pit-Seq: 4\nX-Pit-Ti")
    assert any("uncommitted" in p for p in arch.check())
    append_n(arch, 1)
    assert arch.check() == [] and arch.last_seq() == 4
    (q,) = (tmp_path / "archives" / "quarantine").iterdir()
    assert "000001.mbox-at-%d-uncommitted" % committed in q.name
    assert q.read_bytes().endswith(b"X-Pit-Ti")


def test_repair_rebuilds_lost_index_and_cuts_torn_tail(tmp_path):
    arch = Archive(tmp_path, volume_limit=3)
    append_n(arch, 5)
    d = tmp_path / "archives"
    (d / "index").unlink()
    with open(d / "000002.mbox", "ab") as f:       # a record cut at a line boundary
        f.write(mbox.format_message(record(6, "0" * 64)[:-8], "n", 0))
    with pytest.raises(ArchiveError, match="index: missing"):
        arch.last_seq()
    with pytest.raises(ArchiveError, match="run repair"):
        append_n(arch, 1)
    actions = arch.repair()
    assert any("torn-tail" in a for a in actions), actions
    assert arch.last_seq() == 5 and arch.check() == []
    assert len(list((d / "quarantine").iterdir())) == 1


def test_truncated_copy_reported(tmp_path):
    arch = Archive(tmp_path)
    append_n(arch, 3)
    vol = tmp_path / "archives" / "000001.mbox"
    vol.write_bytes(vol.read_bytes()[:150])
    (problem,) = arch.check()
    assert "000001.mbox: truncated at byte 150" in problem
    actions = arch.repair()
    assert arch.check() == [] and arch.last_seq() == 0, actions


def test_stale_dotlock_is_broken(tmp_path):
    arch = Archive(tmp_path, lock_timeout=2)
    append_n(arch, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "archives" / "000001.mbox.lock"
    import socket
    lock.write_text(f"{dead.pid} {socket.gethostname()}\n")
    append_n(arch, 1)
    assert not lock.exists() and arch.last_seq() == 2


def test_live_dotlock_times_out(tmp_path):
    arch = Archive(tmp_path, lock_timeout=0.2)
    append_n(arch, 1)
    import socket
    (tmp_path / "archives" / "000001.mbox.lock").write_text(f"1 {socket.gethostname()}\n")
    with pytest.raises(archive.LockTimeout, match="held by 1"):
        append_n(arch, 1)


WRITER = textwrap.dedent("""
    import sys
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from pit import archive
    from test_archive import record
    arch = archive.Archive(sys.argv[2], volume_limit=7)
    me, n = sys.argv[3], int(sys.argv[4])
    done = 0
    while done < n:
        with arch.writer() as w:
            m = record(w.last_seq + 1, w.last_hash, body=f"From: {me}\\n\\n{me} {done}\\n".encode())
            w.append([(m, me, 0)])
        done += 1
""")


def test_two_processes_contend(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), who, "40"])
             for who in ("alice", "bob")]
    for p in procs:
        assert p.wait(timeout=60) == 0
    arch = Archive(tmp_path, volume_limit=7)
    assert arch.check() == [] and arch.last_seq() == 80
    for who in ("alice", "bob"):
        mine = [int(m.rsplit(b" ", 1)[1]) for _, m in arch.read() if m.endswith(b"\n") and
                m.split(b"\n\n", 1)[1].startswith(who.encode())]
        assert mine == list(range(40))


def test_entries_from_any_record_past_large_ones(tmp_path, monkeypatch):
    """read_entries from any record gives the stored entries, whichever way
    the walk finds them (small steps make the large records span many), and
    again from one Archive whose walks go on from what they found."""
    monkeypatch.setattr(archive, "_WALK_STEP", 64)
    monkeypatch.setattr(archive, "_WALK_LEAD", 128)
    arch = Archive(tmp_path, volume_limit=9)
    sizes = [1, 1, 5000, 1, 1, 1, 20000, 3000, 1, 1, 1, 1, 40000, 1, 1, 1, 1, 1, 1, 9000]
    stored = []
    for n in sizes:
        _, msgs = append_n(arch, 1, body=b"From: a@b\n\n" + b"x" * n + b"\n>From here\n")
        stored += msgs
    data = b"".join((tmp_path / "archives" / v.name).read_bytes() for v in arch.volumes())
    starts = [0] + [i + 1 for i in range(len(data)) if data.startswith(b"\nFrom ", i)]
    for order in (range(1, 21), range(20, 0, -1)):
        shared = Archive(tmp_path, volume_limit=9)
        for s in order:
            for a in (shared, Archive(tmp_path, volume_limit=9)):
                got = list(a.read_entries(s))
                assert [q for q, _, _ in got] == list(range(s, 21))
                for q, entry, body in got:
                    assert mbox.unquote(entry[body:-1]) == stored[q - 1]
                    assert entry.startswith(b"From notary@demo ") and entry.endswith(b"\n\n")
                assert list(a.read_entries(s, s))[0][1] == got[0][1]
    assert len(starts) == 20


def test_entry_walk_finds_a_short_volume(tmp_path, monkeypatch):
    arch = Archive(tmp_path, volume_limit=50)
    append_n(arch, 6)
    index = tmp_path / "archives" / "index"
    vol = arch.volumes()[0]
    index.write_text(archive.INDEX_HEADER + archive.Volume(vol.name, 1, 7, 7, vol.bytes).line())
    with pytest.raises(ArchiveError, match="fewer entries than the 7 the index says"):
        list(Archive(tmp_path).read_entries(2))
    with pytest.raises(ArchiveError, match="record at byte .* is not X-Pit-Seq 4"):
        list(Archive(tmp_path).read_entries(4))
    monkeypatch.setattr(archive, "_WALK_STEP", 64)
    monkeypatch.setattr(archive, "_WALK_LEAD", 0)             # both walks from the start
    for s in range(2, 8):
        with pytest.raises(ArchiveError, match="fewer entries than the 7 the index says|is not X-Pit-Seq"):
            list(Archive(tmp_path).read_entries(s))


def test_entry_stamp_reads_the_head_of_a_large_message(tmp_path):
    big = b"From: a@b\n\n" + b"y" * 100_000 + b"\n"
    arch = Archive(tmp_path)
    append_n(arch, 2, body=big)
    append_n(arch, 1)
    for seq, buf, start, body, end in arch.entry_spans(1):
        st, entry = archive.entry_stamp(buf, start, body, end)
        assert st == mbox.stamp(buf[body:end]) and st["x-pit-seq"] == str(seq)
        assert entry == (buf[start:end] if seq == 3 else None)
    long_stamp = b"X-Pit-Seq: 1\n" + b"".join(b"X-Pit-N%d: %s\n" % (i, b"v" * 60) for i in range(200))
    for msg in (long_stamp + b"\n" + big, long_stamp[:8190] + b"\nX-Pit-Z: 1\n" + big,
                long_stamp[:8187] + b"\nX-P" + big):
        entry = b"From x\n" + msg
        st, copied = archive.entry_stamp(entry, 0, 7, len(entry))
        assert st == mbox.stamp(msg) and copied in (None, entry)
    bad = b"X-Pit-Seq: 1\n" + b"X-Pit-Q: " + b"q" * 9000 + b"\nX-Pit-Q: 2\n" + big
    with pytest.raises(mbox.MboxError, match="repeated"):
        archive.entry_stamp(bad, 0, 0, len(bad))


def test_appends_with_the_index_fsynced_beside_the_data_write_what_the_plain_order_does(
        tmp_path, monkeypatch):
    """archive.OVERLAP_FSYNCS (index.tmp fsync'd while the data is) is a
    speed trick: the same appends (across a rollover) leave the same files
    as the plain order (data fsync'd, then index.tmp)."""
    files = {}
    for overlap in (True, False):
        monkeypatch.setattr(archive, "OVERLAP_FSYNCS", overlap)
        arch = Archive(tmp_path / str(overlap), volume_limit=4)
        for n in (3, 5, 1, 4):
            append_n(arch, n)
        assert arch.check() == [] and arch.last_seq() == 13
        d = tmp_path / str(overlap) / "archives"
        files[overlap] = {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}
    assert "index.tmp" not in files[True]
    assert files[True] == files[False]


def test_records_of_kind_is_the_stamps_kinds_read_one_by_one(tmp_path):
    """records_of_kind (one search over the mapped volumes for "Kind: K",
    each entry it hits looked at once) gives exactly the records a reading
    of every stamp gives, whatever the bodies hold: lines that look like
    the stamp's, many in one record, a record of the kind after them."""
    from conftest import Tape
    tape = Tape()
    tape.op("currency", "USD 0.01")
    tape.op("instrument", "ACME USD tick 0.01 lot 1")
    for i in range(12):
        tape.order("alice", f"o{i}", f"buy {i + 1} ACME at 1.00")
        if i % 4 == 1:
            tape.report("transfers", "demo", 1, tape.seq, [f"transferred {tape.seq} a b 1.00 USD",
                                                            "Kind: report", "X-Pit-Kind: report"])
        if i % 4 == 2:                  # hostile bodies: the kind's line, many times over
            tape.forged("order", "bob", "buy 1 ACME at 1.00", ticker="ACME",
                        body="Kind: report\nX-Pit-Kind: report\n" * 50
                             + "X-Pit-Kind: checkpoint\nKind: checkpoint\n")
    arch = Archive(tmp_path, volume_limit=5)
    with arch.writer() as w:
        prev, batch = w.last_hash, []
        for msg in tape.msgs:           # chained as the notary chains them
            msg = msg.replace(b"X-Pit-Prev: " + b"0" * 64, b"X-Pit-Prev: " + prev.encode(), 1)
            batch.append((msg, "notary@demo", "2026-11-22T00:52:38Z"))
            prev = archive.record_hash(msg)
        w.append(batch)
    assert len(arch.volumes()) > 3
    for kinds in (("report",), ("report", "checkpoint"), ("order",), ("instrument", "currency")):
        for first in (1, 2, 6, 9, 17, tape.seq):
            plain = [(seq, msg) for seq, msg in arch.read(first)
                     if mbox.stamp(msg).get("x-pit-kind") in kinds]
            assert list(arch.records_of_kind(first, kinds)) == plain, (kinds, first)


# -- what an append keeps for the next (archive.KEEP_KNOWN) ---------------------------

def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.mark.parametrize("keep", [True, False])
def test_an_append_after_another_writers_is_checked_against_what_it_wrote(
        tmp_path, monkeypatch, keep):
    """One Archive object appends, another writer appends between two of its
    appends (in this process here; pit notarize beside a server in life):
    what the first kept from its last append is not used, whether the other
    wrote into the same volume or rolled over to a new one."""
    monkeypatch.setattr(archive, "KEEP_KNOWN", keep)
    arch = Archive(tmp_path, volume_limit=4)
    other = Archive(tmp_path, volume_limit=4)
    _, mine = append_n(arch, 2)
    stale = record(3, archive.record_hash(mine[-1]))
    for n in (1, 3):                        # into volume 1; then across the rollover
        append_n(other, n)
        assert arch.last_seq() == other.last_seq() == {1: 3, 3: 7}[n]
        with pytest.raises(SequenceError, match="expected"):
            arch.append([(stale, "n", 0)])
        last, _ = append_n(arch, 1)
        assert last == arch.last_seq() == other.last_seq()
    assert arch.check() == [] and [v.count for v in arch.volumes()] == [4, 4]
    assert arch.last_seq() == 8


@pytest.mark.parametrize("keep", [True, False])
def test_a_last_volume_rewritten_under_the_same_index_is_read_again(tmp_path, monkeypatch, keep):
    """The index byte for byte as this Archive's last append left it, but the
    last record's bytes changed (same size, a restored or rewritten volume):
    the next append chains to the record on disk, not the one remembered."""
    monkeypatch.setattr(archive, "KEEP_KNOWN", keep)
    arch = Archive(tmp_path)
    _, msgs = append_n(arch, 2)
    vol = tmp_path / "archives" / "000001.mbox"
    data = vol.read_bytes()
    changed = data[:-3] + (b"X" if data[-3:-2] != b"X" else b"Y") + data[-2:]
    index = (tmp_path / "archives" / "index").read_bytes()
    tmp = vol.with_name("rewritten")
    tmp.write_bytes(changed)
    os.replace(tmp, vol)                    # a new inode, the same size
    assert (tmp_path / "archives" / "index").read_bytes() == index
    with pytest.raises(SequenceError, match="X-Pit-Prev"):
        arch.append([(record(3, archive.record_hash(msgs[-1])), "n", 0)])
    append_n(arch, 1)                       # chains to what is on disk
    assert arch.last_seq() == 3


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("step", ["mid-write", "after-rollover-create", "after-index-temp"])
def test_an_append_after_another_writer_was_killed_cuts_what_it_left(
        tmp_path, monkeypatch, keep, step):
    """Another process is killed in the middle of its append (the index
    unchanged): this Archive's next append quarantines the bytes it left
    in the last volume or in a volume it began, and chains on."""
    monkeypatch.setattr(archive, "KEEP_KNOWN", keep)
    arch = Archive(tmp_path, volume_limit=7)
    append_n(arch, 6 if step == "after-rollover-create" else 3)
    before = _files(tmp_path / "archives")
    env = {**os.environ, archive.CRASH_ENV: step}
    proc = subprocess.run([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), "bob", "2"],
                          env=env, timeout=60)
    assert proc.returncode == -9
    assert _files(tmp_path / "archives") != before
    last, _ = append_n(arch, 2)
    assert last == arch.last_seq() and arch.check() == []
    assert sorted(s for s, _ in arch.read()) == list(range(1, last + 1))
    if step == "mid-write":
        assert any((tmp_path / "archives" / "quarantine").iterdir())


def test_appends_that_keep_what_they_learned_write_what_the_plain_ones_do(
        tmp_path, monkeypatch):
    """archive.KEEP_KNOWN is a speed trick: the same appends (one writer and
    another between, across rollovers) leave the same files as appends that
    read and check everything again."""
    files = {}
    for keep in (True, False):
        monkeypatch.setattr(archive, "KEEP_KNOWN", keep)
        arch = Archive(tmp_path / str(keep), volume_limit=4)
        other = Archive(tmp_path / str(keep), volume_limit=4)
        seen = []
        for n in (3, 5, 1, 4, 2):
            append_n(arch, n)
            if n == 1:
                append_n(other, 2)
            seen.append((arch.volumes(), arch.last_seq(), arch.last_hash(), other.volumes()))
        assert arch.check() == [] and arch.last_seq() == 17
        files[keep] = _files(tmp_path / str(keep) / "archives"), seen
    assert files[True] == files[False]


@pytest.mark.parametrize("fresh", [False, True], ids=["next-append", "first-append"])
def test_the_volumes_fcntl_lock_is_held_until_the_index_commits(tmp_path, monkeypatch, fresh):
    """A writer holds the volume's fcntl lock (beside its dotlock) for the
    whole append: a process that takes fcntl locks alone (a mail tool
    without dotlocks) cannot take it between the data's fsync and the
    index's rename.  (Before: the data was written through a second
    descriptor of the volume, whose close dropped the process's fcntl lock
    on it, POSIX's rule, in the middle of the append; and a first append
    (*fresh*: an Archive that has not appended yet) read the last
    record's hash and cut torn tails through other descriptors too.)"""
    arch = Archive(tmp_path)
    append_n(arch, 2)
    if fresh:
        arch = Archive(tmp_path)
    probe = textwrap.dedent("""
        import fcntl, os, sys
        fd = os.open(sys.argv[1], os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("taken")
        except OSError:
            print("held")
    """)
    seen = []
    real = archive._crash_point

    def at(step):
        if step in ("after-data-fsync", "after-index-temp"):
            done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "archives" / "000001.mbox")],
                                  capture_output=True, text=True)
            seen.append((step, done.stdout.strip() or done.stderr))
        real(step)
    monkeypatch.setattr(archive, "_crash_point", at)
    append_n(arch, 3)
    assert seen == [("after-data-fsync", "held"), ("after-index-temp", "held")]
    assert arch.last_seq() == 5
