"""Tickers at any count: a specialist's work depends on its own tickers.

Under rules 1 a specialist's checkpoint lists the whole registry and every
member (so that the checkpoints of existing pits stay byte for byte what
they were); it reads the lines of other tickers' instruments only when it
needs one.  Under rules 2 (pit.kinds.rules; new pits) the notary checks
transfers' destinations and assets, and the checkpoint holds the
specialist's own tickers only.
"""

from __future__ import annotations

from filters.common import Registry
from filters.specialist import Specialist
from pit import message


def _operator_stamp(key: str, value: str) -> dict:
    """The stamp fields the notary writes for an operator request."""
    req = message.parse_request(f"Pit: demo\nAccount: operator\nRef: r\n{key}: {value}\n")
    return {k.lower(): v for k, v in message.stamp_fields(req)}


def _pit_of(tickers: int, mine: str) -> tuple[Specialist, str]:
    sp = Specialist([mine])
    sp.pit, seq = "demo", 1
    sp.apply(seq, _operator_stamp("Currency", "USD 0.01"), b"")
    for i in range(tickers):
        seq += 1
        sp.apply(seq, _operator_stamp("Instrument", f"T{i:05d} USD tick 0.01 lot 1"), b"")
    sp.seq = seq
    return sp, sp.checkpoint_body()


def test_a_restored_specialist_reads_only_its_own_instrument():
    sp, body = _pit_of(500, "T00007")
    again = Specialist(["T00007"])
    again.load_checkpoint(body)
    # read so far: at most its own instrument (dict.keys: the ones read, without reading the rest)
    assert set(dict.keys(again.registry.instruments)) <= {"T00007"}
    assert len(again.registry.instruments) == 500
    assert "T00400" in again.registry.instruments
    # the checkpoint written again is the same, byte for byte
    assert again.checkpoint_body() == body
    # another ticker's instrument is read when it is needed, as it was defined
    assert again.registry.instruments["T00400"].describe() == sp.registry.instruments["T00400"].describe()
    assert again.checkpoint_body() == body


def test_a_range_specialist_restored_reads_the_instruments_its_run_touches():
    """A specialist of every ticker (A-Z) in a pit of 500: restored from its
    checkpoint it reads the instruments of the orders it touches, and a run
    from the checkpoint says what a run from the start says."""
    sp, _ = _pit_of(500, "A-Z")
    sp.accounts.known.update({"alice", "bob"})
    for i, (acct, ticker) in enumerate([("alice", "T00007"), ("bob", "T00009")]):
        sp.ledger.credit(f"{acct}:{ticker}", ticker, 100)
        sp.order(1000 + i, acct, f"r{i}", f"sell 10 {ticker} limit 1.00")
    body = sp.checkpoint_body().replace("Seq: 501", "Seq: 1001")
    sp.seq = 1001
    assert body == sp.checkpoint_body()
    again = Specialist(["A-Z"])
    again.load_checkpoint(body)
    assert set(dict.keys(again.registry.instruments)) <= {"T00007", "T00009"}
    assert again.checkpoint_body() == body
    for flt in (sp, again):
        flt.ledger.credit("carol:T00007", "USD", 10_000)
        flt.order(1002, "carol", "c1", "buy 5 T00007 limit 1.00")
    assert again.lines[-1] == sp.lines[-1] and again.lines[-1].startswith("trade 1002 T00007 5 at 1.00")
    assert set(dict.keys(again.registry.instruments)) <= {"T00007", "T00009"}
    assert again.checkpoint_body() == sp.checkpoint_body()


def test_lines_not_as_written_are_read_at_once():
    reg = Registry()
    reg.restore_line("currency USD 0.01")
    rest = reg.take_instruments("currency USD 0.01\ninstrument ACME USD tick 0.01 lot 1\n")
    assert rest.endswith("instrument ACME USD tick 0.01 lot 1\n")   # not canonical: kept in the text
    assert not reg.instruments.lazy


