"""pit audit: a clean archive passes; every kind of tampering is detected and
located (which record, what, expected, found)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pit import mbox, message, ops
from pit.archive import CRASH_ENV, Archive, record_hash
from pit.audit import audit
from pit.keyring import Keyring

from conftest import copy_of_traded, traded_pit


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return traded_pit(tmp_path_factory.mktemp("audit"))


@pytest.fixture
def pit(template, tmp_path):
    return copy_of_traded(template, tmp_path)


def entries(p):
    """(volume path, [entry bytes]) of the single volume."""
    vol = p.root / "archives" / "000001.mbox"
    data = vol.read_bytes()
    parts = data.split(b"\nFrom ")
    return vol, [parts[0] + b"\n"] + [b"From " + x + b"\n" for x in parts[1:-1]] + \
        [b"From " + parts[-1]]


def seq_of(entry):
    return int(re.search(rb"\nX-Pit-Seq: (\d+)\n", entry).group(1))


def find(entries_, kind, nth=0, request=None):
    hits = [i for i, e in enumerate(entries_) if f"\nX-Pit-Kind: {kind}\n".encode() in e
            and (request is None or request.encode() in e)]
    return hits[nth]


def rewrite(p, vol, es):
    """Write the volume and make the index agree with it, as a forger would."""
    data = b"".join(es)
    vol.write_bytes(data)
    idx = p.root / "archives" / "index"
    head, line = idx.read_text().splitlines()
    name, first = line.split()[:2]
    n = len(es)
    idx.write_text(f"{head}\n{name} {first} {int(first) + n - 1} {n} {len(data)}\n")


def failing(p):
    r = audit(p.root)
    assert not r.ok, "the audit passed a tampered archive"
    return r.problem


def test_a_clean_archive_passes(pit):
    r = audit(pit.root)
    assert r.ok, r.problem
    assert r.reports == 3 and r.checkpoints == 3 and r.signatures >= 10
    assert "RESULT: PASS" in r.summary()


def test_one_byte_changed_in_an_order(pit):
    vol, es = entries(pit)
    i = find(es, "order", request="buy 10 ACME")
    es[i] = es[i].replace(b"Order: buy 10 ACME", b"Order: buy 90 ACME")
    vol.write_bytes(b"".join(es))            # same length: the index still agrees
    problem = failing(pit)
    assert problem.startswith(f"record {seq_of(es[i])}: X-Pit-Digest is not the hash")


def test_one_byte_changed_in_a_stamp(pit):
    vol, es = entries(pit)
    i = find(es, "order", request="sell 4 ACME")
    es[i] = es[i].replace(b"X-Pit-Request: sell 4 ACME", b"X-Pit-Request: sell 9 ACME")
    vol.write_bytes(b"".join(es))
    problem = failing(pit)
    assert problem.startswith(f"record {seq_of(es[i])}: the stamp does not say what the signed")
    assert "expected: x-pit-request: sell 4 ACME" in problem


def test_a_deleted_message(pit):
    vol, es = entries(pit)
    i = find(es, "order", request="sell 4 ACME")
    gone = seq_of(es[i])
    del es[i]
    vol.write_bytes(b"".join(es))
    # as found on disk, and with the index made to agree: the record in its
    # place is the next one, at the byte offset where the deleted one was
    for forged_index in (False, True):
        if forged_index:
            rewrite(pit, vol, es)
        problem = failing(pit)
        assert problem.startswith(f"record {gone}: the entry in this record's place has "
                                  "another X-Pit-Seq"), problem
        assert f"found:    {gone + 1}" in problem
        assert f"where:    000001.mbox byte {len(b''.join(es[:i]))}" in problem


def test_two_messages_reordered(pit):
    vol, es = entries(pit)
    i = find(es, "order", request="buy 10 ACME")
    first = seq_of(es[i])
    es[i], es[i + 1] = es[i + 1], es[i]
    rewrite(pit, vol, es)
    problem = failing(pit)
    assert problem.startswith(f"record {first}: the entry in this record's place has "
                              "another X-Pit-Seq"), problem
    assert f"found:    {first + 1}" in problem


def _post_as_specialist(pit, edit):
    """A rogue specialist: its own key, the real notary, a doctored output."""
    from filters.specialist import Specialist
    import io
    from pit.filter import run
    pit.send_order = None
    ring, fpr = pit.keys["alice"]
    raw = ops.sign_request(pit, ops.request_text(pit, "alice", "o9", "Order",
                                                 "buy 1 ACME at 12.40"), ring, fpr,
                           "alice@example.org")
    ops.send_local(pit, raw)
    assert all(d.accepted for d in ops.notary(pit).run_maildir())
    flt = Specialist(["ACME"])
    out = io.BytesIO()
    run(flt, ops.replay(pit, Specialist(["ACME"])), out)
    msgs = [m for m in mbox.iter_messages(out.getvalue()) if not mbox.stamp(m)]
    msgs = [edit(m) for m in msgs]
    ds = ops.post(pit, "specialist ACME", msgs)
    assert all(d.accepted for d in ds), [d.reason for d in ds]
    return ds


def test_a_forged_trade_in_a_notarized_report(pit):
    def edit(m):
        if b"\nSubject: ACME report" in m:
            return m + b"trade 99 ACME 5 at 12.40 USD buyer alice o9 seller bob o2 maker sell fees 0.07 0.13\n"
        return m
    ds = _post_as_specialist(pit, edit)
    problem = failing(pit)
    assert problem.startswith(f"record {ds[0].seq}: specialist ACME report differs from the replay")
    assert "found:    trade 99 ACME" in problem


def test_a_swapped_checkpoint(pit):
    def edit(m):
        if b"\nSubject: ACME checkpoint" in m:
            return re.sub(rb"balance alice:ACME USD (\d+)", rb"balance alice:ACME USD 99\1", m)
        return m
    ds = _post_as_specialist(pit, edit)
    problem = failing(pit)
    assert problem.startswith(f"record {ds[1].seq}: specialist ACME checkpoint differs")
    assert "balance alice:ACME USD 99" in problem


def test_a_checkpoint_replaced_by_an_older_one(pit):
    vol, es = entries(pit)
    old = find(es, "checkpoint", 0, request="specialist ACME")
    new = find(es, "checkpoint", 1, request="specialist ACME")
    stamp_new, _ = mbox.split_stamp(es[new][es[new].index(b"\n") + 1:])
    _, orig_old = mbox.split_stamp(es[old][es[old].index(b"\n") + 1:])
    es[new] = es[new][:es[new].index(b"\n") + 1] + stamp_new + orig_old
    rewrite(pit, vol, es)
    problem = failing(pit)
    assert problem.startswith(f"record {seq_of(es[new])}: X-Pit-Digest is not the hash")


def test_a_stranger_appends_a_forged_trade_report(pit, tmp_path):
    """Appended with a correct seq and chain, signed by a key the pit never admitted."""
    ring = Keyring(tmp_path / "mallory")
    fpr = ring.generate("mallory", "mallory@example.org")
    arch = Archive(pit.root)
    body = ("Report: specialist ACME\nPit: demo\nFrom-Seq: 1\nTo-Seq: 1\n\n"
            "trade 1 ACME 500 at 0.01 USD buyer mallory x seller bob o1 maker sell fees 0.00 0.00\n")
    msg = message.filter_output("report", "specialist ACME", "demo", body, "2030-01-01T00:00:00Z")
    head, _, text = msg.partition(b"\n\n")
    original = head + b"\n\n" + ring.clearsign(text.decode(), fpr).encode()
    import hashlib
    seq = arch.last_seq() + 1
    stamp = (f"X-Pit-Seq: {seq}\nX-Pit-Time: 2030-01-01T00:00:00.000000Z\n"
             f"X-Pit-Prev: {arch.last_hash()}\nX-Pit-Digest: {hashlib.sha256(original).hexdigest()}\n"
             f"X-Pit-Signer: {fpr}\nX-Pit-Pit: demo\nX-Pit-Kind: report\n"
             f"X-Pit-Account: specialist:ACME\nX-Pit-Ref: report-1\n"
             f"X-Pit-Request: specialist ACME 1-1\n").encode()
    arch.append([(stamp + original, "notary", 1893456000)])
    ring.stop_agent()
    problem = failing(pit)
    assert problem.startswith(f"record {seq}: the sender's signature does not verify")
    assert "unknown-key" in problem


def test_an_archive_cut_short(pit):
    vol = pit.root / "archives" / "000001.mbox"
    data = vol.read_bytes()
    vol.write_bytes(data[: len(data) // 2])
    problem = failing(pit)
    assert "000001.mbox" in problem


def test_an_unsealed_tail(pit):
    """Records appended after the last seal (the notary never sealed them)."""
    vol, es = entries(pit)
    assert find(es, "seal", -1) == len(es) - 1          # every batch ends with its seal
    before = find(es, "seal", -2)
    del es[-1]                                          # the records since `before`: unsealed
    rewrite(pit, vol, es)
    problem = failing(pit)
    assert problem.startswith(f"record {seq_of(es[before]) + 1}: record not covered by any seal")



def _stopped_writer(p, step: str) -> subprocess.Popen:
    """``pit deposit`` (the real notary) stopped inside its append at the
    archive's write *step* (archive.CRASH_ENV, STEP:stop): its bytes
    written, the index not yet."""
    proc = subprocess.Popen([str(Path(sys.executable).with_name("pit")), "--pit", str(p.root),
                             "deposit", "1.00", "USD", "alice"],
                            env={**os.environ, CRASH_ENV: f"{step}:stop"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while "T (stopped)" not in Path(f"/proc/{proc.pid}/status").read_text():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_live_pit_audits_while_the_notary_appends_and_a_crashed_append_fails(pit):
    """pit audit of a pit whose notary is appending (its bytes written, the
    index not yet: 2 audits in 12 of a busy pit failed, 'a crashed append')
    passes over the records the index holds; an append whose writer died
    there still fails."""
    before = audit(pit.root)
    assert before.ok, before.problem
    proc = _stopped_writer(pit, "after-data-fsync")
    try:
        r = audit(pit.root)
        assert r.ok and r.records == before.records, r.problem
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=60) == 0, proc.communicate()
    r = audit(pit.root)
    assert r.ok and r.records > before.records, r.problem
    proc = _stopped_writer(pit, "after-data-fsync")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    r = audit(pit.root)
    assert not r.ok and "uncommitted bytes" in r.problem and "crashed append" in r.problem, \
        r.problem


@pytest.mark.parametrize("holder", ["1 {host}", "4194000 elsewhere.example"],
                         ids=["a-live-pid-here", "a-fresh-lock-of-another-host"])
def test_a_copy_with_junk_past_its_index_fails_whatever_dotlock_it_carries(pit, holder):
    """A member's copy of a whole pit directory carries pit.conf and may carry
    a volume's dotlock; a hostile one can write a dotlock that names a live
    process of the auditor's host, or a fresh one of another host.  Neither
    makes bytes past the index an append under way: only a writer holding
    the volume's fcntl lock does, and a copy has none.  The audit fails."""
    import socket
    vol = pit.root / "archives" / "000001.mbox"
    with open(vol, "ab") as f:
        f.write(b"From notary Mon Dec  7 00:00:00 2026\nX-Pit-Seq: 999999\n\nforged\n\n")
    (vol.parent / (vol.name + ".lock")).write_text(holder.format(host=socket.gethostname()) + "\n")
    r = audit(pit.root)
    assert not r.ok and "uncommitted bytes" in r.problem, r.problem
