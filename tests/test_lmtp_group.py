"""The notary's mail path with group commit, through the user's path:
signed mail over LMTP from concurrent connections, the real notary
(pit.daemon.NotaryService in pit.mailhost.NotaryLMTPServer), the archive.

* every 250 is for a record on disk, and deliveries that arrive together
  share one durable append;
* a refused message in a group gets its own reply and the others are
  archived;
* a server killed in the middle of a group's append (before its fsync,
  and after the data's fsync but before the index commits) has
  acknowledged nothing that is missing afterwards;
* on the notary's host, a specialist woken by the append (not by list
  delivery) posts the trade.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pit import mbox, ops, trace
from pit.archive import CRASH_ENV, Archive
from pit.daemon import FilterDaemon, NotaryService
from pit.mailhost import LMTPClient, NotaryLMTPServer, PitRoute, _LMTPController, free_port
from pit.watch import AppendWatch

from conftest import funded_pit

ROOT = Path(__file__).resolve().parents[1]


class _Sink:
    """A plain LMTP server in Mailman's place: keeps every post."""

    def __init__(self):
        self.posts: list[bytes] = []
        self.open = threading.Event()      # cleared: Mailman busy (up to 5 s a post)
        self.open.set()
        self.refuse = False                # True: every post is refused (451)

    async def handle_DATA(self, server, session, envelope):
        busy_until = time.monotonic() + 5
        while not self.open.is_set() and time.monotonic() < busy_until:
            await asyncio.sleep(0.01)
        if self.refuse:
            return "\r\n".join("451 4.3.0 try again later" for _ in envelope.rcpt_tos)
        self.posts.append(envelope.original_content)
        return "\r\n".join("250 2.0.0 OK" for _ in envelope.rcpt_tos)


class Served:
    """A pit's real notary behind a running NotaryLMTPServer, a sink for Mailman."""

    def __init__(self, pit, spool=None, **server_options):
        self.pit = pit
        self.sink = _Sink()
        port = free_port()
        self._sink = _LMTPController(self.sink, hostname="127.0.0.1", port=port, ready_timeout=10)
        self.service = NotaryService(pit, smtp=None, seal_seconds=60)
        route = PitRoute(pit.address, pit.notary_address, self.service, "secret", spool)
        self.server = NotaryLMTPServer({pit.address: route}, ("127.0.0.1", port),
                                       **server_options)

    def __enter__(self):
        self._sink.start()
        self.server.start()
        self.service.attach(self.server)
        self.service.start()
        return self

    def __exit__(self, *exc):
        try:
            self.service.stop()
        finally:
            self.server.stop()
            self._sink.stop()

    def send(self, raw: bytes, sender: str = "x@example.org") -> tuple[int, str]:
        with LMTPClient(self.server.host, self.server.port) as c:
            return c.send(raw, sender, [self.pit.address])[self.pit.address]


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def _archived(root) -> dict[str, int]:
    return {mbox.stamp(m)["x-pit-digest"]: seq for seq, m in Archive(root).read()}


@pytest.fixture
def appends(monkeypatch):
    """How many durable appends the archive took."""
    count = [0]
    real = Archive.append

    def counting(self, messages):
        count[0] += 1
        return real(self, messages)
    monkeypatch.setattr(Archive, "append", counting)
    return count


def test_concurrent_connections_are_committed_in_groups_and_acked_once_durable(kit, appends):
    orders = [kit.request("alice" if i % 2 else "bob", f"g{i}", "Order",
                          f"{'buy' if i % 2 else 'sell'} 1 ACME at 12.{i:02d}") for i in range(24)]
    replies: dict[int, tuple[int, str]] = {}
    with Served(kit.pit) as s:
        before = appends[0]

        def client(k: int) -> None:
            with LMTPClient(s.server.host, s.server.port) as c:
                for i in range(k, len(orders), 8):
                    replies[i] = c.send(orders[i], "t@example.org", [kit.pit.address])[kit.pit.address]
                    # durable before the ack: the record is in the archive now
                    assert _digest(orders[i]) in _archived(kit.root)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        groups = appends[0] - before
        posted = len(s.sink.posts)
    assert sorted(replies) == list(range(24))
    assert all(code == 250 for code, _ in replies.values()), replies
    archived = _archived(kit.root)
    assert all(_digest(o) in archived for o in orders)
    assert groups < len(orders)             # deliveries shared appends
    assert posted >= len(orders)             # every record went to the list


