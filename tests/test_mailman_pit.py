"""Pits on a real GNU Mailman 3 core, end to end (Mailman starts once for the
module): the real notary behind the LMTP posting path, rejection notices by
mail, the seal timer, the specialist daemon posting trades back through the
notary, a daemon killed and restarted, two pits kept apart.

Also, without Mailman: the notary refuses Mailman's approval headers on
every path, and ignores a redelivered message on the mail path.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import _HOMES, _stop_agents, Kit
from mailman_harness import mailman_server  # noqa: F401  (the fixture)
from mailman_harness import wait_until
from pit import mbox, ops, testkeys
from pit.audit import audit
from pit.daemon import FilterDaemon, NotaryService
from pit.mailhost import NotaryLMTPServer, PitRoute, lmtp_send
from pit.mailman import MailmanClient, list_members, provision_local_pit

DOMAIN = "pits.test"
SEAL_SECONDS = 1.0
WAIT = 60.0
REPO = Path(__file__).resolve().parent.parent


def addr(who: str) -> str:
    return f"{who}@{testkeys.DOMAIN}"


# -- the world: two pits, one Mailman, one notary server, one specialist ----------

@dataclass
class World:
    alpha: Kit
    beta: Kit
    server: NotaryLMTPServer
    services: dict
    sink: object
    daemon: FilterDaemon | None
    specialist_address: str
    callback: object = None

    def send(self, raw: bytes, sender: str, pit: str = "alpha") -> int:
        rcpt = f"{pit}@{DOMAIN}"
        code, text = lmtp_send(self.server.host, self.server.port, raw, sender, [rcpt])[rcpt]
        assert code == 250, text
        return code


def _build(base: Path, keyhome: Path, name: str, members: dict, setup) -> Kit:
    root = base / name
    pit = ops.init(root, name, domain=DOMAIN)
    for key, value in setup:
        assert ops.operator_request(pit, key, value).accepted, (key, value)
    meta = testkeys._meta(keyhome)
    for who, accounts in members.items():
        assert ops.add_member(pit, meta[who]["public"], accounts)[1].accepted
    return Kit(root, keyhome)


@pytest.fixture(scope="module")
def world(mailman_server, keyhome, tmp_path_factory):
    base = tmp_path_factory.mktemp("mailpits")
    _HOMES.append(base)
    alpha = _build(base, keyhome, "alpha", {"alice": ["alice"], "bob": ["bob"]},
                   [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")])
    for value in ("100000.00 USD to alice", "10000 ACME to bob"):     # members now
        assert ops.operator_request(alpha.pit, "Deposit", value).accepted
    # Money into the trading accounts, settled by the transfers filter, all
    # before the pit goes on the list (local requests are notarized directly).
    for who, value in (("alice", "50000.00 USD to alice:ACME"), ("bob", "5000 ACME to bob:ACME")):
        ops.send_local(alpha.pit, alpha.request(who, "fund", "Transfer", value, pit="alpha"))
    assert all(d.accepted for d in ops.notary(alpha.pit).run_maildir())
    ops.run_filter(alpha.pit, "transfers", [])
    beta = _build(base, keyhome, "beta", {"carol": ["carol"]}, [("Currency", "USD 0.01")])

    client = MailmanClient(mailman_server.rest_url, mailman_server.rest_user,
                           mailman_server.rest_password)
    lists = {kit.pit.name: provision_local_pit(client, kit.root, DOMAIN) for kit in (alpha, beta)}
    sink = mailman_server.sink
    services = {kit.pit.name: NotaryService(kit.pit, smtp=("127.0.0.1", sink.port),
                                            seal_seconds=SEAL_SECONDS) for kit in (alpha, beta)}
    routes = {lists[n].address: PitRoute(lists[n].address, lists[n].notary_address, services[n],
                                         lists[n].approval_secret) for n in lists}
    server = NotaryLMTPServer(routes, (mailman_server.lmtp_host, mailman_server.lmtp_port),
                              spool_dir=base / "spool")
    server.start()
    for name, service in services.items():
        service.attach(server, lists[name].address)
        service.start()
    specialist = f"alpha-specialist-acme@{DOMAIN}"
    assert specialist in list_members(client, lists["alpha"].list_id)
    daemon = FilterDaemon(alpha.pit, "specialist", ["ACME"], (server.host, server.port))
    w = World(alpha, beta, server, services, sink, daemon, specialist)
    w.callback = daemon.notify
    sink.on_delivery(specialist, lambda msg, sender: w.callback and w.callback(msg, sender))
    daemon.start()
    try:
        yield w
    finally:
        w.callback = None
        if w.daemon is not None:
            w.daemon.stop()
        for service in services.values():
            service.stop()
        server.stop()
        _stop_agents(base)


# -- helpers ---------------------------------------------------------------------

def digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def stamps(kit: Kit) -> list[dict]:
    return [mbox.stamp(m) for _, m in kit.records()]


def archived(kit: Kit, raw: bytes) -> int:
    d = digest(raw)
    return sum(st.get("x-pit-digest") == d for st in stamps(kit))


def rejected(kit: Kit, raw: bytes) -> list[bytes]:
    d = digest(raw).encode()
    return [e for e in kit.rejects() if b"\nX-Pit-Digest: " + d + b"\n" in b"\n" + mbox.split_stamp(e)[0]]


def reports(kit: Kit, name: str = "specialist ACME") -> list[tuple[int, int, list[str]]]:
    """(From-Seq, To-Seq, lines) of every archived report of filter *name*."""
    out = []
    for _, msg in kit.records():
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") == "report" and st["x-pit-request"].rpartition(" ")[0] == name:
            span = st["x-pit-request"].rpartition(" ")[2]
            first, _, last = span.partition("-")
            text = msg.decode("utf-8")
            body = text[text.index("-----BEGIN PGP SIGNED MESSAGE-----"):]
            lines = body.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----")[0]
            out.append((int(first), int(last),
                        [ln for ln in lines.split("\n\n", 1)[1].splitlines() if ln.strip()]))
    return out


def sealed(kit: Kit) -> bool:
    sts = stamps(kit)
    return sts[-1].get("x-pit-kind") == "seal"


def notice_for(world: World, who: str, message_id: str, *reason: str) -> bytes:
    """The rejection notice in *who*'s mailbox that names *message_id*."""
    def find():
        for msg in world.sink.messages(addr(who)):
            if b"Rejected: " in msg and message_id.encode() in msg:
                return msg
        return None
    notice = wait_until(f"a notice to {who} about {message_id}", find)
    for part in reason:
        assert part.encode() in notice, (part, notice[:600])
    return notice


