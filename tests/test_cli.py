"""The pit command: every subcommand's happy path and its common mistakes,
in process through main() and a few through the installed console script.

One pit is made for the module (keys cost ~0.2 s each); tests that change
it use refs of their own so that they do not depend on each other's order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pit.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")

PIT_BIN = Path(sys.executable).with_name("pit")


def run(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A pit with USD, ACME and BTC, two funded traders and one trade."""
    base = tmp_path_factory.mktemp("cli")
    pit = base / "pit"
    keys = {n: base / f"keys-{n}" for n in ("alice", "bob")}

    def ok(*argv):
        code = main([str(a) for a in argv])
        assert code == 0, argv
    ok("init", pit, "--name", "demo")
    P = ["--pit", pit]
    ok(*P, "currency", "add", "USD", "0.01")
    ok(*P, "currency", "add", "EUR", "0.01")
    ok(*P, "fees", "--maker", "0.1%", "--taker", "0.2%")
    ok(*P, "instrument", "add", "ACME", "USD", "--tick", "0.01", "--lot", "1")
    ok(*P, "instrument", "add", "BTC", "EUR", "--tick", "0.5", "--lot", "0.1",
       "--maker", "0.05%", "--taker", "0.1%")
    fprs = {}
    for name, home in keys.items():
        proc = subprocess.run([str(PIT_BIN), "key", "new", name, f"{name}@example.org",
                               "--gnupghome", str(home)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        fprs[name] = proc.stdout.strip()
        asc = base / f"{name}.asc"
        with open(asc, "w") as f:
            subprocess.run([str(PIT_BIN), "key", "export", fprs[name], "--gnupghome", str(home)],
                           stdout=f, check=True)
        ok(*P, "member", "add", asc, "--accounts", name)
    ok(*P, "deposit", "10000.00", "USD", "alice")
    ok(*P, "deposit", "500", "ACME", "bob")
    ok(*P, "run")
    ok(*P, "transfer", "5000.00", "USD", "alice:ACME", "--account", "alice",
       "--gnupghome", keys["alice"], "--notarize")
    ok(*P, "transfer", "500", "ACME", "bob:ACME", "--account", "bob",
       "--gnupghome", keys["bob"])
    ok(*P, "notarize")
    ok(*P, "run")
    ok(*P, "order", "buy", "100", "ACME", "at", "12.50", "--account", "alice",
       "--gnupghome", keys["alice"], "--ref", "a1", "--notarize")
    ok(*P, "order", "sell", "40", "acme", "@", "12.4", "--account", "bob",
       "--gnupghome", keys["bob"], "--ref", "b1", "--notarize", "--mime")
    ok(*P, "run")
    return {"pit": pit, "keys": keys, "fprs": fprs, "base": base}


def alice(world, *more):
    return ["--pit", world["pit"], *more, "--account", "alice", "--gnupghome", world["keys"]["alice"]]


# -- operator ------------------------------------------------------------------

def test_init_refuses_an_existing_pit(world, capsys):
    code, _, err = run(capsys, "init", world["pit"], "--name", "demo")
    assert code == 2 and "already exists" in err


def test_init_refuses_a_bad_name(tmp_path, capsys):
    code, _, err = run(capsys, "init", tmp_path / "x", "--name", "Bad Name")
    assert code == 2 and "bad pit name" in err


def test_operator_requests_are_checked_by_the_notary(world, capsys):
    code, _, err = run(capsys, "--pit", world["pit"], "instrument", "add", "ZZZ", "JPY",
                       "--tick", "1", "--lot", "1")
    assert code == 2 and "unknown currency JPY (this pit has EUR, USD)" in err
    code, _, err = run(capsys, "--pit", world["pit"], "deposit", "ten", "USD", "alice")
    assert code == 5 and "refused by the notary: malformed request" in err


def test_maker_without_taker_is_a_usage_error(world, capsys):
    code, _, err = run(capsys, "--pit", world["pit"], "instrument", "add", "X", "USD",
                       "--tick", "1", "--lot", "1", "--maker", "0.1%")
    assert code == 2 and "both --maker and --taker" in err


def test_member_add_with_a_missing_key_file(world, capsys):
    code, _, err = run(capsys, "--pit", world["pit"], "member", "add", world["base"] / "nope.asc",
                       "--accounts", "zed")
    assert code == 4 and "cannot read key file" in err


def test_pit_not_found(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "--pit", tmp_path / "missing", "book", "ACME")
    assert code == 3 and "does not exist" in err
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIT_DIR", raising=False)
    code, _, err = run(capsys, "trades")
    assert code == 3 and "not a pit" in err


def test_pit_dir_from_the_environment(world, capsys, monkeypatch):
    monkeypatch.setenv("PIT_DIR", str(world["pit"]))
    code, out, _ = run(capsys, "trades")
    assert code == 0 and "ACME 40 at 12.50 USD buyer alice seller bob" in out


# -- trader --------------------------------------------------------------------

def test_order_rejects_an_unknown_ticker_before_signing(world, capsys):
    code, _, err = run(capsys, *alice(world, "order", "buy", "1", "XYZ", "at", "1"))
    assert code == 2 and "unknown ticker XYZ (this pit trades ACME, BTC)" in err


def test_order_rejects_a_bad_price(world, capsys):
    code, _, err = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "12.505"))
    assert code == 2 and "not a multiple of the tick 0.01" in err
    code, _, err = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "cheap"))
    assert code == 2 and "bad order" in err