def test_a_restored_specialist_reads_the_members_only_when_needed():
    """Every specialist's checkpoint lists the members (a line each): a run
    of orders leaves them unread, and writes them back byte for byte."""
    from pit import testkeys
    sp, _ = _pit_of(3, "T00001")
    fprs = sorted(testkeys.certificate(f"m{i}")[1].fingerprint for i in range(300))
    for i, fpr in enumerate(fprs):
        sp.apply(10 + i, _operator_stamp("Member", f"add {fpr} accounts m{i}"), b"")
    body = sp.checkpoint_body()
    again = Specialist(["T00001"])
    again.load_checkpoint(body)
    assert not again.accounts.members                 # kept as text
    assert again.checkpoint_body() == body
    assert again.accounts.exists("m7", again.registry)     # read when an account is looked up
    assert len(again.accounts.members) == 300
    assert again.checkpoint_body() == body
    # a member record read after a restore comes after the members restored
    third = Specialist(["T00001"])
    third.load_checkpoint(body)
    extra = testkeys.certificate("later")[1].fingerprint
    third.apply(999, _operator_stamp("Member", f"add {extra} accounts later"), b"")
    sp.apply(999, _operator_stamp("Member", f"add {extra} accounts later"), b"")
    assert third.accounts.state() == sp.accounts.state()


# -- a specialist named by a range, through the user's path ----------------------

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pit import mbox, ops
from pit.archive import Archive
from pit.keyring import Keyring
from pit.tickerset import TickerSet

PIT_BIN = Path(sys.executable).with_name("pit")
SPECIALIST_BIN = Path(sys.executable).with_name("pit-specialist")


def _pit_cmd(pit, *argv, ok=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(PIT_BIN), "--pit", str(pit.root), *map(str, argv)],
                       capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, (argv, p.stdout, p.stderr)
    return p


@pytest.fixture
def ranged(tmp_path):
    """Pit demo trading ACME, BTC (both in the range A-M) and ZED (not),
    alice and bob funded in all three; records signed with real keys.
    Made under rules 1 (`pit init --rules 1`), as pits were before rules 2."""
    p = ops.init(tmp_path / "pit", "demo", rules=1)
    for k, v in [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1"),
                 ("Instrument", "BTC USD tick 0.01 lot 1"), ("Instrument", "ZED USD tick 0.01 lot 1")]:
        assert ops.operator_request(p, k, v).accepted
    keys = {}
    for name in ("alice", "bob"):
        ring = Keyring(tmp_path / name)
        fpr = ring.generate(name, f"{name}@example.org")
        assert ops.add_member(p, ring.export(fpr), [name])[1].accepted
        keys[name] = (ring, fpr)
    for v in ["10000.00 USD to alice", "100 ACME to bob", "100 BTC to bob", "100 ZED to bob"]:
        assert ops.operator_request(p, "Deposit", v).accepted

    def send(name, ref, key, value, account=None):
        ring, fpr = keys[name]
        ops.send_local(p, ops.sign_request(p, ops.request_text(p, account or name, ref, key, value),
                                           ring, fpr, f"{name}@example.org"))
        return ops.notary(p).run_maildir()
    p.send, p.keys = send, keys
    for t in ("ACME", "BTC", "ZED"):
        send("alice", f"t{t}", "Transfer", f"1000.00 USD to alice:{t}")
        send("bob", f"t{t}", "Transfer", f"50 {t} to bob:{t}")
    yield p
    for ring, _ in keys.values():
        ring.stop_agent()


def _reports(pit, account):
    from pit.filter import signed_text
    return [signed_text(m) for _, m in Archive(pit.root).read()
            if mbox.stamp(m).get("x-pit-kind") == "report" and mbox.stamp(m).get("x-pit-account") == account]