def message_id(raw: bytes) -> str:
    return mbox.headers(raw, ["message-id"])["message-id"]


def on_the_list(world: World, raw: bytes) -> bool:
    """Did any member get *raw* as a list post (a stamped copy)?"""
    mid = message_id(raw).encode()
    for member in (addr("alice"), addr("bob"), addr("carol"), world.specialist_address,
                   f"alpha-archive@{DOMAIN}", f"beta-archive@{DOMAIN}"):
        for msg in world.sink.messages(member):
            if msg.startswith(b"X-Pit-Seq: ") and mid in msg:
                return True
    return False


def has_trade(world: World, who: str, line_part: str):
    for msg in world.sink.messages(addr(who)):
        if b"X-Pit-Kind: report" in msg and line_part.encode() in msg:
            return msg
    return None


# -- the tests -------------------------------------------------------------------

@pytest.mark.e2e
def test_two_traders_trade_and_both_get_the_trade_by_mail(world):
    alpha = world.alpha
    buy = alpha.request("alice", "t1", "Order", "buy 10 ACME at 12.50", pit="alpha")
    sell = alpha.request("bob", "t1", "Order", "sell 10 ACME at 12.50", pit="alpha")
    world.send(buy, addr("alice"))
    world.send(sell, addr("bob"))
    trade = "buyer alice t1 seller bob t1"
    for who in ("alice", "bob"):
        got = wait_until(f"the trade in {who}'s mailbox", lambda: has_trade(world, who, trade))
        assert b"trade " in got and b"10 at 12.50 USD" in got
    assert archived(alpha, buy) == 1 and archived(alpha, sell) == 1
    seq_sell = next(int(st["x-pit-seq"]) for st in stamps(alpha)
                    if st.get("x-pit-digest") == digest(sell))
    wait_until("the specialist's checkpoint",
               lambda: (ops.filter_position(alpha.pit, "specialist ACME")[0] or (0, 0))[1] >= seq_sell)
    assert any(trade in " ".join(lines) for _, _, lines in reports(alpha))
    wait_until("the seal of the tail", lambda: sealed(alpha), 10)
    result = audit(alpha.root)
    assert result.ok, result.summary()


