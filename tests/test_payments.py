"""A transfer may pay another member (pit(1), pit transfer): the money
leaves only an account the signing key owns."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import funded_pit
from pit.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


def balances(capsys, root, account) -> dict:
    capsys.readouterr()
    assert main(["--pit", str(root), "balances", "--account", account, "--json"]) == 0
    return {(r["account"], r["asset"]): r["amount"]
            for r in map(json.loads, capsys.readouterr().out.splitlines())}


def test_a_member_pays_another_and_cannot_take(tmp_path, capsys):
    p = funded_pit(tmp_path)
    p.send("alice", "pay", "Transfer", "100.00 USD to bob")             # plain to plain
    p.send("alice", "pay2", "Transfer", "25.00 USD to bob:ACME")        # plain to bob's trading account
    assert main(["--pit", str(p.root), "notarize"]) == 0
    assert main(["--pit", str(p.root), "run"]) == 0
    bob = balances(capsys, p.root, "bob")
    assert bob["bob", "USD"] == "100.00" and bob["bob:ACME", "USD"] == "25.00"
    assert balances(capsys, p.root, "alice")["alice", "USD"] == "4875.00"
    # bob's trading account can spend what alice paid in: a buy of 2 at 12.00 (+ fees)
    p.send("bob", "b", "Order", "buy 2 ACME at 12.00")
    assert main(["--pit", str(p.root), "notarize"]) == 0
    assert main(["--pit", str(p.root), "run"]) == 0
    capsys.readouterr()
    assert main(["--pit", str(p.root), "orders", "--account", "bob", "--json"]) == 0
    assert [json.loads(x)["ref"] for x in capsys.readouterr().out.splitlines()] == ["b"]
    # taking is not paying: alice cannot move money out of bob's account
    ring, fpr = p.keys["alice"]
    from pit import ops
    raw = ops.sign_request(p, ops.request_text(p, "bob", "take", "Transfer", "1.00 USD to alice"),
                           ring, fpr, "alice@example.org")
    ops.send_local(p, raw)
    capsys.readouterr()
    assert main(["--pit", str(p.root), "notarize"]) == 0
    assert "the signing key does not own account bob" in capsys.readouterr().out
