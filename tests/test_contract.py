"""pit(1) is a contract: every documented error case of every subcommand,
run through main(), gives its exit status and one line on stderr,
``pit COMMAND: what is wrong (what to do)``, and nothing on stdout.

The table is CASES: (argv, exit status, words the line must hold).  Words
in {braces} are filled from the fixture (the pit, a trader's home...).
An unknown ticker, account, asset or filter is the same error wherever it
is given: ``unknown KIND NAME (...)``, exit 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_pit
from pit import agents, ops, testkeys
from pit.cli import main
from pit.keyring import Keyring, gpg_home
from pit.pitdir import Pit

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")

A = ["--account", "alice", "--gnupghome", "{alice}"]

# argv, exit status, words of the one line on stderr
CASES = [
    # no pit, not a pit, no such command, bad arguments
    (["--pit", "{nowhere}", "book", "ACME"], 3, "pit book: pit directory {nowhere} does not exist"),
    (["--pit", "{notpit}", "trades"], 3, "pit trades: {notpit}: not a pit"),
    (["--pit", "{notpit}", "notarize"], 3, "not a pit"),
    (["--pit", "{notpit}", "rejects"], 3, "not a pit"),
    (["--pit", "{notpit}", "replay", "transfers"], 3, "not a pit"),
    (["--pit", "{notpit}", "deposit", "1", "USD", "alice"], 3, "not a pit"),
    (["audit", "{notpit}"], 3, "pit audit: {notpit}: not a pit"),
    (["audit", "{nowhere}"], 3, "pit audit: {nowhere} does not exist"),
    (["bogus"], 2, "pit: argument COMMAND: invalid choice: 'bogus'"),
    (["book"], 2, "pit book: the following arguments are required: ticker (see pit book --help)"),
    (["order", "buy"], 2, "pit order: the following arguments are required: --account"),
    (["book", "ACME", "--depth", "x"], 2, "pit book: argument --depth: invalid int value: 'x'"),
    (["export", "--format", "xml"], 2, "pit export: argument --format: invalid choice: 'xml'"),
    (["key", "new", "a", "a@b", "--algo", "dsa"], 2, "pit key new: argument --algo: invalid choice"),
    (["currency"], 2, "pit currency: the following arguments are required: ACTION"),
    (["book", "ACME", "--bogus"], 2, "pit book: unrecognized arguments: --bogus (see pit book --help)"),
    (["key", "new", "a", "a@b", "x"], 2, "pit key new: unrecognized arguments: x (see pit key new --help)"),
    (["mailman", "deliver"], 64, "pit mailman deliver: the following arguments are required: FILTER"),
    (["mailman", "deliver", "transfers", "--bogus"], 64, "pit mailman deliver: unrecognized arguments"),
    # operator
    (["init", "{pit}", "--name", "demo"], 2, "pit init: {pit}: a pit already exists here"),
    (["init", "{tmp}/x", "--name", "Bad Name"], 2, "pit init: bad pit name 'Bad Name'"),
    (["instrument", "add", "ZZZ", "JPY", "--tick", "1", "--lot", "1"], 2,
     "pit instrument: unknown currency JPY (this pit has EUR, USD)"),
    (["instrument", "add", "ZZZ", "USD", "--tick", "1", "--lot", "1", "--maker", "1%"], 2,
     "pit instrument: give both --maker and --taker"),
    (["currency", "add", "JPY", "one"], 5, "pit currency: refused by the notary: malformed request"),
    (["fees", "--maker", "x", "--taker", "1%"], 5, "pit fees: refused by the notary: malformed request"),
    (["rules", "2"], 5, "pit rules: refused by the notary: rules 2: the pit's rules are 2 already"),
    (["rules", "1"], 5, "pit rules: refused by the notary: rules 1: the pit's rules are 2 already"),
    (["rules", "3"], 5, "pit rules: refused by the notary: rules 3: this notary knows rules 1 to 2"),
    (["rules", "two"], 5, "pit rules: refused by the notary: malformed request"),
    (["member", "add", "{tmp}/nope.asc", "--accounts", "zed"], 4,
     "pit member: cannot read key file {tmp}/nope.asc"),
    (["member", "remove", "NOPE"], 5, "pit member: refused by the notary: malformed request"),
    (["deposit", "10", "XYZ", "alice"], 2, "pit deposit: unknown asset XYZ (this pit has ACME, BTC, EUR, USD)"),
    (["withdraw", "10", "XYZ", "alice"], 2, "pit withdraw: unknown asset XYZ"),
    (["deposit", "10", "USD", "nobody"], 2, "pit deposit: unknown account nobody (this pit has alice, bob"),
    (["deposit", "ten", "USD", "alice"], 5, "pit deposit: refused by the notary: malformed request"),
    (["deposit", "10", "USD", "alice:ACME"], 2,
     "pit deposit: alice:ACME is a trading or fee account (its specialist holds it): deposits "
     "and withdrawals are of plain accounts; pit transfer moves funds in and out"),
    (["withdraw", "10", "USD", "fees:ACME"], 2, "pit withdraw: fees:ACME is a trading or fee account"),
    (["run", "nosuch"], 2, "pit run: unknown filter nosuch (this pit has positions, specialist, transfers)"),
    (["run", "specialist", "NOPE"], 2, "pit run: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["stop"], 1, "pit stop: the daemon is not running (no pit.pid)"),
    # trader
    (["key", "export", "ABCDEF", "--gnupghome", "{alice}"], 4, "pit key: "),
    (["order", "buy", "1", "NOPE", "at", "1", *A], 2, "pit order: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["order", "buy", "1", "ACME", "at", "12.505", *A], 2, "not a multiple of the tick 0.01"),
    (["order", "buy", "1.5", "ACME", "at", "12", *A], 2, "not a multiple of the lot 1"),
    (["order", "buy", "ten", "ACME", *A], 2, "pit order: bad order 'buy ten ACME'"),
    (["order", "buy", "1", "ACME", "at", "12", "--account", "Alice!", "--gnupghome", "{alice}"], 2,
     "pit order: bad account 'Alice!'"),
    (["order", "buy", "1", "ACME", "at", "12", *A, "--ref", "no spaces"], 2, "pit order: bad ref"),
    (["order", "buy", "1", "ACME", "at", "12", "--account", "alice", "--gnupghome", "{tmp}/none"], 4,
     "pit order: GnuPG home {tmp}/none does not exist"),
    (["order", "buy", "1", "ACME", "at", "12", "--account", "alice", "--gnupghome", "{empty}"], 4,
     "pit order: no secret key in {empty} (make one with 'pit key new"),
    (["order", "buy", "1", "ACME", "at", "12", *A, "--key", "DEADBEEF"], 4,
     "pit order: no secret key DEADBEEF in {alice}"),
    (["order", "buy", "1", "ACME", "at", "12", "--account", "alice", "--gnupghome", "{several}"], 4,
     "secret keys: choose one with --key FPR"),
    (["order", "buy", "1", "ACME", "at", "12", *A, "--ref", "used", "--notarize"], 5,
     "pit order: refused by the notary: replayed: ref used of alice"),
    (["order", "buy", "1", "ACME", "at", "12", "--account", "bob", "--gnupghome", "{alice}",
      "--notarize"], 5, "does not own account bob"),
    (["order", "cancel", "7", "--account", "alice:ACME", "--gnupghome", "{alice}"], 2,
     "pit order: --account alice:ACME: orders are placed by a plain account (alice); its "
     "trading account alice:TICKER holds their funds"),
    (["transfer", "1", "XYZ", "alice:ACME", *A], 2, "pit transfer: unknown asset XYZ"),
    (["transfer", "1", "USD", "nobody:ACME", *A], 2, "pit transfer: unknown account nobody:ACME"),
    (["transfer", "1", "USD", "alice:NOPE", *A], 2, "pit transfer: unknown account alice:NOPE"),
    (["orders", "--account", "nobody"], 2, "pit orders: unknown account nobody"),
    (["fills", "--account", "nobody"], 2, "pit fills: unknown account nobody"),
    (["balances", "--account", "nobody"], 2, "pit balances: unknown account nobody"),
    (["positions", "--account", "nobody"], 2, "pit positions: unknown account nobody"),
    # auditor
    (["audit", "{tampered}"], 1, None),
    (["verify", "99999"], 2, "pit verify: no record 99999 in {pit} (the archive ends at"),
    (["--pit", "{tampered}", "verify", "2"], 1, None),
    (["show", "0"], 2, "pit show: bad record range '0'"),
    (["show", "x-y"], 2, "pit show: bad record range 'x-y'"),
    (["show", "99999"], 2, "pit show: no records 99999 (the archive ends at"),
    (["export", "--ticker", "NOPE"], 2, "pit export: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["export", "--account", "nobody"], 2, "pit export: unknown account nobody"),
    # member
    (["replay", "nosuch"], 2, "pit replay: unknown filter nosuch (this pit has positions, specialist, transfers)"),
    (["replay", "specialist", "NOPE"], 2, "pit replay: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["replay", "specialist", "NOPE", "--from-start"], 2, "pit replay: unknown ticker NOPE"),
    (["book", "NOPE"], 2, "pit book: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["book", "ACME", "--at", "3"], 2, "pit book: ACME is not yet defined at record 3"),
    (['book', 'ACME', '--at', '99999'], 2, "pit book: no record 99999 (the archive ends at "),
    (['book', 'ACME', '--at', '-5'], 2, "pit book: no record -5 (the archive ends at "),
    (['trades', '--at', '99999'], 2, "pit trades: no record 99999 (the archive ends at "),
    (['trades', '--at', '0'], 2, "pit trades: no record 0 (the archive ends at "),
    (['orders', '--at', '99999'], 2, "pit orders: no record 99999 (the archive ends at "),
    (['fills', '--account', 'alice', '--at', '99999'], 2, "pit fills: no record 99999 (the archive ends at "),
    (['balances', '--account', 'alice', '--at', '0'], 2, "pit balances: no record 0 (the archive ends at "),
    (['positions', '--at', '99999'], 2, "pit positions: no record 99999 (the archive ends at "),
    (['chart', 'ACME', '--at', '99999'], 2, "pit chart: no record 99999 (the archive ends at "),
    (["book", "ACME", "--depth", "0"], 2, "pit book: argument --depth: 0: 1 or more"),
    (["chart", "ACME", "--depth", "-1"], 2, "pit chart: argument --depth: -1: 1 or more"),
    (["chart", "NOPE"], 2, "pit chart: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["chart", "ACME", "-o", "{tmp}/acme.gif"], 2, "pit chart: cannot draw acme.gif: the file name must end in .png or .svg"),
    (["chart", "ACME", "--at", "3"], 2, "pit chart: ACME is not yet defined at record 3"),
    (["trades", "--ticker", "NOPE"], 2, "pit trades: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["search", "--ticker", "NOPE"], 2, "pit search: unknown ticker NOPE (this pit trades ACME, BTC)"),
    (["search", "--account", "nobody"], 2, "pit search: unknown account nobody"),
    (["search"], 2, "pit search: nothing to search for"),
    (["search", "--ticker", "BTC", "--account", "bob"], 1, "pit search: no record matches"),
    (["mirror", "{nowhere}", "{tmp}/copy"], 1, "pit mirror: "),
    # mailman
    (["mailman", "daemon", "nosuch"], 2, "pit mailman: unknown filter nosuch (this pit has positions, specialist, transfers)"),
    (["mailman", "serve"], 1, "pit mailman: {pit} is not on Mailman yet: run 'pit mailman provision' first"),
    (["mailman", "serve", "--judges", "-1"], 2, "pit mailman: --judges -1: a number of processes, 0 or more"),
]


@pytest.fixture(scope="module")
def places(template_pits, keyhome, tmp_path_factory):
    """The demo pit (a copy), a tampered copy, homes with one, none and
    several secret keys, a directory that is not a pit."""
    base = tmp_path_factory.mktemp("contract")
    try:
        yield _places(base, template_pits, keyhome)
    finally:
        agents.stop(agents.running([base]))


def _places(base, template_pits, keyhome) -> dict:
    pit = copy_pit(template_pits[0], base / "pit")
    # a home holding alice's secret key only (the session's home holds several)
    alice = base / "alice"
    fpr = testkeys._meta(keyhome)["alice"]["fpr"]
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    secret = subprocess.run(gpg + ["--homedir", gpg_home(keyhome), "--export-secret-keys", fpr],
                            capture_output=True, check=True).stdout
    Keyring(alice)
    subprocess.run(gpg + ["--homedir", gpg_home(alice), "--import"], input=secret,
                   capture_output=True, check=True)
    p = Pit(pit)
    text = ops.request_text(p, "alice", "used", "Order", "buy 1 ACME at 12.00")
    ops.send_local(p, ops.sign_request(p, text, Keyring(alice), fpr, "alice@example.org"))
    decisions = ops.notary(p).run_maildir()
    assert all(d.accepted for d in decisions), [d.reason for d in decisions]
    tampered = copy_pit(pit, base / "tampered")
    vol = tampered / "archives" / "000001.mbox"
    vol.write_bytes(vol.read_bytes().replace(b"Currency: USD 0.01", b"Currency: USD 0.02", 1))
    (base / "empty").mkdir(mode=0o700)
    (base / "notpit").mkdir()
    values = {"pit": str(pit), "tampered": str(tampered), "alice": str(alice),
              "several": str(keyhome), "empty": str(base / "empty"), "tmp": str(base),
              "notpit": str(base / "notpit"), "nowhere": str(base / "nowhere")}
    return values


def fill(text: str, values: dict) -> str:
    return text.format(**values)


@pytest.mark.parametrize("argv, code, words", CASES,
                         ids=[" ".join(c[0]) for c in CASES])
def test_error_case(places, capsys, monkeypatch, argv, code, words):
    monkeypatch.setenv("PIT_DIR", places["pit"])
    argv = [fill(a, places) for a in argv]
    got = main(argv)
    out, err = capsys.readouterr()
    assert got == code, f"exit {got}: {err!r}"
    if words is None:                       # a check that reports its steps on stdout
        return
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("pit"), err
    assert fill(words, places) in err, err


def test_the_table_covers_every_subcommand():
    """Each command of the parser has at least one error case."""
    from pit.commands import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    named = {c[0][c[0].index("--pit") + 2] if "--pit" in c[0] else c[0][0] for c in CASES}
    missing = set(sub.choices) - named - {"start", "daemon", "notarize"} - {"mailman"}
    assert not missing, missing


def test_console_script_errors_are_one_line(places):
    """The installed `pit` too: argparse's usage line is not printed."""
    pit = Path(sys.executable).with_name("pit")
    for argv, code in ((["book"], 2), (["run", "nosuch"], 2), (["--pit", places["notpit"], "book", "X"], 3)):
        proc = subprocess.run([str(pit), *argv], capture_output=True, text=True,
                              env={**os.environ, "PIT_DIR": places["pit"]})
        assert proc.returncode == code and proc.stderr.count("\n") == 1, proc.stderr