def test_one_specialist_serves_a_range_through_the_users_path(ranged):
    pit = ranged
    # the operator starts one specialist for every ticker from A to M: its key
    # is made and granted specialist:A-M; then pit run runs it and ZED's own
    _pit_cmd(pit, "run", "specialist", "A-M")
    out = _pit_cmd(pit, "run").stdout
    assert "specialist A-M:" in out and "specialist ZED:" in out, out
    assert "specialist ACME" not in out and "specialist BTC" not in out, out
    for t, price in (("ACME", "10.00"), ("BTC", "20.00"), ("ZED", "30.00")):
        assert all(d.accepted for d in pit.send("alice", f"b{t}", "Order", f"buy 5 {t} at {price}"))
        assert all(d.accepted for d in pit.send("bob", f"s{t}", "Order", f"sell 3 {t} at {price}"))
    # money out of a trading account of the range, back to alice's own
    assert all(d.accepted for d in pit.send("alice", "out", "Transfer", "10.00 USD to alice",
                                            account="alice:BTC"))
    _pit_cmd(pit, "run")
    _pit_cmd(pit, "run")              # transfers reads the specialist's report of it
    # one report for both tickers of the range, signed as specialist:A-M
    [*_, report] = _reports(pit, "specialist:A-M")
    assert report.startswith("Report: specialist A-M\n"), report
    assert "trade " in report and " ACME 3 at 10.00 " in report and " BTC 3 at 20.00 " in report, report
    assert not _reports(pit, "specialist:ACME") and not _reports(pit, "specialist:BTC")
    # which specialists the pit runs: from the notary, or (a replica, which has
    # none) from the archive's records; the same
    assert ops.specialist_jobs(pit) == [["specialist", "A-M"], ["specialist", "ZED"]]
    members, tickers = ops._members_and_tickers(pit)
    nt = ops.notary(pit)
    def specialists(items):
        return sorted((f, a) for f, a in items if a[0].startswith("specialist:"))
    assert specialists(members) == specialists(nt.members.items())
    assert tickers == set(nt.registry_instruments)
    assert any(" alice:BTC alice 10.00 USD" in r for r in _reports(pit, "specialist:A-M"))
    from pit import query
    usd = {r["account"]: r["amount"] for r in query.positions(pit, "alice") if r["asset"] == "USD"}
    assert usd["alice"] == "7010.00", usd         # 10000 - 3 x 1000 + 10 back from alice:BTC
    assert " ZED 3 at 30.00 " in _reports(pit, "specialist:ZED")[-1]
    # the trades and the open orders, as users read them
    fills = [json.loads(ln) for ln in _pit_cmd(pit, "fills", "--account", "alice", "--json").stdout.splitlines()]
    assert sorted((f["ticker"], f["qty"]) for f in fills) == [("ACME", "3"), ("BTC", "3"), ("ZED", "3")]
    orders = [json.loads(ln) for ln in _pit_cmd(pit, "orders", "--account", "alice", "--json").stdout.splitlines()]
    assert sorted((o["ticker"], o["remaining"]) for o in orders) == [("ACME", "2"), ("BTC", "2"), ("ZED", "2")]
    # pit replay | pit-specialist, two real programs: up to date, nothing to add
    rp = subprocess.run([str(PIT_BIN), "--pit", str(pit.root), "replay", "specialist", "A-M"],
                        capture_output=True, timeout=120)
    assert rp.returncode == 0, rp.stderr
    sp = subprocess.run([str(SPECIALIST_BIN), "A-M"], input=rp.stdout, capture_output=True, timeout=120)
    assert sp.returncode == 0, sp.stderr
    fresh = [m for m in mbox.iter_messages(sp.stdout) if not mbox.stamp(m)]
    assert len(fresh) == 1 and b"Checkpoint: specialist A-M\n" in fresh[0]
    # from record 1 it says what the archive says
    rp = subprocess.run([str(PIT_BIN), "--pit", str(pit.root), "replay", "specialist", "A-M",
                         "--from-start"], capture_output=True, timeout=120)
    sp = subprocess.run([str(SPECIALIST_BIN), "A-M"], input=rp.stdout, capture_output=True, timeout=120)
    assert sp.returncode == 0, sp.stderr
    trades = sorted(ln for ln in sp.stdout.decode().split("\n") if ln.startswith("trade "))
    archived = sorted(ln for r in _reports(pit, "specialist:A-M") for ln in r.split("\n") if ln.startswith("trade "))
    assert trades == archived and len(trades) == 2
    audit = _pit_cmd(pit, "audit")
    assert "specialist A-M" in audit.stdout, audit.stdout
    # more trading; the next audit goes on from the range specialist's checkpoint
    assert all(d.accepted for d in pit.send("bob", "s2", "Order", "sell 2 BTC at 20.00"))
    out = _pit_cmd(pit, "run").stdout
    assert " BTC 2 at 20.00 " in _reports(pit, "specialist:A-M")[-1]
    audit = _pit_cmd(pit, "audit")
    assert "specialist A-M" in audit.stdout and "incremental" in audit.stdout, audit.stdout
    assert _pit_cmd(pit, "audit", "--full").returncode == 0