def test_order_rejects_a_bad_account(world, capsys):
    code, _, err = run(capsys, "--pit", world["pit"], "order", "buy", "1", "ACME", "at", "12",
                       "--account", "Alice!", "--gnupghome", world["keys"]["alice"])
    assert code == 2 and "bad account" in err


def test_order_with_a_missing_key(world, capsys, tmp_path):
    code, _, err = run(capsys, "--pit", world["pit"], "order", "buy", "1", "ACME", "at", "12",
                       "--account", "alice", "--gnupghome", tmp_path / "nokeys")
    assert code == 4 and "does not exist" in err
    code, _, err = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "12",
                                      "--key", "DEADBEEF"))
    assert code == 4 and "no secret key DEADBEEF" in err


def test_notary_refusals_exit_5(world, capsys):
    code, _, err = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "12",
                                      "--ref", "a1", "--notarize"))
    assert code == 5 and "replayed: ref a1 of alice" in err
    code, _, err = run(capsys, "--pit", world["pit"], "order", "buy", "1", "ACME", "at", "12",
                       "--account", "bob", "--gnupghome", world["keys"]["alice"], "--notarize")
    assert code == 5 and "does not own account bob" in err


def test_every_order_type_is_accepted(world, capsys):
    for i, words in enumerate(["buy 10 ACME market", "sell 10 ACME stop 11.00",
                               "sell 10 ACME stop 11 limit 10.9", "sell 5 ACME take-profit 14",
                               "buy 5 ACME ioc 12.00", "buy 5 ACME at 12.00 fok",
                               "buy 3 ACME at 12.01"]):
        code, out, err = run(capsys, *alice(world, "order", *words.split(), "--ref", f"t{i}",
                                            "--notarize"))
        assert code == 0, err
    code, out, err = run(capsys, *alice(world, "order", "modify", "t6", "qty", "2", "price",
                                        "12.02", "--ref", "t-mod", "--notarize"))
    assert code == 0, err
    code, out, err = run(capsys, *alice(world, "order", "cancel", "t6", "--ref", "t-cancel",
                                        "--notarize"))
    assert code == 0, err
    assert run(capsys, "--pit", world["pit"], "run")[0] == 0


def test_order_without_notarize_says_what_notarizes_it(world, capsys):
    code, out, err = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "10",
                                        "--ref", "nn1"))
    assert code == 0 and out == "ref nn1 sent (local); run pit notarize, or pit start\n", err
    assert run(capsys, "--pit", world["pit"], "notarize")[0] == 0