@pytest.mark.e2e
def test_forged_unsigned_nonmember_and_approved_posts_are_refused_by_mail(world):
    alpha = world.alpha
    signed_order = alpha.request("alice", "f1", "Order", "buy 5 ACME at 10.00", pit="alpha")
    forged = signed_order.replace(b"buy 5 ACME", b"buy 9 ACME")
    assert forged != signed_order
    unsigned = (f"From: {addr('bob')}\nTo: alpha@{DOMAIN}\nSubject: plain order\n"
                f"Message-ID: <unsigned.1@{testkeys.DOMAIN}>\n\n"
                "Pit: alpha\nAccount: bob\nRef: u1\nOrder: sell 5 ACME at 10.00\n").encode()
    stranger = alpha.sign("mallory", ops.request_text("alpha", "mallory", "m1", "Order",
                                                      "buy 1 ACME at 10.00"))
    approved = b"Approved: a-guess-at-the-secret\n" + alpha.request(
        "alice", "a1", "Order", "buy 1 ACME at 10.00", pit="alpha")
    cases = [(forged, "alice", "bad signature"), (unsigned, "bob", "unsigned"),
             (stranger, "mallory", "unknown key"), (approved, "alice", "Approved")]
    before = len(alpha.records())
    for raw, who, _ in cases:
        world.send(raw, addr(who))
    for raw, who, reason in cases:
        if who != "mallory":        # a stranger's refusal is recorded, not mailed (backscatter)
            notice_for(world, who, message_id(raw), reason)
        else:
            wait_until("the stranger's refusal on record", lambda: rejected(alpha, raw))
        assert archived(alpha, raw) == 0
        assert len(rejected(alpha, raw)) == 1, who
    # Nothing reached the list: a message accepted after them arrives, they never do.
    later = alpha.request("alice", "f2", "Order", "buy 1 ACME at 1.00", pit="alpha")
    world.send(later, addr("alice"))
    wait_until("the later order on the list", lambda: on_the_list(world, later))
    for raw, _, _ in cases:
        assert not on_the_list(world, raw)
    assert not any(b"Rejected: " in m for m in world.sink.messages(addr("mallory")))
    assert all(mbox.stamp(m).get("x-pit-digest") not in {digest(r) for r, _, _ in cases}
               for _, m in alpha.records()[before:])


@pytest.mark.e2e
def test_a_redelivered_message_is_archived_once_and_never_called_a_replay(world):
    alpha = world.alpha
    raw = alpha.request("bob", "d1", "Order", "sell 1 ACME at 99.00", pit="alpha")
    world.send(raw, addr("bob"))
    world.send(raw, addr("bob"))            # the MTA again, after a crash say
    assert archived(alpha, raw) == 1
    assert rejected(alpha, raw) == []
    assert not any(b"Rejected: " in m and message_id(raw).encode() in m
                   for m in world.sink.messages(addr("bob")))