@pytest.mark.parametrize("spool", [True, False])
def test_with_a_spool_the_reply_comes_once_durable_without_waiting_for_the_list(
        kit, tmp_path, spool):
    """A pit with a spool (as 'pit mailman serve' runs every pit) answers 250
    once the record is on disk, while Mailman is still busy with the post
    before; the list still gets every record, in order.  Without a spool
    the reply waits for the list (a list that cannot take it: 451)."""
    orders = [kit.request("alice", f"sp{i}", "Order", f"buy 1 ACME at 12.0{i}") for i in range(2)]
    with Served(kit.pit, spool=tmp_path / "spool" if spool else None) as s:
        s.sink.open.clear()                                  # Mailman busy
        for order in orders:
            code, text = s.send(order)
            assert code == 250 and "notarized" in text, text
            assert _digest(order) in _archived(kit.root)      # durable before the reply
        taken = len(s.sink.posts)
        s.sink.open.set()
        deadline = time.monotonic() + 30
        while len(s.sink.posts) < 2:
            assert time.monotonic() < deadline, "the list did not get the records"
            time.sleep(0.02)
    assert taken == (0 if spool else 2)
    seqs = [_archived(kit.root)[_digest(o)] for o in orders]
    assert [mbox.stamp(p.split(b"\n", 1)[1])["x-pit-seq"] for p in s.sink.posts[:2]] == \
        [str(q) for q in seqs]                               # in the pit's order


def test_a_delivery_after_a_refused_post_goes_to_the_list_behind_the_spooled_one(kit, tmp_path):
    """A post the list refuses waits in the spool; the next delivery's
    records go to the list behind it, not before, each once (the injector
    lists the spool only while it may hold messages: after a listing found
    it empty, again once it spooled)."""
    orders = [kit.request("alice", f"rf{i}", "Order", f"buy 1 ACME at 10.0{i}") for i in range(3)]
    spool = tmp_path / "spool"
    with Served(kit.pit, spool=spool) as s:
        def posted(n: int) -> None:
            deadline = time.monotonic() + 30
            while len(s.sink.posts) < n:
                assert time.monotonic() < deadline, "the list did not get the records"
                time.sleep(0.02)
        assert s.send(orders[0])[0] == 250
        posted(1)
        s.sink.refuse = True
        assert s.send(orders[1])[0] == 250                  # durable: the reply does not wait
        deadline = time.monotonic() + 30
        while not list(spool.glob("*.eml")):
            assert time.monotonic() < deadline, "the refused post was not spooled"
            time.sleep(0.02)
        s.sink.refuse = False
        assert s.send(orders[2])[0] == 250
        posted(3)
        time.sleep(0.2)
        assert not list(spool.glob("*.eml"))
    refs = [mbox.headers(p.split(b"\n", 1)[1].replace(b"\r\n", b"\n"), ["x-pit-ref"])
            .get("x-pit-ref") for p in s.sink.posts]
    assert [r for r in refs if r and r.startswith("rf")] == ["rf0", "rf1", "rf2"], refs


def test_the_list_falling_behind_holds_the_deliveries_back_not_the_memory(kit, tmp_path):
    """With Mailman busy the injector may fall ``inject_backlog`` deliveries
    behind; past that the committer waits for it, so later deliveries get
    no reply yet (the MTA keeps them) instead of queueing in this server's
    memory.  When the list answers again, all are answered and posted in order."""
    orders = [kit.request("alice", f"bk{i}", "Order", f"buy 1 ACME at 11.0{i}") for i in range(6)]
    replies: dict[int, tuple[int, str]] = {}
    with Served(kit.pit, spool=tmp_path / "spool", inject_backlog=2) as s:
        s.sink.open.clear()                                  # Mailman busy (5 s a post)

        def client(i: int) -> None:
            replies[i] = s.send(orders[i])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
            time.sleep(0.3)                  # one at a time: each its own group
        # the injector holds order 0, orders 1-2 wait for it, order 3's
        # committer waits for room: orders 4 and 5 are not answered yet
        assert not {4, 5} & set(replies) and s.sink.posts == []
        s.sink.open.set()
        for t in threads:
            t.join(60)
    assert sorted(replies) == list(range(6)) and all(c == 250 for c, _ in replies.values())
    refs = [mbox.headers(p.split(b"\n", 1)[1].replace(b"\r\n", b"\n"), ["x-pit-ref"])
            .get("x-pit-ref") for p in s.sink.posts]
    assert refs[:6] == [f"bk{i}" for i in range(6)], refs