def test_order_to_stdout_is_a_signed_mail(world, capsys):
    code, out, _ = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "12",
                                      "--send", "stdout", "--ref", "s1"))
    assert code == 0
    assert "-----BEGIN PGP SIGNED MESSAGE-----" in out
    assert "Order: buy 1 ACME limit 12.00" in out and "Ref: s1" in out


def test_orders_fills_balances(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "orders", "--account", "alice", "--json")
    rows = [json.loads(l) for l in out.splitlines()]
    assert code == 0 and any(r["ref"] == "a1" and r["remaining"] == "60" for r in rows)
    code, out, _ = run(capsys, "--pit", world["pit"], "fills", "--account", "bob")
    assert code == 0 and "ACME 40 at 12.50" in out
    # a trading account's fills are its owner's trades of its ticker (it listed none)
    code, trading, _ = run(capsys, "--pit", world["pit"], "fills", "--account", "bob:ACME")
    assert code == 0 and trading == out, trading
    code, other, _ = run(capsys, "--pit", world["pit"], "fills", "--account", "bob:BTC")
    assert (code, other) == (0, "")
    code, out, _ = run(capsys, "--pit", world["pit"], "balances", "--account", "bob", "--json")
    rows = {(r["account"], r["asset"]): r["amount"] for r in map(json.loads, out.splitlines())}
    assert rows[("bob:ACME", "ACME")] == "460"


# -- queries and the auditor -----------------------------------------------------

def test_book(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "book", "ACME", "--json")
    b = json.loads(out)
    assert code == 0 and b["bids"][0]["price"] == "12.50" and b["last"] == "12.50"
    code, out, _ = run(capsys, "--pit", world["pit"], "book", "acme")
    assert code == 0 and "ACME (USD)" in out
    head, first = out.splitlines()[1:3]          # the order counts, as --json has them
    assert head.split() == ["orders", "bid", "qty", "bid", "|", "ask", "ask", "qty", "orders"]
    assert first.split()[:3] == [str(b["bids"][0]["orders"]), b["bids"][0]["qty"], "12.50"]
    code, _, err = run(capsys, "--pit", world["pit"], "book", "NOPE")
    assert code == 2 and "unknown ticker NOPE" in err


def test_book_and_positions_at_an_earlier_record(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "book", "ACME", "--at", "3", "--json")
    assert code == 2
    code, out, _ = run(capsys, "--pit", world["pit"], "book", "ACME", "--at", "12", "--json")
    assert code == 0 and json.loads(out)["bids"] == [] and json.loads(out)["last"] is None
    code, out, _ = run(capsys, "--pit", world["pit"], "positions", "--at", "5")
    assert code == 0 and out == ""


def test_trades_and_show_and_export(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "trades", "--ticker", "ACME", "--json")
    t = json.loads(out.splitlines()[0])
    assert code == 0 and (t["buyer"], t["seller"], t["qty"]) == ("alice", "bob", "40")
    code, out, _ = run(capsys, "--pit", world["pit"], "show", "2-3")
    assert code == 0 and out.startswith("From notary ") and "X-Pit-Seq: 3" in out
    code, _, err = run(capsys, "--pit", world["pit"], "show", "99999")
    assert code == 2 and "the archive ends at" in err
    code, _, err = run(capsys, "--pit", world["pit"], "show", "x-y")
    assert code == 2
    code, out, _ = run(capsys, "--pit", world["pit"], "export", "--format", "csv",
                       "--account", "alice", "--ticker", "ACME")
    lines = out.splitlines()
    assert lines[0].startswith("seq,time,kind") and any(",order,alice,a1," in l for l in lines)
    code, out, _ = run(capsys, "--pit", world["pit"], "export", "--format", "text", "--to", "3")
    assert code == 0 and len(out.splitlines()) == 3