def test_hostile_ticker_sets_get_a_one_line_refusal(ranged):
    """A key granted specialist accounts that overlap another specialist's,
    each other, or name no set at all is refused with one line, and the
    refusal is recorded; the pit goes on."""
    pit = ranged
    _pit_cmd(pit, "run", "specialist", "A-M")
    ring = Keyring(pit.root.parent / "filterkeys")
    fpr = ring.generate("desk", "desk@example.org", algo="ed25519")
    cases = [
        (["specialist:ACME"], "specialist:ACME overlaps specialist:A-M"),        # another's set
        (["specialist:B-C"], "specialist:B-C overlaps specialist:A-M"),
        (["specialist:L-Z"], "specialist:L-Z overlaps specialist:A-M"),
        (["specialist:N-Z", "specialist:ZED"], "overlap"),                          # its own words
        (["specialist:N-Z", "specialist:ZED"], "each ticker is named once"),
        ([f"specialist:N{i:03d}" for i in range(40)], "at most 32"),                # huge
        (["specialist:Z-A"], "empty range Z-A"),                                    # malformed
        (["specialist:N-"], "bad account"),
        (["alice:A-M"], "names a specialist's tickers"),
        (["specialist:N-Z", "specialist:N-Z"], "listed twice"),                     # duplicate
    ]
    for accounts, why in cases:
        _, d = ops.add_member(pit, ring.export(fpr), accounts)
        assert not d.accepted and why in d.reason and "\n" not in d.reason, (accounts, d.reason)
    rejects = list(mbox.iter_file(pit.rejects / "rejects.mbox"))
    assert len(rejects) >= len(cases)
    # a set that overlaps nobody is granted, and serves
    _, d = ops.add_member(pit, ring.export(fpr), ["specialist:N-Y"])
    assert d.accepted, d.reason
    assert ["specialist", "N-Y"] not in ops.specialist_jobs(pit)[:0] and \
        ["specialist", "N-Y"] in ops.specialist_jobs(pit)
    ring.stop_agent()