def test_a_refused_message_in_a_group_gets_its_own_reply(kit, appends):
    good = [kit.request("alice", f"r{i}", "Order", f"buy 1 ACME at 12.0{i}") for i in range(3)]
    forged = kit.request("mallory", "r9", "Order", "buy 1 ACME at 1", account="alice")
    mail = [good[0], good[1], forged, good[2]]
    replies: dict[int, tuple[int, str]] = {}
    with Served(kit.pit) as s:
        address = kit.pit.address.lower()
        lock, queue = s.server._pit_locks[address], s.server._queues[address]
        taken, commit = [], s.server._commit

        def committing(address, group):
            taken.append(len(group))
            return commit(address, group)
        s.server._commit = committing

        def wait_until(ready) -> None:
            deadline = time.monotonic() + 20
            while not ready():
                assert time.monotonic() < deadline
                time.sleep(0.005)
        threads = []
        with lock:               # the committer waits for it: the rest queue up
            before = appends[0]
            for i, raw in enumerate(mail):
                threads.append(threading.Thread(
                    target=lambda i=i, raw=raw: replies.__setitem__(i, s.send(raw))))
                threads[-1].start()
                if i == 0:
                    wait_until(lambda: taken == [1])      # taken alone, blocked on the lock
                else:
                    wait_until(lambda: len(queue.waiting) == i)
        for t in threads:
            t.join()
        groups = appends[0] - before
    assert [replies[i][0] for i in range(4)] == [250, 250, 250, 250]
    assert "refused" in replies[2][1] and "notarized" in replies[3][1]
    archived = _archived(kit.root)
    assert [(_digest(m) in archived) for m in mail] == [True, True, False, True]
    assert groups == 2                      # the first alone, then the other three together
    rejects = kit.rejects()
    assert len(rejects) == 1 and _digest(forged) in rejects[0].decode("utf-8", "replace")