def test_json_everywhere_one_field_set_a_kind(world, capsys):
    """--json for what a script reads: every row of a kind has the same keys."""
    from pit.commands.audit import AUDIT_FIELDS
    from pit.commands.common import RECORD_FIELDS
    from pit.commands.verify import VERIFY_FIELDS
    P = ["--pit", world["pit"]]
    rows = []
    for argv in (["show", "1-6", "--json"], ["export", "--json", "--to", "6"],
                 ["export", "--format", "json", "--account", "alice"]):
        code, out, _ = run(capsys, *P, *argv)
        assert code == 0
        rows += [json.loads(l) for l in out.splitlines()]
    assert rows and all(set(r) == set(RECORD_FIELDS) for r in rows)
    assert [r["seq"] for r in rows[:6]] == list(range(1, 7)) and rows[:6] == rows[6:12]
    code, out, _ = run(capsys, *P, "rejects", "--json")
    kinds = {}
    for r in map(json.loads, out.splitlines()):
        kinds.setdefault(r["kind"], set()).add(frozenset(r))
    assert set(kinds) <= {"notary", "filter"}, kinds
    assert all(len(field_sets) == 1 for field_sets in kinds.values()), kinds
    code, out, _ = run(capsys, *P, "verify", "1", "--json")
    assert set(json.loads(out)) == set(VERIFY_FIELDS)
    if shutil.which("mairix"):
        code, out, _ = run(capsys, *P, "search", "--account", "alice", "--json")
        assert code == 0 and all(set(json.loads(l)) == set(RECORD_FIELDS) for l in out.splitlines())


def test_audit_json(world, capsys):
    from pit.commands.audit import AUDIT_FIELDS
    code, out, _ = run(capsys, "--pit", world["pit"], "audit", "--json")
    r = json.loads(out)
    assert code == 0 and set(r) == set(AUDIT_FIELDS) and r["ok"] is True and r["problem"] is None


def test_verify_one_record(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "export", "--format", "csv",
                       "--account", "bob")
    seq = next(l.split(",")[0] for l in out.splitlines() if ",order,bob,b1," in l)
    code, out, _ = run(capsys, "--pit", world["pit"], "verify", seq)
    assert code == 0, out
    assert "gpg --verify of seal" in out and "pgp-mime signature" in out and "verified" in out


def test_replay_is_the_filters_input(world, capsys):
    code = main(["--pit", str(world["pit"]), "replay", "transfers", "--from-start"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("From notary ") and "X-Pit-Kind: deposit" in out
    code, _, err = run(capsys, "--pit", world["pit"], "replay", "nosuch")
    assert code == 2 and "unknown filter" in err


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_replay_into_a_filter_program_and_a_reader_that_goes_away(world, unbuffered):
    """`pit replay | pit-transfers` gives the same bytes whether or not Python's
    stdout is buffered (PYTHONUNBUFFERED), and a reader that closes the pipe
    early ends both programs quietly (exit 0, nothing on stderr)."""
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    replay = [sys.executable, "-m", "pit.cli", "--pit", str(world["pit"]), "replay", "transfers",
              "--from-start"]
    filt = [sys.executable, "-m", "filters.transfers"]
    entries = subprocess.run(replay, capture_output=True, env=env, check=True).stdout
    out = subprocess.run(filt, input=entries, capture_output=True, env=env, check=True).stdout
    expected = subprocess.run(filt, input=entries, capture_output=True, check=True,
                              env={**os.environ, "PYTHONUNBUFFERED": ""}).stdout
    assert entries.startswith(b"From notary ") and out == expected
    for argv, feed in ((replay, None), (filt, entries)):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        p.stdout.close()                  # the reader is gone before the first byte
        _, err = p.communicate(feed)
        assert p.returncode == 0 and err == b"", err.decode()


def test_rejects_lists_notary_refusals(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "rejects", "--json")
    reasons = [json.loads(l).get("reason", "") for l in out.splitlines()]
    assert code == 0 and any("replayed" in r for r in reasons)


def test_commands_leave_no_gpg_agent(world, capsys):
    """Signing, notarizing (a seal), verifying and auditing start gpg-agents
    in the pit's homes and the trader's; the command stops them."""
    from pit import agents
    code, _, err = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "11",
                                      "--ref", "agent1", "--notarize"))
    assert code == 0, err
    assert run(capsys, "--pit", world["pit"], "deposit", "1", "USD", "alice")[0] == 0
    assert run(capsys, "--pit", world["pit"], "verify", "3")[0] == 0
    assert not agents.running([world["base"]])


