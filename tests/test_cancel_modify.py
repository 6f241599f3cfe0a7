"""Cancel and modify through the user's path: signed mail into the incoming
maildir, `pit notarize`, `pit run`, and the outcome read back with the
query commands.  Nothing here writes a stamp by hand."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import funded_pit
from moderator.notary import Notary
from pit import mbox
from pit.archive import Archive
from pit.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


def pit_json(capsys, root, *argv) -> list[dict]:
    capsys.readouterr()
    assert main(["--pit", str(root), *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def pit_ok(capsys, root, *argv) -> str:
    capsys.readouterr()
    assert main(["--pit", str(root), *argv]) == 0
    return capsys.readouterr().out


@pytest.fixture
def funded(tmp_path):
    return funded_pit(tmp_path)


def test_cancel_takes_the_order_off_the_book(funded, capsys):
    p = funded
    p.send("alice", "c-test", "Order", "buy 1 ACME at 11.00")
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    assert [o["ref"] for o in pit_json(capsys, p.root, "orders", "--account", "alice")] == ["c-test"]
    p.send("alice", "c-cancel", "Order", "cancel c-test")
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    assert pit_json(capsys, p.root, "orders", "--account", "alice") == []
    book = pit_json(capsys, p.root, "book", "ACME")[0]
    assert book["bids"] == []
    # the funds held for the order are free again: a new order may use all of them
    p.send("alice", "all-in", "Order", "buy 450 ACME at 11.00")       # 4950.00 of 5000.00
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    assert [o["ref"] for o in pit_json(capsys, p.root, "orders", "--account", "alice")] == ["all-in"]
    assert "PASS" in pit_ok(capsys, p.root, "audit")


def test_cancel_and_modify_stamps_name_the_ticker(funded, capsys):
    """The stamp of a cancel or modify carries the ticker of the order it
    names, so the archive says which specialist it is for."""
    p = funded
    p.send("alice", "o1", "Order", "buy 2 ACME at 10.00")
    p.send("alice", "o2", "Order", "modify o1 qty 1 price 10.5")
    p.send("alice", "o3", "Order", "cancel o1")
    assert all(d.accepted for d in Notary(p.root).run_maildir())
    stamps = [mbox.stamp(m) for _, m in Archive(p.root).read()][-4:-1]
    assert [(s["x-pit-ref"], s.get("x-pit-ticker"), s["x-pit-request"]) for s in stamps] == [
        ("o1", "ACME", "buy 2 ACME limit 10.00"),
        ("o2", "ACME", "modify o1 qty 1 price 10.50"),
        ("o3", "ACME", "cancel o1")]
    pit_ok(capsys, p.root, "run")
    assert pit_json(capsys, p.root, "orders") == []
    lines = "\n".join(ln for ln in pit_ok(capsys, p.root, "replay", "specialist", "ACME",
                                          "--from-start").splitlines())
    assert "X-Pit-Request: cancel o1" in lines


def test_modify_then_cancel_through_the_pipe(funded, capsys):
    p = funded
    p.send("bob", "s1", "Order", "sell 5 ACME at 13.00")
    p.send("bob", "s2", "Order", "modify s1 qty 3")
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    [o] = pit_json(capsys, p.root, "orders", "--account", "bob")
    assert (o["ref"], o["remaining"], o["price"]) == ("s1", "3", "13.00")
    p.send("bob", "s3", "Order", "cancel s1")
    p.send("bob", "s4", "Order", "cancel s1")          # no longer open: the specialist says so
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    assert pit_json(capsys, p.root, "orders") == []
    rejected = [r["line"] for r in pit_json(capsys, p.root, "rejects")
                if r.get("filter") == "specialist:ACME"]
    assert len(rejected) == 1 and " bob s4 cancel s1" in rejected[0], rejected


def _as_older_notaries_stamped(monkeypatch):
    """The notary as it was before a cancel's stamp named its ticker."""
    import moderator.notary as notary_mod
    real = notary_mod.request_fields

    def without_cancel_ticker(req, *args):
        fields = real(req, *args)
        if fields[-1][1].startswith("cancel "):
            fields = [f for f in fields if f[0] != "X-Pit-Ticker"]
        return fields
    monkeypatch.setattr(notary_mod, "request_fields", without_cancel_ticker)
    return lambda: monkeypatch.setattr(notary_mod, "request_fields", real)


def test_older_archives_still_audit(funded, capsys, monkeypatch):
    """An archive whose cancels carry no ticker (what notaries wrote before)
    audits as it was written: its specialists never saw those cancels, and a
    replay today does not either.  Once a cancel carries its ticker, every
    later one must."""
    p = funded
    today = _as_older_notaries_stamped(monkeypatch)
    p.send("alice", "o1", "Order", "buy 1 ACME at 10.00")
    p.send("alice", "c1", "Order", "cancel o1")
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    assert [o["ref"] for o in pit_json(capsys, p.root, "orders")] == ["o1"]
    today()
    p.send("alice", "c2", "Order", "cancel o1")
    pit_ok(capsys, p.root, "notarize")
    pit_ok(capsys, p.root, "run")
    assert pit_json(capsys, p.root, "orders") == []
    assert "PASS" in pit_ok(capsys, p.root, "audit")
    # an older notary's cancel after a newer one's is a stamp that lies
    _as_older_notaries_stamped(monkeypatch)
    p.send("alice", "o2", "Order", "buy 1 ACME at 10.00")
    p.send("alice", "c3", "Order", "cancel o2")
    pit_ok(capsys, p.root, "notarize")
    capsys.readouterr()
    assert main(["--pit", str(p.root), "audit"]) == 1
    out = capsys.readouterr()
    assert "expected: x-pit-ticker: ACME" in out.out + out.err
