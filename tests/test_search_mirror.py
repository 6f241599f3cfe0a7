"""mairix search over a multi-volume archive; rsync mirroring, incremental
updates, replicas that audit clean, and tampered replicas that do not."""

import shutil
import time

import pytest

from pit import mbox, ops, search, testkeys
from pit.archive import Archive, record_hash
from pit.audit import audit
from pit.keyring import Keyring
from pit.mirror import compare, mirror

pytestmark = pytest.mark.e2e

needs = pytest.mark.skipif(not (shutil.which("mairix") and shutil.which("rsync")),
                           reason="mairix and rsync are installed by make install")


@pytest.fixture(scope="module")
def pit(tmp_path_factory):
    root = tmp_path_factory.mktemp("pits") / "demo"
    p = ops.init(root, "demo")
    for k, v in [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")]:
        assert ops.operator_request(p, k, v).accepted
    ring = Keyring(root.parent / "alice")
    fpr = ring.generate("alice", "alice@example.org")
    assert ops.add_member(p, ring.export(fpr), ["alice"])[1].accepted
    assert ops.operator_request(p, "Deposit", "1000.00 USD to alice").accepted
    raw = ops.sign_request(p, ops.request_text(p, "alice", "t1", "Transfer",
                                               "500.00 USD to alice:ACME"),
                           ring, fpr, "alice@example.org")
    ops.send_local(p, raw)
    raw = ops.sign_request(p, ops.request_text(p, "alice", "o1", "Order",
                                               "buy 10 ACME at 12.50"),
                           ring, fpr, "alice@example.org")
    ops.send_local(p, raw)
    assert all(d.accepted for d in ops.notary(p).run_maildir())
    ops.run_filter(p, "transfers", [])
    ops.run_filter(p, "specialist", ["ACME"])
    p.ring, p.fpr = ring, fpr
    yield p
    testkeys.stop_agents(root.parent)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """A synthetic archive of 40 order records in 4 volumes of 10."""
    from bench.replay import order_record
    root = tmp_path_factory.mktemp("vols")
    arch = Archive(root, volume_limit=10)
    prev, us = "0" * 64, 1_790_000_000_000_000
    batch = []
    for seq in range(1, 41):
        acct = ("alice", "bob", "carol", "dave")[seq % 4]
        ticker = ("ACME", "BTC")[seq % 2]
        text = f"buy {seq} {ticker} limit 12.50"
        rec = order_record(seq, prev, us + seq * 86_400_000_000, acct, f"r{seq}", text,
                           ticker, "demo")
        prev = record_hash(rec)
        batch.append((rec, "notary", (us + seq * 86_400_000_000) // 1_000_000))
    arch.append(batch)
    assert len(arch.volumes()) == 4
    return root


@needs
def test_mairix_finds_by_ticker_account_ref_sender_date(volumes):
    search.index(volumes)
    def seqs(expr):
        return [int(mbox.stamp(m)["x-pit-seq"]) for m in search.search(volumes, expr)]
    assert seqs(search.terms(ticker="BTC", account="bob")) == [s for s in range(1, 41)
                                                              if s % 4 == 1 and s % 2 == 1]
    assert seqs(search.terms(account="carol", ref="r2")) == [2]
    assert seqs(search.terms(sender="dave@traders.example")) == list(range(3, 41, 4))
    everything = seqs(search.terms(ticker="ACME"))
    assert everything == list(range(2, 41, 2)) and len({(s - 1) // 10 for s in everything}) == 4
    # a date range: records are a day apart
    day = time.strftime("%Y%m%d", time.gmtime(1_790_000_000 + 5 * 86_400))
    assert seqs(search.terms(date=day)) == [5]
    week = day + "-" + time.strftime("%Y%m%d", time.gmtime(1_790_000_000 + 11 * 86_400))
    assert seqs(search.terms(date=week)) == list(range(5, 12))


@needs
def test_search_needs_something_to_look_for():
    with pytest.raises(search.SearchError):
        search.terms()


@needs
def test_mairix_on_a_real_pit(pit):
    found = search.search(pit.root, search.terms(ticker="ACME", account="alice"))
    assert any(b"buy 10 ACME" in m for m in found)
    assert all(mbox.stamp(m) for m in found)


@needs
def test_mirror_is_incremental_and_audits_clean(pit, tmp_path):
    replica = tmp_path / "replica"
    first = mirror(str(pit.root), replica)
    assert "index" in first and any(n.endswith(".mbox") for n in first)
    assert compare(pit.root, replica) == []
    assert audit(replica).ok
    assert mirror(str(pit.root), replica) == []            # nothing new: nothing sent
    assert ops.operator_request(pit, "Deposit", "1.00 USD to alice").accepted
    again = mirror(str(pit.root), replica)
    assert set(again) == {"000001.mbox", "index"}
    assert compare(pit.root, replica) == []
    r = audit(replica)
    assert r.ok, r.problem


@needs
def test_a_tampered_replica_is_detected(pit, tmp_path):
    replica = tmp_path / "replica"
    mirror(str(pit.root), replica)
    vol = replica / "archives" / "000001.mbox"
    data = bytearray(vol.read_bytes())
    i = data.index(b"buy 10 ACME")
    data[i + 4] = ord("9")                                  # buy 90 ACME
    vol.write_bytes(bytes(data))
    assert compare(pit.root, replica) == ["000001.mbox: differs from the source"]
    r = audit(replica)
    assert not r.ok and "record" in r.problem


@needs
@pytest.mark.parametrize("after", [1, 2, 3])
def test_a_mirror_of_a_live_pit_never_promises_what_it_lacks(pit, tmp_path, monkeypatch, after):
    """The notary appends while rsync copies: a record that lands between
    the copy of the volumes and the copy of the index made the replica's
    index promise bytes its volume did not have ('truncated at byte N; the
    index says M'), and a filter daemon following the replica stopped."""
    import pit.mirror as mirror_mod
    replica = tmp_path / "replica"
    mirror(str(pit.root), replica)
    real_run, calls = mirror_mod._run, []

    def run_then_append(args, *a, **kw):
        out = real_run(args, *a, **kw)
        calls.append(args)
        if len(calls) == after:    # between two of rsync's runs, the notary appends
            assert ops.operator_request(pit, "Deposit", "1.00 USD to alice").accepted
        return out

    monkeypatch.setattr(mirror_mod, "_run", run_then_append)
    mirror(str(pit.root), replica)
    monkeypatch.setattr(mirror_mod, "_run", real_run)
    r = audit(replica)
    assert r.ok, r.problem
    mirror(str(pit.root), replica)
    assert compare(pit.root, replica) == []
    assert audit(replica).ok