def test_audit(world, capsys):
    pytest.importorskip("pit.audit", reason="pit/audit.py is not there yet")
    code, out, _ = run(capsys, "--pit", world["pit"], "audit")
    assert code == 0, out
    assert "PASS" in out


# -- the console script and the daemon --------------------------------------------

def script(*argv, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([str(PIT_BIN), *map(str, argv)], capture_output=True, text=True, env=e)


def test_console_script_help_has_examples():
    p = script("order", "--help")
    assert p.returncode == 0 and "pit order buy 100 ACME at 12.50 --account alice" in p.stdout
    p = script("--help")
    assert p.returncode == 0 and "exit status" in p.stdout


def test_console_script_errors_are_one_line(world, tmp_path):
    p = script("--pit", tmp_path, "book", "ACME")
    assert p.returncode == 3 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    p = script("book")
    assert p.returncode == 2
    p = script("trades", env={"PIT_DIR": str(world["pit"])})
    assert p.returncode == 0 and "buyer alice" in p.stdout


def test_daemon_notarizes_and_runs(world, capsys, tmp_path):
    P = ["--pit", world["pit"]]
    assert run(capsys, *P, "start", "--interval", "0.2")[0] == 0
    try:
        code, _, err = run(capsys, *P, "start")
        assert code == 1 and "already running" in err
        code, out, _ = run(capsys, *alice(world, "order", "buy", "1", "ACME", "at", "12.00",
                                          "--ref", "d1"))
        assert code == 0 and "the daemon (pid" in out and "run pit notarize" not in out, out
        deadline = time.time() + 20
        while time.time() < deadline:
            code, out, _ = run(capsys, *P, "orders", "--account", "alice", "--json")
            if any(json.loads(l)["ref"] == "d1" for l in out.splitlines()):
                break
            time.sleep(0.3)
        else:
            pytest.fail("the daemon did not notarize the order")
    finally:
        code, out, _ = run(capsys, *P, "stop")
    assert code == 0 and "stopped" in out
    code, _, err = run(capsys, *P, "stop")
    assert code == 1 and "not running" in err


def test_a_pit_made_by_a_relative_path_is_run_from_any_directory(tmp_path):
    """pit init DIR with DIR relative (as the README types it), then
    operator commands from elsewhere (cron, another shell): the operator's
    key is the pit's, not a path relative to where pit init ran (which
    made a stray empty GnuPG home there and failed, exit 4)."""
    made, other = tmp_path / "made", tmp_path / "other"
    made.mkdir(), other.mkdir()

    def pit(*argv, cwd):
        return subprocess.run([str(PIT_BIN), *map(str, argv)], cwd=cwd, capture_output=True,
                              text=True, timeout=120)
    p = pit("init", "rel-pit", "--name", "rel", cwd=made)
    assert p.returncode == 0, p.stderr
    root = made / "rel-pit"
    try:
        p = pit("--pit", root, "currency", "add", "USD", "0.01", cwd=other)
        assert p.returncode == 0, p.stderr
        assert list(other.iterdir()) == [], "a stray GnuPG home was made where the command ran"
        p = pit("currency", "add", "EUR", "0.01", cwd=made / "rel-pit")
        assert p.returncode == 0, p.stderr
    finally:
        for home in ("operator.gnupg", "gnupg"):
            subprocess.run(["gpgconf", "--homedir", str(root / home), "--kill", "gpg-agent"])


def _started_daemon(capsys, P, pidfile) -> int:
    code, out, err = run(capsys, *P, "start", "--interval", "0.2")
    assert code == 0, err
    return int(pidfile.read_text())


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(status.split("SigCgt:")[1].split()[0], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_stop_after_the_daemon_died_says_it_was_not_running(world, capsys):
    """A daemon killed (or a machine rebooted) leaves pit.pid behind: pit
    stop says the daemon was not running, exit 1, and clears it."""
    P, pidfile = ["--pit", world["pit"]], world["pit"] / "pit.pid"
    pid = _started_daemon(capsys, P, pidfile)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    code, out, err = run(capsys, *P, "stop")
    assert (code, out) == (1, ""), out
    assert err == f"pit stop: the daemon is not running (pid {pid} of pit.pid has ended; " \
                  "pit.pid removed)\n", err
    assert not pidfile.exists()


def test_stop_never_signals_a_process_that_is_not_the_pits_daemon(world, capsys):
    """pit.pid left from before a reboot may name a pid some other program
    now has: pit stop leaves it alone and pit start starts a daemon."""
    P, pidfile = ["--pit", world["pit"]], world["pit"] / "pit.pid"
    other = subprocess.Popen(["sleep", "60"])
    try:
        pidfile.write_text(f"{other.pid}\n")
        code, out, err = run(capsys, *P, "stop")
        assert code == 1 and "not running" in err, (out, err)
        assert other.poll() is None, "pit stop signalled a process that is not its daemon"
        pidfile.write_text(f"{other.pid}\n")
        pid = _started_daemon(capsys, P, pidfile)
        assert pid != other.pid
        code, out, _ = run(capsys, *P, "stop")
        assert code == 0 and f"daemon stopped (pid {pid})" in out
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_stop_of_a_daemon_that_does_not_end_says_so_and_keeps_pit_pid(world, capsys,
                                                                     monkeypatch):
    """A daemon that has not ended when pit stop gives up waiting is still
    running: pit stop says so, exit 1, and pit.pid still names it (pit start
    does not start a second one)."""
    from pit.commands import daemon
    monkeypatch.setattr(daemon, "STOP_WAIT", 1.0)
    P, pidfile = ["--pit", world["pit"]], world["pit"] / "pit.pid"
    pid = _started_daemon(capsys, P, pidfile)
    deadline = time.time() + 20
    while not _catches_sigterm(pid):               # else SIGTERM kills it even stopped
        assert time.time() < deadline, "the daemon never set its SIGTERM handler"
        time.sleep(0.05)
    os.kill(pid, signal.SIGSTOP)                   # stuck: the SIGTERM waits
    try:
        code, out, err = run(capsys, *P, "stop")
        assert (code, out) == (1, ""), out
        assert err.startswith(f"pit stop: the daemon (pid {pid}) has not ended"), err
        assert pidfile.read_text().strip() == str(pid)
        code, _, err = run(capsys, *P, "start")
        assert code == 1 and "already running" in err
    finally:
        os.kill(pid, signal.SIGCONT)
    assert os.waitpid(pid, 0)[1] == 0              # the pending SIGTERM ends it
    pidfile.unlink()


@pytest.mark.skipif(shutil.which("mairix") is None, reason="needs mairix")
def test_search(world, capsys):
    code, out, _ = run(capsys, "--pit", world["pit"], "search", "--ticker", "ACME",
                       "--account", "alice")
    assert code == 0 and "order alice a1" in out
    code, out, err = run(capsys, "--pit", world["pit"], "search", "--account", "nobodyatall")
    assert code == 2 and out == "" and "unknown account nobodyatall" in err
    code, out, err = run(capsys, "--pit", world["pit"], "search", "--account", "bob", "--ref", "nosuchref")
    assert code == 1 and out == "" and err == "pit search: no record matches\n"
    code, _, err = run(capsys, "--pit", world["pit"], "search")
    assert code == 2 and "nothing to search for" in err


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_mirror(world, capsys, tmp_path):
    code, out, _ = run(capsys, "mirror", world["pit"], tmp_path / "copy")
    assert code == 0 and "identical to the source" in out
    assert (tmp_path / "copy" / "archives" / "index").exists()


def test_member_accounts_are_those_of_every_member_record(kit):
    """query.member_accounts searches the volumes for member records: the
    same set as reading every record's stamp, what it did before."""
    from pit import kinds, query
    plain = set()
    for _, st, _ in query.records(kit.pit):
        if st.get("x-pit-kind") == "member":
            plain.update(kinds.parse("member", st["x-pit-request"]).accounts)
    assert plain and query.member_accounts(kit.pit) == plain