SERVER = r"""
import os, sys, time
from pathlib import Path
from pit.archive import Archive, CRASH_ENV
from pit.daemon import NotaryService
from pit.mailhost import NotaryLMTPServer, PitRoute, _LMTPController

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "\r\n".join("250 2.0.0 OK" for _ in envelope.rcpt_tos)

root, port, sink_port, step, after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
real, count = Archive.append, [0]
def append(self, messages):
    count[0] += 1
    if count[0] > after:              # this append dies at the step: SIGKILL
        os.environ[CRASH_ENV] = step
    return real(self, messages)
Archive.append = append
sink = _LMTPController(Sink(), hostname="127.0.0.1", port=sink_port, ready_timeout=10)
sink.start()
service = NotaryService(root, smtp=None, seal_seconds=60)
server = NotaryLMTPServer({service.pit.address: PitRoute(service.pit.address,
    service.pit.notary_address, service, "secret")}, ("127.0.0.1", sink_port), port=port)
server.start()
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("step", ["mid-write", "after-data-fsync"])
def test_a_server_killed_mid_append_acknowledged_nothing_that_is_missing(kit, step):
    orders = [kit.request("alice" if i % 2 else "bob", f"k{i}", "Order",
                          f"{'buy' if i % 2 else 'sell'} 1 ACME at 11.{i:02d}") for i in range(40)]
    port, sink_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    env.pop(CRASH_ENV, None)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(kit.root), str(port), str(sink_port),
                             step, "3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        replies: dict[int, tuple[int, str] | str] = {}

        def client(k: int) -> None:
            try:
                with LMTPClient("127.0.0.1", port, timeout=20) as c:
                    for i in range(k, len(orders), 8):
                        replies[i] = c.send(orders[i], "t@example.org",
                                            [kit.pit.address])[kit.pit.address]
            except Exception as error:          # the server died: no reply
                replies.setdefault(-1 - k, repr(error))
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert proc.wait(20) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acked = [i for i, r in replies.items() if i >= 0 and not isinstance(r, str) and r[0] == 250]
    assert acked and len(acked) < len(orders)      # some got through, the crash cut the rest
    # The next notary on the pit cuts the torn tail and finds every acked record.
    archived = {mbox.stamp(m)["x-pit-digest"] for _, m in kit.notary().archive.read()}
    missing = [i for i in acked if _digest(orders[i]) not in archived]
    assert missing == []
    # What the crash cut was never acknowledged, and sending it again archives it once.
    with Served(kit.pit) as s:
        for i, raw in enumerate(orders):
            if i not in acked:
                assert s.send(raw)[0] == 250
    seqs = [seq for seq, _ in Archive(kit.root).read()]
    assert seqs == list(range(1, len(seqs) + 1))
    digests = [mbox.stamp(m)["x-pit-digest"] for _, m in Archive(kit.root).read()]
    assert all(digests.count(_digest(o)) == 1 for o in orders)


def _trade_woken_by_the_append(pit, s):
    """bob sells, alice buys 5 ACME by LMTP with the ACME specialist woken by
    the append; return the report record that holds the trade."""
    daemon = FilterDaemon(pit, "specialist", ["ACME"], (s.server.host, s.server.port))
    daemon.kick()                      # caught up: nothing to trade yet
    daemon.start(wake_on_append=True)  # no list delivery, no notify: the append wakes it
    trade = b"buyer alice w1 seller bob w1 "
    try:
        for who, side in (("bob", "sell"), ("alice", "buy")):
            ring, fpr = pit.keys[who]
            raw = ops.sign_request(pit, ops.request_text(pit, who, "w1", "Order",
                                                         f"{side} 5 ACME at 12.00"),
                                   ring, fpr, f"{who}@example.org")
            assert s.send(raw, f"{who}@example.org")[0] == 250
        deadline = time.monotonic() + 30
        while not any(trade in m for _, m in Archive(pit.root).read()):
            assert time.monotonic() < deadline, "no trade archived"
            time.sleep(0.05)
    finally:
        daemon.stop()
    return next((seq, m) for seq, m in Archive(pit.root).read() if trade in m)


def test_the_specialist_woken_by_the_append_posts_the_trade(tmp_path):
    pit = funded_pit(tmp_path)
    ops.filter_key(pit, "specialist ACME")
    with Served(pit) as s:
        _, report = _trade_woken_by_the_append(pit, s)
    assert mbox.stamp(report)["x-pit-kind"] == "report"
    assert any(b"buyer alice w1 seller bob w1 " in p for p in s.sink.posts)   # the list carried it


def _cross(pit, s, ref):
    for who, side in (("bob", "sell"), ("alice", "buy")):
        ring, fpr = pit.keys[who]
        raw = ops.sign_request(pit, ops.request_text(pit, who, ref, "Order",
                                                     f"{side} 5 ACME at 12.00"),
                               ring, fpr, f"{who}@example.org")
        assert s.send(raw, f"{who}@example.org")[0] == 250


def _kinds_by_group(monkeypatch) -> list:
    groups = []
    real = Archive.append

    def noting(self, messages):
        messages = list(messages)
        groups.append([mbox.stamp(m[0]).get("x-pit-kind") for m in messages])
        return real(self, messages)
    monkeypatch.setattr(Archive, "append", noting)
    return groups


def test_a_runs_report_and_checkpoint_go_pipelined_into_one_group(tmp_path, monkeypatch):
    """The filter daemon sends its report and checkpoint in one write
    (PIPELINING, CHUNKING); the server reads both at once and the notary
    judges them, in order, in one group commit (before: two in a row)."""
    pit = funded_pit(tmp_path)
    ops.filter_key(pit, "specialist ACME")
    with Served(pit) as s:
        daemon = FilterDaemon(pit, "specialist", ["ACME"], (s.server.host, s.server.port))
        try:
            daemon.run_once()
            _cross(pit, s, "p1")
            groups = _kinds_by_group(monkeypatch)
            assert daemon.run_once() == 2
        finally:
            daemon.stop()
    assert ["report", "checkpoint"] in groups, groups


def test_a_refused_report_leaves_its_pipelined_checkpoint_refused_and_the_next_run_posts(
        tmp_path, monkeypatch):
    """A report the notary refuses (here: its signature broken) is recorded
    as refused; the checkpoint behind it on the wire closes no report and is
    refused too; the run fails as before, and the next run posts both."""
    from pit.daemon import DaemonError
    pit = funded_pit(tmp_path)
    ops.filter_key(pit, "specialist ACME")
    with Served(pit) as s:
        daemon = FilterDaemon(pit, "specialist", ["ACME"], (s.server.host, s.server.port),
                              wait_seconds=2)
        try:
            daemon.run_once()
            _cross(pit, s, "r1")
            real_sign, signed = daemon._sign, []

            def breaking(msg):
                raw = real_sign(msg)
                signed.append(raw)
                return raw.replace(b"buyer alice", b"buyer alicf") if len(signed) == 1 else raw
            daemon._sign = breaking
            rejects = pit.rejects / "rejects.mbox"

            def refusals():
                return (list(mbox.iter_messages(rejects.read_bytes()))
                        if rejects.exists() else [])
            before = len(refusals())
            reports = _kinds(pit).count("report")
            with pytest.raises(DaemonError, match="checkpoint"):
                daemon.run_once()
            assert b"buyer alice" in signed[0]          # what the tampering broke
            assert _kinds(pit).count("report") == reports
            assert len(refusals()) == before + 2
            daemon._sign = real_sign
            assert daemon.run_once() == 2
        finally:
            daemon.stop()
    assert _kinds(pit).count("report") == reports + 1


def _kinds(pit) -> list:
    return [mbox.stamp(m).get("x-pit-kind") for _, m in Archive(pit.root).read()]


def test_a_trace_follows_the_order_to_its_trade(tmp_path):
    """PIT_TRACE (pit.trace): every hop of the buy's way to the report that
    trades it leaves a line, in the order the hops happen."""
    pit = funded_pit(tmp_path / "pit")
    ops.filter_key(pit, "specialist ACME")
    path = tmp_path / "trace"
    trace.enable(path)
    try:
        with Served(pit) as s:
            report_seq, _ = _trade_woken_by_the_append(pit, s)
    finally:
        trace.disable()
    buy = next(seq for seq, m in Archive(pit.root).read()
               if mbox.stamp(m).get("x-pit-account") == "alice" and b"Order: buy" in m)
    events = trace.read(path)

    def at(test, after=0):
        found = next((i for i in range(after, len(events)) if test(events[i][3], events[i][4])),
                     None)
        assert found is not None, f"no {test.__doc__} after line {after}: {events}"
        return found

    def hop(doc, test):
        test.__doc__ = doc
        return test

    def durable(seq):
        return hop(f"append of {seq}", lambda e, f: e == "group.durable"
                   and int(f["first"]) <= seq <= int(f["last"]))
    # the buy's group judged (the commit's own line may come after the wake it caused)
    end = at(durable(buy))
    committed = max(i for i in range(end) if events[i][3] == "group.judged"
                    and events[i][2] == events[end][2])
    at(hop("wake", lambda e, f: e == "watch.woke" and int(f["seen"]) >= buy and f["wanted"] == "1"),
       committed)
    n = committed
    for test in (hop("run", lambda e, f: e == "run.replayed" and int(f["covered"]) >= buy),
                 hop("signature", lambda e, f: e == "post.signed"),
                 hop("delivery", lambda e, f: e == "lmtp.data"),
                 hop("group", lambda e, f: e == "group.take"),
                 durable(report_seq),
                 hop("reply", lambda e, f: e == "lmtp.reply" and f["code"] == "250"),
                 hop("ack", lambda e, f: e == "post.acked" and f["code"] == "250")):
        n = at(test, n)
    assert not trace.enabled()


def test_append_watch_wakes_on_a_commit_with_inotify_and_without(kit):
    for inotify in (True, False):
        watch = AppendWatch(Archive(kit.root).dir, poll=0.01)
        if not inotify:
            watch.close()                  # the fallback: read the index on a timer
        assert watch.uses_inotify == inotify
        assert not watch.wait(0.05)
        kit.notary().notarize([kit.request("alice", f"aw{inotify}", "Order", "buy 1 ACME at 1.00")])
        assert watch.wait(5)
        assert not watch.wait(0.05)
        watch.close()


def test_the_servers_address_parse_is_aiosmtpds():
    """The notary's server remembers aiosmtpd's parse of each MAIL FROM and
    RCPT TO argument (the parse was a third of its event loop's CPU under
    aiosmtpd): the same answer as aiosmtpd's LMTP, malformed and too long
    ones included."""
    from aiosmtpd.lmtp import LMTP
    from pit.lmtpserver import parsed_address
    loop = asyncio.new_event_loop()
    try:
        plain = LMTP(object(), loop=loop)
        args = ["<a@b.example>", "a@b.example", "<a@b> SIZE=100 BODY=8BITMIME", "<>", "",
                "<a b@c>", "<@relay,@other:a@b>", '<"q r"@b>', "garbage<", "<a@b", "<<a@b>>",
                "<" + "x" * 100 + "@b>"]
        for limit in (0, 64):
            plain.local_part_limit = limit
            for arg in args * 2:                    # the second time from the memory
                assert parsed_address(arg, limit) == plain._getaddr(arg), (arg, limit)
    finally:
        loop.close()


HANGING_SERVER = r"""
import socket, sys, threading, time
from pit.daemon import NotaryService
from pit.mailhost import NotaryLMTPServer, PitRoute

