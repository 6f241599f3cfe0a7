"""--at SEQ means one moment for every command (pit(1), AS OF A RECORD):
what records 1 to SEQ caused, whenever the filters reported it."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import funded_pit
from pit.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


def rows(capsys, root, *argv) -> list[dict]:
    capsys.readouterr()
    assert main(["--pit", str(root), *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_every_command_at_the_record_of_a_trade(tmp_path, capsys):
    p = funded_pit(tmp_path)
    p.send("bob", "s1", "Order", "sell 10 ACME at 12.00")
    p.send("alice", "b1", "Order", "buy 4 ACME at 12.00")
    p.send("alice", "b2", "Order", "buy 1 ACME at 11.00")
    assert main(["--pit", str(p.root), "notarize"]) == 0
    assert main(["--pit", str(p.root), "run"]) == 0        # the report comes after the orders
    [trade] = rows(capsys, p.root, "trades")
    n = trade["seq"]                                       # alice's b1
    assert rows(capsys, p.root, "trades", "--at", str(n)) == [trade]
    assert rows(capsys, p.root, "trades", "--at", str(n - 1)) == []
    assert rows(capsys, p.root, "fills", "--account", "alice", "--at", str(n)) == [trade]
    at = {(r["account"], r["asset"]): r["amount"] for r in rows(capsys, p.root, "positions", "--at", str(n))}
    before = {(r["account"], r["asset"]): r["amount"]
              for r in rows(capsys, p.root, "positions", "--at", str(n - 1))}
    assert at["alice:ACME", "ACME"] == "4" and ("alice:ACME", "ACME") not in before
    assert at["bob:ACME", "ACME"] == "496" and before["bob:ACME", "ACME"] == "500"
    assert rows(capsys, p.root, "balances", "--account", "alice", "--at", str(n)) == \
        [r for r in rows(capsys, p.root, "positions", "--at", str(n)) if r["account"].startswith("alice")]
    # the book and the open orders at the same record: b2 (record n + 1) is not there yet
    assert [(o["ref"], o["remaining"]) for o in rows(capsys, p.root, "orders", "--at", str(n))] == [("s1", "6")]
    assert [(o["ref"]) for o in rows(capsys, p.root, "orders", "--at", str(n + 1))] == ["s1", "b2"]
    book = rows(capsys, p.root, "book", "ACME", "--at", str(n))[0]
    assert book["asks"] == [{"price": "12.00", "qty": "6", "orders": 1}] and book["bids"] == []
    assert book["last"] == "12.00"