@pytest.mark.e2e
def test_a_member_of_one_pit_cannot_post_to_another(world):
    alpha, beta = world.alpha, world.beta
    into_beta = alpha.sign("bob", ops.request_text("beta", "bob", "x1", "Deposit", "1.00 USD to bob"),
                           pit_address=f"beta@{DOMAIN}")
    alpha_order_to_beta = alpha.request("alice", "x2", "Order", "buy 1 ACME at 10.00", pit="alpha")
    carol_to_alpha = beta.sign("carol", ops.request_text("alpha", "carol", "x3", "Order",
                                                         "buy 1 ACME at 10.00"),
                               pit_address=f"alpha@{DOMAIN}")
    world.send(into_beta, addr("bob"), pit="beta")
    world.send(alpha_order_to_beta, addr("alice"), pit="beta")
    world.send(carol_to_alpha, addr("carol"), pit="alpha")
    # each is a stranger to the pit it wrote to: refused and recorded there,
    # and no notice is mailed (the From address is no member's of that pit)
    wait_until("the refusals on record", lambda: rejected(beta, into_beta)
               and rejected(beta, alpha_order_to_beta) and rejected(alpha, carol_to_alpha))
    for raw, pit in ((into_beta, beta), (alpha_order_to_beta, beta), (carol_to_alpha, alpha)):
        assert b"unknown key" in mbox.split_stamp(rejected(pit, raw)[0])[0]
    assert archived(beta, into_beta) == 0 and archived(beta, alpha_order_to_beta) == 0
    assert archived(alpha, carol_to_alpha) == 0
    assert len(rejected(beta, into_beta)) == 1 and len(rejected(alpha, carol_to_alpha)) == 1
    assert not any(on_the_list(world, r) for r in (into_beta, alpha_order_to_beta, carol_to_alpha))
    for who, raw in (("bob", into_beta), ("alice", alpha_order_to_beta), ("carol", carol_to_alpha)):
        assert not any(message_id(raw).encode() in m for m in world.sink.messages(addr(who)))