root, port, spool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# In Mailman's place: a runner that takes the connection and then never answers.
hang = socket.socket()
hang.bind(("127.0.0.1", 0))
hang.listen()
def greet():
    while True:
        conn, _ = hang.accept()
        conn.sendall(b"220 busy\r\n")
        threading.Thread(target=lambda c=conn: [c.recv(1 << 16) for _ in iter(int, 1)],
                         daemon=True).start()
threading.Thread(target=greet, daemon=True).start()
service = NotaryService(root, smtp=None, seal_seconds=60)
server = NotaryLMTPServer({service.pit.address: PitRoute(service.pit.address,
    service.pit.notary_address, service, "secret", spool)}, hang.getsockname(), port=port)
server.start()
print("ready", flush=True)
time.sleep(120)
"""


def test_records_acknowledged_but_not_yet_on_the_list_are_posted_after_a_crash(kit, tmp_path):
    """With a spool the reply comes once the record is durable, before the
    list took it: a server killed then (Mailman slow) must not leave that
    record off the list.  The next server on the pit posts every record
    after the last one the list took, once, in order."""
    spool = tmp_path / "spool"
    orders = [kit.request("alice", f"cr{i}", "Order", f"buy 1 ACME at 13.0{i}") for i in range(3)]
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    proc = subprocess.Popen([sys.executable, "-c", HANGING_SERVER, str(kit.root), str(port),
                             str(spool)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        with LMTPClient("127.0.0.1", port, timeout=20) as c:
            for order in orders:
                code, text = c.send(order, "t@example.org", [kit.pit.address])[kit.pit.address]
                assert code == 250 and "notarized" in text, text
    finally:
        proc.kill()                       # its injector still waits for the list
        proc.wait()
    seqs = [_archived(kit.root)[_digest(o)] for o in orders]
    with Served(kit.pit, spool=spool) as s:
        deadline = time.monotonic() + 30
        while len(s.sink.posts) < len(orders):
            assert time.monotonic() < deadline, f"the list got {len(s.sink.posts)} of {len(orders)}"
            time.sleep(0.02)
        time.sleep(0.3)                   # nothing more comes
        posted = [int(mbox.stamp(p.split(b"\n", 1)[1])["x-pit-seq"]) for p in s.sink.posts]
    assert posted[:len(seqs)] == seqs                 # then the new server's seal
    assert posted == sorted(set(posted))              # each once, in order
    assert (spool / "posted").read_text().strip() == str(posted[-1])