def test_pit_run_of_a_specialist_that_overlaps_another_is_refused_by_the_notary(ranged):
    """pit run FILTER whose key the notary refuses (its tickers overlap a
    specialist's): exit 5 and the notary's reason, as for any refusal
    (pit(1)), not exit 3 ('pit not found'); the pit runs on."""
    _pit_cmd(ranged, "run", "specialist", "A-M")
    p = _pit_cmd(ranged, "run", "specialist", "ACME", ok=False)
    assert (p.returncode, p.stdout) == (5, ""), (p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("pit run: refused by the notary: specialist:ACME overlaps "
                               "specialist:A-M of key "), p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    assert "specialist A-M" in _pit_cmd(ranged, "run").stdout


def test_a_specialist_name_too_long_or_malformed_is_a_usage_error(ranged):
    for words in (["A-M", "ACME"], ["Z-A"], ["a-m-x"]):
        p = _pit_cmd(ranged, "replay", "specialist", *words, ok=False)
        assert p.returncode == 2 and len(p.stderr.strip().split("\n")) == 1, p.stderr
        sp = subprocess.run([str(SPECIALIST_BIN), *words], capture_output=True, timeout=60)
        assert sp.returncode == 2 and len(sp.stderr.strip().split(b"\n")) == 1, sp.stderr


def test_a_range_pattern_is_its_set():
    """The order records' fast path reads a range's tickers with a pattern;
    it says what TickerSet says, ticker by ticker."""
    import random
    import re
    rnd = random.Random(18)
    alphabet = "A.09MTZ"

    def ticker():
        return rnd.choice("ABCDMNTZ") + "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(5)))
    sets = [["A-M"], ["T00000-T09999"], ["A-Z"], ["ACME", "B-C"], ["Z-Z"], ["A.-B"], ["M9-N"]]
    sets += [[ticker() + "-" + ticker()] for _ in range(300)]
    for words in sets:
        try:
            s = TickerSet(words)
        except ValueError:
            continue
        rx = re.compile(f"(?:{s.pattern})\n")
        for _ in range(300):
            t = ticker()
            assert (t in s) == bool(rx.fullmatch(t + "\n")), (words, t)


# -- rules 2: a specialist's checkpoint holds its own tickers only ----------------

def _send_all(pit, *requests):
    """Deliver signed requests and notarize them: the notary's decisions."""
    for name, ref, key, value, account in requests:
        ring, fpr = pit.keys[name]
        ops.send_local(pit, ops.sign_request(pit, ops.request_text(pit, account or name, ref, key, value),
                                             ring, fpr, f"{name}@example.org"))
    return ops.notary(pit).run_maildir()


def _checkpoints(pit, account):
    from pit.filter import signed_text
    return [signed_text(m) for _, m in Archive(pit.root).read()
            if mbox.stamp(m).get("x-pit-kind") == "checkpoint" and mbox.stamp(m).get("x-pit-account") == account]


def _grow(pit, instruments: int, members: int) -> None:
    """Add instruments and members (keys made in process) through the notary."""
    for i in range(instruments):
        assert ops.operator_request(pit, "Instrument", f"X{i:04d} USD tick 0.01 lot 1").accepted
    if members:
        certs = [(_certificate(f"m{i}"), [f"m{i}"]) for i in range(members)]
        assert all(d.accepted for _, d in ops.add_members(pit, certs))


def _certificate(name):
    from pit import testkeys
    return testkeys.certificate(name)[0]


@pytest.mark.parametrize("rules", [False, True], ids=["rules1", "rules2"])
def test_a_specialists_checkpoint_does_not_grow_with_the_pit_under_rules_2(ranged, rules):
    """The same ACME trading in a pit that then gains 40 instruments and 30
    members: under rules 1 ACME's checkpoint lists them all (a line each);
    under rules 2 it is the same size as before they came."""
    pit = ranged
    if rules:
        d = ops.operator_request(pit, "Rules", "2")
        assert d.accepted, d.reason
    assert all(d.accepted for d in _send_all(pit, ("alice", "b1", "Order", "buy 5 ACME at 10.00", None)))
    _pit_cmd(pit, "run", "specialist", "ACME")
    before = _checkpoints(pit, "specialist:ACME")[-1]
    _grow(pit, 40, 30)
    assert all(d.accepted for d in _send_all(pit, ("bob", "s1", "Order", "sell 2 ACME at 10.00", None)))
    _pit_cmd(pit, "run", "specialist", "ACME")
    after = _checkpoints(pit, "specialist:ACME")[-1]
    grown = len(after) - len(before)
    if not rules:
        assert "instrument X0039 " in after and grown > 40 * 50, grown    # the old rules: it grows
        return
    assert "\nrules 2\n" in before and "\nrules 2\n" in after
    assert not any(ln.startswith(("member ", "account ")) for ln in after.split("\n")), after
    assert [ln.split(" ")[1] for ln in after.split("\n") if ln.startswith("instrument ")] == ["ACME"]
    assert grown < 300, (grown, before, after)     # the trade's lines, not the pit's growth


def test_rules_2_refusals_through_the_notary(ranged):
    """Under rules 2 the notary refuses, with one line each, recorded: a
    transfer to an account that does not exist, an asset other than T and
    T's currency into or out of a trading account X:T, and rules that go
    back or that it does not know.  Under rules 1 it took them."""
    pit = ranged
    bad = [("alice", "n1", "Transfer", "1.00 USD to nobody", None, "no such account (no member owns nobody)"),
           ("alice", "n2", "Transfer", "1.00 USD to nobody:ACME", None, "no member owns nobody"),
           ("alice", "n3", "Transfer", "1.00 USD to alice:NOPE", None, "NOPE is not an instrument"),
           ("alice", "n4", "Transfer", "1.00 USD to transfers", None, "no such account"),
           ("alice", "n8", "Transfer", "1.00 USD to operator:ACME", None,
            "no such account (the operator has no trading account)"),
           ("bob", "n5", "Transfer", "5 BTC to bob:ACME", None,
            "transfer of BTC to bob:ACME: a trading account of ACME holds ACME and USD only"),
           ("bob", "n6", "Transfer", "5 ZED to bob:ACME", "bob:ZED",
            "transfer of ZED to bob:ACME: a trading account of ACME holds ACME and USD only"),
           ("bob", "n7", "Transfer", "5 ACME to bob", "bob:ZED",
            "transfer of ACME out of bob:ZED: a trading account of ZED holds ZED and USD only")]
    assert all(d.accepted for d in _send_all(pit, *[(*b[:4], b[4]) for b in bad[:1]])), "rules 1 takes it"
    assert ops.operator_request(pit, "Rules", "2").accepted
    for name, ref, key, value, account, why in bad:
        [d] = _send_all(pit, (name, ref + "x", key, value, account))
        assert not d.accepted and why in d.reason and "\n" not in d.reason, (value, d.reason)
    for value, why in (("2", "the pit's rules are 2 already"), ("1", "rules only go forward"),
                       ("3", "this notary knows rules 1 to 2")):
        d = ops.operator_request(pit, "Rules", value)
        assert not d.accepted and why in d.reason, d.reason
    rejects = list(mbox.iter_file(pit.rejects / "rejects.mbox"))
    assert len(rejects) == len(bad) + 3
    # what rules 2 allow still goes through
    good = [("alice", "g1", "Transfer", "1.00 USD to bob", None),
            ("alice", "g2", "Transfer", "1.00 USD to bob:ACME", None),
            ("alice", "g3", "Transfer", "1.00 USD to fees:ACME", None),
            ("bob", "g4", "Transfer", "5 ZED to bob", "bob:ZED"),
            ("alice", "g5", "Transfer", "1.00 USD to alice:ZED", "alice:ACME")]
    assert all(d.accepted for d in _send_all(pit, *good))
    _pit_cmd(pit, "run")
    _pit_cmd(pit, "run")
    assert _pit_cmd(pit, "audit").returncode == 0


def test_a_pit_moves_to_rules_2_and_audits_both(ranged):
    """An existing pit under rules 1 (bob:ACME holds BTC lots, a transfer
    of more on its way) moves to rules 2: the ACME specialist gives the BTC
    back to bob (reported as transferred), its checkpoints drop the other
    instruments and the members, and `pit audit` passes, full and
    incremental, over both rules; replayed from record 1 it says the same."""
    pit = ranged
    _pit_cmd(pit, "run")
    _pit_cmd(pit, "run", "specialist", "ACME")
    assert all(d.accepted for d in _send_all(pit, ("bob", "x1", "Transfer", "10 BTC to bob:ACME", None)))
    _pit_cmd(pit, "run")
    assert all(d.accepted for d in _send_all(pit, ("alice", "b1", "Order", "buy 5 ACME at 10.00", None)))
    _pit_cmd(pit, "run")
    old = _checkpoints(pit, "specialist:ACME")[-1]
    assert "member " in old and "instrument ZED " in old
    assert all(d.accepted for d in _send_all(pit, ("bob", "x2", "Transfer", "5 BTC to bob:ACME", None)))
    assert _pit_cmd(pit, "audit").returncode == 0          # the auditor's state under rules 1
    assert ops.operator_request(pit, "Rules", "2").accepted
    for _ in range(3):
        _pit_cmd(pit, "run")
    lines = [ln for r in _reports(pit, "specialist:ACME") for ln in r.split("\n")]
    assert any(ln.endswith(" bob:ACME bob 10 BTC") and ln.startswith("transferred ") for ln in lines), lines
    assert any(ln.endswith(" bob:ACME bob 5 BTC") and ln.startswith("transferred ") for ln in lines), lines
    from pit import query
    btc = {r["account"]: r["amount"] for r in query.positions(pit, "bob") if r["asset"] == "BTC"}
    assert btc.get("bob") == "50" and "bob:ACME" not in btc, btc
    new = _checkpoints(pit, "specialist:ACME")[-1]
    assert "\nrules 2\n" in new and "member " not in new and "instrument ZED " not in new, new
    assert "instrument ACME " in new and "currency USD " in new
    out = _pit_cmd(pit, "audit").stdout
    assert "incremental" in out, out
    assert _pit_cmd(pit, "audit", "--full").returncode == 0
    # pit replay | pit-specialist from record 1: what the archive says
    rp = subprocess.run([str(PIT_BIN), "--pit", str(pit.root), "replay", "specialist", "ACME",
                         "--from-start"], capture_output=True, timeout=120)
    sp = subprocess.run([str(SPECIALIST_BIN), "ACME"], input=rp.stdout, capture_output=True, timeout=120)
    assert sp.returncode == 0, sp.stderr
    said = sorted(ln for ln in sp.stdout.decode().split("\n") if ln.startswith(("transferred ", "trade ")))
    assert said == sorted(ln for ln in lines if ln.startswith(("transferred ", "trade ")))


def test_the_audit_finds_a_transfer_rules_2_refuse(ranged, monkeypatch):
    """A notary that takes what rules 2 refuse (here: one whose check is
    switched off) is caught by `pit audit`, full and incremental."""
    from pit import kinds
    pit = ranged
    assert ops.operator_request(pit, "Rules", "2").accepted
    assert _pit_cmd(pit, "audit").returncode == 0
    monkeypatch.setattr(kinds.rules, "transfer_refusal", lambda *a: None)
    assert all(d.accepted for d in _send_all(pit, ("alice", "z1", "Transfer", "1.00 USD to nobody", None)))
    for argv in (["audit"], ["audit", "--full"]):
        p = _pit_cmd(pit, *argv, ok=False)
        assert p.returncode != 0 and "the notary took a request the pit's rules refuse" in p.stdout + p.stderr, p
        assert "no member owns nobody" in p.stdout + p.stderr


def test_a_new_pit_starts_under_rules_2(tmp_path):
    """`pit init` makes a pit under rules 2, said in its genesis record: the
    notary refuses a transfer to nobody from the start, the specialist's
    first checkpoint holds its own instrument only, and the pit audits."""
    p = subprocess.run([str(PIT_BIN), "init", str(tmp_path / "pit"), "--name", "demo"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    from pit.pitdir import Pit
    pit = Pit(tmp_path / "pit")
    [(_, genesis)] = list(Archive(pit.root).read(1, 1))
    assert mbox.stamp(genesis)["x-pit-request"].endswith(" rules 2")
    for k, v in [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1"),
                 ("Instrument", "ZED USD tick 0.01 lot 1")]:
        assert ops.operator_request(pit, k, v).accepted
    ring = Keyring(tmp_path / "alice")
    fpr = ring.generate("alice", "alice@example.org")
    assert ops.add_member(pit, ring.export(fpr), ["alice"])[1].accepted
    assert ops.operator_request(pit, "Deposit", "100.00 USD to alice").accepted
    pit.keys = {"alice": (ring, fpr)}
    ds = _send_all(pit, ("alice", "t1", "Transfer", "1.00 USD to nobody", None),
                   ("alice", "t2", "Transfer", "50.00 USD to alice:ACME", None),
                   ("alice", "o1", "Order", "buy 1 ACME at 10.00", None))
    assert [d.accepted for d in ds] == [False, True, True], [d.reason for d in ds]
    assert ds[0].reason == "transfer to nobody: no such account (no member owns nobody)"
    d = ops.operator_request(pit, "Rules", "2")
    assert not d.accepted and "already" in d.reason
    for _ in range(2):
        _pit_cmd(pit, "run")
    [ck] = _checkpoints(pit, "specialist:ACME")[-1:]
    body = ck.split("\n\n", 1)[1]
    assert body.startswith("rules 2\n") and "instrument ZED" not in body and "member " not in body, ck
    assert _pit_cmd(pit, "audit", "--full").returncode == 0
    ring.stop_agent()
