"""Judge processes (moderator/judges.py): the stateless part of the
notary's judgement done beside the server's committer.

* the same records, refusals and notices, byte for byte, as the inline
  judgement, over a mixed batch (good, forged, unknown key, expired,
  revoked, hostile, a modify, a deposit, a member added and her first
  order), with the results of real judge processes;
* a proof counts for the key's material only: a key revoked after its
  signature was checked by a judge is refused; through the real server, a
  member removed after its mail was judged is refused, and one added after
  it is accepted;
* a judge killed or stopped mid-way loses nothing and stops nothing, and
  is replaced; the server's stop, and its SIGKILL, leave no judge running.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pit import ops, testkeys
from pit.mailhost import LMTPClient, _lf

from conftest import copy_pit
from test_lmtp_group import Served, _archived, _digest

from moderator import judges as judges_mod
from moderator.judges import Judges
from moderator.notary import Notary, prejudge

ROOT = Path(__file__).resolve().parents[1]


def _mixed(kit) -> list[bytes]:
    """Good, forged, unknown-key, expired, revoked and hostile mail."""
    good = [kit.request("alice", f"m{i}", "Order", f"buy {i + 1} ACME at 12.50") for i in range(4)]
    good += [kit.request("bob", "m1", "Order", "sell 2 ACME at 12.40", mime=True),
             kit.request("bob", "c1", "Order", "cancel m1"),
             kit.request("alice", "t1", "Transfer", "10.00 USD to bob")]
    forged = good[0].replace(b"buy 1 ACME", b"buy 9 ACME")
    hostile = [
        b"From: x@example.org\nTo: demo@example.org\nSubject: hi\n\nplain, unsigned\n",
        b"\x00\xff not an email at all \xfe",
        b"X-Pit-Seq: 1\n" + good[1],
        b"Approved: guess\n" + good[2],
        kit.sign("alice", "not a request at all\n"),
        kit.request("alice", "z1", "Order", "buy 1 NOPE at 1.00"),      # resolution refuses
        kit.request("alice", "m0", "Order", "buy 1 ACME at 12.50"),     # replays ref m0
        kit.request("alice", "w1", "Order", "buy 1 ACME at 12.50", pit="other"),
        b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\n" * 300,
    ]
    others = [kit.request("mallory", "x1", "Order", "buy 1 ACME at 12.50"),   # unknown key
              kit.request("carol", "x1", "Order", "buy 1 ACME at 12.50"),     # not a member here
              kit.request("old", "x1", "Order", "buy 1 ACME at 12.50"),       # expired
              kit.request("gone", "x1", "Order", "buy 1 ACME at 12.50")]      # revoked
    meta = testkeys._meta(kit.keyhome)
    later = [kit.request("alice", "d1", "Order", "modify m1 price 12.45"),
             _operator_mail(kit.pit, "dep1", "Deposit", "100.00 USD to bob"),
             _operator_mail(kit.pit, "add-carol", "Member",
                            f"add {kit.fpr('carol')} accounts carol",
                            "\n" + meta["carol"]["public"].strip() + "\n"),
             kit.request("carol", "x2", "Order", "buy 1 ACME at 12.50")]  # her key: just added
    mixed = good + [forged] + hostile + others + [good[3]] + later       # 21: a duplicate
    return [_lf(m) for m in mixed]


def judged_by_processes(gnupg: Path, max_bytes: int, raws: list[bytes],
                        timeout: float = 60) -> list:
    """Each message's prejudgement from two real judge processes (None where
    there was nothing a judge could take)."""
    pool = Judges(gnupg, max_bytes, 2).start()
    try:
        tickets = [pool.submit(raw) for raw in raws]
        deadline = time.monotonic() + timeout
        while not all(t is None or t.done for t in tickets):
            assert time.monotonic() < deadline, "the judges did not answer"
            time.sleep(0.01)
    finally:
        pool.stop()
    return [t.value if t is not None else None for t in tickets]


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for sub in ("archives", "rejects", "outbox"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file() and not p.name.startswith("notary-state"):
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_the_judges_results_give_the_inline_records_byte_for_byte(kit, tmp_path):
    raws = _mixed(kit)
    a = copy_pit(kit.root, tmp_path / "inline")
    b = copy_pit(kit.root, tmp_path / "judged")
    start = time.time()
    outcomes = {}
    for root in (a, b):
        ticks = itertools.count()
        notary = Notary(root, clock=lambda: start + next(ticks) / 1000)
        pre = None
        if root == b:
            pre = judged_by_processes(root / "gnupg", notary.max_filter_size, raws)
            # the judges did their part: no proof for the forged one (7), the
            # unsigned (8), the one that is no mail (9), the MIME bomb (16) and
            # the keys the pit does not hold (17, 18); the rest are proved
            # (expired and revoked keys too: their standing is the notary's to judge)
            unproved = [i for i, p in enumerate(pre) if p is None or p.proof is None]
            assert unproved == [7, 8, 9, 16, 17, 18, 25], unproved          # 25: carol's, again
            assert pre[8] is None and pre[9] is None and pre[16] is None
        outcomes[root] = [(o.decision, o.records, o.notices, o.duplicate)
                          for o in notary.notarize_mails(raws, prejudged=pre)]
        notary.state.close()
    assert outcomes[a] == outcomes[b]
    decisions = [d for d, *_ in outcomes[a]]
    assert sum(d.accepted for d in decisions) == 11
    assert all(d.accepted for d in decisions[-4:]), decisions[-4:]
    reasons = " | ".join(d.reason for d in decisions)
    for why in ("bad signature", "unknown key", "expired key", "revoked key", "unsigned",
                "X-Pit- headers", "Approved", "malformed request", "replayed", "for pit other",
                "duplicate delivery", "MIME parts"):
        assert why in reasons, why
    assert _files(a) == _files(b)


def test_a_proof_holds_for_the_keys_material_not_its_standing(kit):
    """A judge checked alice's signature while her key was good; it is revoked
    before the notary takes the proof: refused as revoked."""
    raw = _lf(kit.request("alice", "r1", "Order", "buy 1 ACME at 12.50"))
    notary = Notary(kit.root)
    pre = prejudge(raw, notary.verifier, notary.max_filter_size)
    assert pre is not None and pre.proof is not None
    revocation = (kit.keyhome / "openpgp-revocs.d" / f"{kit.fpr('alice')}.rev").read_text()
    notary.keyring.import_revocation(revocation.replace(":-----BEGIN", "-----BEGIN"))
    (outcome,) = notary.notarize_mails([raw], prejudged=[pre])
    assert not outcome.decision.accepted
    assert outcome.decision.reason.startswith("revoked key"), outcome.decision.reason


def _operator_mail(pit, ref: str, key: str, value: str, extra: str = "") -> bytes:
    ring, fpr = ops._operator(pit)
    return ops.sign_request(pit, ops.request_text(pit, "operator", ref, key, value) + extra,
                            ring, fpr, f"{pit.name}-operator@{pit.domain}")


def _send_async(s, raw, replies, key):
    def send():
        with LMTPClient(s.server.host, s.server.port) as c:
            replies[key] = c.send(raw, "x@example.org", [s.pit.address])[s.pit.address]
    t = threading.Thread(target=send)
    t.start()
    return t


def _wait(test, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not test():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_through_the_server_a_member_changed_after_the_judges_read_is_honoured(kit):
    """The committer is held with the operator's removal of alice in hand;
    meanwhile the operator's addition of carol, then alice's and carol's
    orders arrive and a judge checks them (alice's key known and good,
    carol's not known yet).  Released, the records commit in order: alice
    is no member any more and her order is refused; carol is one and hers
    is accepted."""
    pit = kit.pit
    meta = testkeys._meta(kit.keyhome)
    remove = _operator_mail(pit, "rm-alice", "Member", f"remove {kit.fpr('alice')}")
    add = _operator_mail(pit, "add-carol", "Member", f"add {kit.fpr('carol')} accounts carol",
                         "\n" + meta["carol"]["public"].strip() + "\n")
    alice = kit.request("alice", "late1", "Order", "buy 1 ACME at 12.50")
    carol = kit.request("carol", "new1", "Order", "buy 1 ACME at 12.50")
    replies: dict[str, tuple[int, str]] = {}
    threads = []
    with Served(pit, judges=2) as s:
        address = pit.address.lower()
        queue, lock = s.server._queues[address], s.server._pit_locks[address]
        assert s.send(kit.request("bob", "warm", "Order", "sell 1 ACME at 13.00"))[0] == 250
        with lock:                                 # the committer waits for this
            threads.append(_send_async(s, remove, replies, "remove"))
            _wait(lambda: not queue.waiting and not queue.idle, "the removal was not taken")
            for name, raw in (("add", add), ("alice", alice), ("carol", carol)):
                threads.append(_send_async(s, raw, replies, name))
                n = len(threads) - 1
                _wait(lambda: len(queue.waiting) == n, f"{name} did not arrive")
            tickets = [item.ticket for item in queue.waiting]
            assert all(t is not None for t in tickets)        # each handed to a judge
            _wait(lambda: all(t.done for t in tickets), "the judges did not answer")
            assert tickets[1].value.proof is not None          # alice: good when judged
            assert tickets[2].value.proof is None              # carol: not known then
        for t in threads:
            t.join(60)
    assert replies["remove"][0] == replies["add"][0] == 250, replies
    archived = _archived(kit.root)
    assert _digest(remove) in archived and _digest(add) in archived
    assert _digest(alice) not in archived
    assert "refused" in replies["alice"][1] and "not a member" in replies["alice"][1], replies
    assert _digest(carol) in archived, replies["carol"]


def _running(pid: int) -> bool:
    """Is *pid* a live process (a zombie waiting for its reaper is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_judge_killed_or_stopped_mid_way_loses_nothing_and_stops_nothing(kit, monkeypatch):
    """With deliveries in the judges' hands, one judge is killed and the
    other stopped (SIGSTOP): every delivery is answered and archived (the
    committer judges them itself), and both judges are replaced."""
    monkeypatch.setattr(judges_mod, "STUCK_SECONDS", 1.0)
    orders = [kit.request("alice" if i % 2 else "bob", f"j{i}", "Order",
                          f"{'buy' if i % 2 else 'sell'} 1 ACME at 11.{i:02d}") for i in range(24)]
    replies: dict[int, tuple[int, str]] = {}
    with Served(kit.pit, judges=2) as s:
        address = kit.pit.address.lower()
        queue, lock, pool = s.server._queues[address], s.server._pit_locks[address], s.service._judges
        assert s.send(orders[0])[0] == 250
        first = pool.pids()
        assert len(first) == 2
        killed, stopped = first
        os.kill(stopped, signal.SIGSTOP)
        threads = []
        try:
            with lock:                             # the committer waits: deliveries pile up
                threads.append(_send_async(s, orders[1], replies, 1))
                _wait(lambda: not queue.waiting and not queue.idle, "not taken")
                for i in range(2, 12):
                    threads.append(_send_async(s, orders[i], replies, i))
                _wait(lambda: len(queue.waiting) == 10, "the deliveries did not arrive")
                assert all(item.ticket is not None for item in queue.waiting)
                in_hand = [j for j in pool.judges if j.inflight]
                assert in_hand, "no judge holds a delivery"
                os.kill(killed, signal.SIGKILL)
            for t in threads:
                t.join(60)
            assert sorted(replies) == list(range(1, 12))
            # the dead judge is replaced after a second, the stopped one once
            # its oldest task is older than STUCK_SECONDS
            i = 12
            deadline = time.monotonic() + 30
            while set(pool.pids()) & set(first) or len(pool.pids()) < 2:
                assert time.monotonic() < deadline, (first, pool.pids())
                time.sleep(0.3)
                if i < len(orders):
                    replies[i] = s.send(orders[i])
                    i += 1
            while i < len(orders):
                replies[i] = s.send(orders[i])
                i += 1
            assert not _running(killed) and not _running(stopped)
        finally:
            if _running(stopped):
                os.kill(stopped, signal.SIGKILL)
        last = pool.pids()
    assert all(code == 250 and "notarized" in text for code, text in replies.values()), replies
    archived = _archived(kit.root)
    assert all(_digest(o) in archived for o in orders)
    assert not any(_running(pid) for pid in last)          # the server's stop ends its judges


SERVER = r"""
import sys, time
from pit.daemon import NotaryService
from pit.mailhost import NotaryLMTPServer, PitRoute
root, port = sys.argv[1], int(sys.argv[2])
service = NotaryService(root, smtp=None, seal_seconds=60)
server = NotaryLMTPServer({service.pit.address: PitRoute(service.pit.address,
    service.pit.notary_address, service, "secret")}, ("127.0.0.1", 9), port=port,
    spool_dir=root + "/spool", judges=2)
server.start()
print(*service._judges.pids(), flush=True)
print("ready" if service._judges.wait_ready(60) else "late", flush=True)
time.sleep(120)
"""


def test_the_judges_end_with_a_killed_server(kit):
    from pit.mailhost import free_port
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(kit.root), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2, proc.stderr.read()
        assert proc.stdout.readline().strip() == b"ready"   # the judges have started
        with LMTPClient("127.0.0.1", port) as c:           # they judge: the server is up
            raw = kit.request("alice", "k1", "Order", "buy 1 ACME at 12.50")
            assert c.send(raw, "x@example.org", [kit.pit.address])[kit.pit.address][0] == 250
        assert all(_running(pid) for pid in pids)
        proc.kill()
        proc.wait()
        _wait(lambda: not any(_running(pid) for pid in pids), "a judge outlived its server", 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