def _daemon_process(world: World, log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "pit.cli", "--pit", str(world.alpha.root), "mailman", "daemon",
             "specialist", "ACME", "--lmtp", f"{world.server.host}:{world.server.port}",
             "--poll", "0.1"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    finally:
        out.close()


@pytest.mark.e2e
def test_a_killed_specialist_restarts_and_catches_up_exactly_once(world, tmp_path):
    alpha = world.alpha
    # The threaded daemon leaves; a daemon process polling the archive takes over.
    world.callback = None
    world.daemon.stop()
    world.daemon = None
    log = tmp_path / "daemon.log"
    proc = _daemon_process(world, log)
    refs = [f"k{n}" for n in range(12)]
    sells = {}
    try:
        for n, ref in enumerate(refs):
            if n == 4:
                # Kill it for real once it has reported something of the burst
                # (its checkpoint may or may not follow the report yet).
                first = sells[refs[0]]
                wait_until("a report of the burst",
                           lambda: any(to_seq >= first for _, to_seq, _ in reports(alpha)))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            world.send(alpha.request("alice", ref, "Order", "buy 1 ACME at 12.00", pit="alpha"),
                       addr("alice"))
            sell = alpha.request("bob", ref, "Order", "sell 1 ACME at 12.00", pit="alpha")
            world.send(sell, addr("bob"))
            sells[ref] = next(int(st["x-pit-seq"]) for st in stamps(alpha)
                              if st.get("x-pit-digest") == digest(sell))
        proc = _daemon_process(world, log)
        last = sells[refs[-1]]
        wait_until("the restarted daemon's checkpoint",
                   lambda: (ops.filter_position(alpha.pit, "specialist ACME")[0] or (0, 0))[1] >= last)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    spans = reports(alpha)
    lines = [line for _, _, ls in spans for line in ls]
    assert len(lines) == len(set(lines)), "a report line was posted twice"
    for first_seq, (prev, this) in zip([s[0] for s in spans[1:]], zip(spans, spans[1:])):
        assert first_seq == prev[1] + 1, f"reports {prev[:2]} and {this[:2]} leave a gap or overlap"
    for ref in refs:
        trades = [ln for ln in lines if ln.startswith("trade ") and f"buyer alice {ref} seller bob {ref} " in ln]
        assert len(trades) == 1, (ref, trades)
    wait_until("the seal of the tail", lambda: sealed(alpha), 10)
    result = audit(alpha.root)
    assert result.ok, result.summary()


@pytest.mark.e2e
def test_a_post_the_notary_answers_late_is_not_posted_again(world, monkeypatch):
    """A filter run whose post the notary answers only after the run's
    client stopped waiting must not leave the next run to post it again.

    tests/test_postfix.py saw it on a loaded machine: a ``pit mailman
    deliver`` gave up on the notary's reply (its LMTP client's 30 s
    timeout), exited 75 and released the run lock while the notary was
    still archiving the report; the next delivery posted the same report,
    the notary refused it (``replayed: report ...``) and mailed a notice to
    the filter's key address, which Postfix refused.  Here the notary is
    held (its lock taken) for longer than the client's command timeout
    (shortened to keep the test short) while a run posts, and a second
    delivery arrives meanwhile: one report, nothing refused."""
    import fcntl
    import threading
    from pit import daemon as daemon_module
    from pit.mailhost import LMTPClient

    class Impatient(LMTPClient):          # commands answered within 2 s, or it gives up
        def __init__(self, host, port, *args, **kw):
            super().__init__(host, port, 2.0)

    monkeypatch.setattr(daemon_module, "LMTPClient", Impatient)
    alpha = world.alpha
    world.callback = None                 # this test runs the filter itself
    if world.daemon is not None:
        world.daemon.stop()
        world.daemon = None
    lmtp = (world.server.host, world.server.port)
    rejects_before = len(alpha.rejects())
    world.send(alpha.request("alice", "late1", "Order", "buy 2 ACME at 12.00", pit="alpha"),
               addr("alice"))
    sell = alpha.request("bob", "late1", "Order", "sell 2 ACME at 12.00", pit="alpha")
    world.send(sell, addr("bob"))
    last = next(int(st["x-pit-seq"]) for st in stamps(alpha)
                if st.get("x-pit-digest") == digest(sell))
    errors = []
    # sealed before the notary is held, so no record waits out the hold for
    # its seal (test_every_record_is_sealed_within_seal_seconds reads them)
    wait_until("the seal of the orders", lambda: sealed(alpha), 10)

    def delivery():                        # what 'pit mailman deliver' does
        try:
            FilterDaemon(alpha.pit, "specialist", ["ACME"], lmtp).kick()
        except Exception as error:         # deliver exits 75 on it; the MTA retries
            errors.append(error)

    held = os.open(alpha.root / "notary.lock", os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)   # the notary, busy for 6 s
        first = threading.Thread(target=delivery)
        first.start()
        time.sleep(3)                      # past the client's 2 s
        second = threading.Thread(target=delivery)
        second.start()
        time.sleep(3)
    finally:
        os.close(held)
    first.join(120)
    second.join(120)
    failed = list(errors)
    for _ in range(3):                     # the MTA retries a deferred delivery
        if not errors:
            break
        errors.clear()
        delivery()
    wait_until("the specialist's checkpoint of the sell",
               lambda: (ops.filter_position(alpha.pit, "specialist ACME")[0] or (0, 0))[1] >= last)
    refused = [mbox.headers(r, ["x-pit-rejected"]).get("x-pit-rejected", "")
               for r in alpha.rejects()[rejects_before:]]
    assert not refused, (refused, failed)
    spans = reports(alpha)
    for prev, this in zip(spans, spans[1:]):
        assert this[0] == prev[1] + 1, f"reports {prev[:2]} and {this[:2]} leave a gap or overlap"
    lines = [ln for _, _, ls in spans for ln in ls]
    assert sum("buyer alice late1 seller bob late1 " in ln for ln in lines) == 1


@pytest.mark.e2e
def test_every_record_is_sealed_within_seal_seconds(world):
    from moderator.notary import _us
    alpha = world.alpha
    world.send(alpha.request("alice", "s1", "Order", "buy 1 ACME at 2.00", pit="alpha"), addr("alice"))
    wait_until("the seal of the tail", lambda: sealed(alpha), 10)
    sts = stamps(alpha)
    mailed_from = next(i for i, st in enumerate(sts) if st.get("x-pit-ref") == "t1")
    times = {int(st["x-pit-seq"]): _us(st["x-pit-time"]) for st in sts}
    checked = 0
    for st in sts[mailed_from:]:
        if st["x-pit-kind"] != "seal":
            continue
        first, _, last = st["x-pit-request"].partition("-")
        for seq in range(int(first), int(last) + 1):
            late = (times[int(st["x-pit-seq"])] - times[seq]) / 1e6
            assert late <= SEAL_SECONDS, f"record {seq} sealed {late:.3f} s after it was made"
            checked += 1
    assert checked >= 10


# -- without Mailman ---------------------------------------------------------------

@pytest.mark.parametrize("header", ["Approved", "approve", "X-Approved", "X-APPROVE"])
def test_the_notary_refuses_approval_headers(kit, header):
    raw = f"{header}: secret\n".encode() + kit.request("alice", "ap", "Order", "buy 1 ACME at 1.00")
    [d] = kit.notary().notarize([raw])
    assert not d.accepted and "only the notary approves" in d.reason
    # in the body it is just text, and a header merely starting so is another header
    fine = kit.request("alice", "ap2", "Order", "buy 1 ACME at 1.00").replace(b"Subject: pit request\n", b"Subject: pit request\nApproved-By: me\n")
    assert kit.notary().notarize([fine])[0].accepted


def test_mail_path_ignores_a_redelivery_and_returns_what_it_appended(kit):
    notary = kit.notary()
    raw = kit.request("alice", "r1", "Order", "buy 1 ACME at 1.00")
    first = notary.notarize_mail(raw)
    assert first.decision.accepted and len(first.records) == 1
    assert first.records[0] == kit.records()[-1][1]            # exactly as appended
    again = notary.notarize_mail(raw.replace(b"\n", b"\r\n"))
    assert again.duplicate and again.records == [] and again.notices == []
    assert kit.rejects() == []
    refused = notary.notarize_mail(kit.request("alice", "r2", "Order", "buy 1 NOPE at 1.00"))
    assert not refused.decision.accepted and len(refused.notices) == 1
    assert refused.notices[0] == kit.notices()[-1]
    seal = notary.seal_mail()
    assert len(seal) == 1 and mbox.stamp(seal[0])["x-pit-kind"] == "seal"
    assert notary.seal_mail() == []


def test_notary_service_seals_on_its_timer_and_on_stop(kit):
    service = NotaryService(kit.pit, smtp=None, seal_seconds=0.4).start()
    try:
        assert service(kit.request("alice", "st1", "Order", "buy 1 ACME at 1.00"), "a") != []
        wait_until("the timed seal", lambda: mbox.stamp(kit.records()[-1][1])["x-pit-kind"] == "seal", 5)
        service(kit.request("alice", "st2", "Order", "buy 1 ACME at 1.00"), "a")
    finally:
        service.stop()
    assert mbox.stamp(kit.records()[-1][1])["x-pit-kind"] == "seal"


def test_cli_mailman_commands_need_a_provisioned_pit_and_a_filter_key(kit, capsys):
    from pit.cli import main
    assert main(["--pit", str(kit.root), "mailman", "serve"]) == 1
    assert "run 'pit mailman provision' first" in capsys.readouterr().err
    assert main(["--pit", str(kit.root), "mailman", "daemon", "specialist", "ACME"]) == 2
    assert "has no key" in capsys.readouterr().err
    assert main(["--pit", str(kit.root), "mailman", "deliver", "specialist", "ACME",
                 "--lmtp", "nowhere"]) == 64      # EX_USAGE: the MTA bounces
    assert "HOST:PORT" in capsys.readouterr().err
