"""Pits behind a real Postfix, configured as docs/mailman.md tells an operator.

One Postfix instance of the test's own (tests/postfix_harness.py), with
``pit mailman postfix-config``'s maps and master.cf lines, in front of a
real Mailman 3 (writing its own Postfix maps) and ``pit mailman serve``
for two pits.  The pits' files belong to an unprivileged user, as in
production: the notary server and the filters (Postfix's ``pipe``) run as
``nobody``.  Traders are on another domain, which Postfix relays to the
test's sink; local users keep their mailboxes.

Checked: local mail is still delivered (and an unknown local user still
refused); signed orders sent to Postfix come back to both traders as a
trade, through the notary, Mailman and the specialist; a forged order is
refused by mail; nothing bounces and no member's bounce score moves; the
list has the pit's bounce policy; the audit passes.
"""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import _HOMES, _stop_agents, Kit
from mailman_harness import mailman_available, running_mailman
from pit import mbox, ops, testkeys
from pit.audit import audit
from pit.mailhost import free_port
from pit.mailman import PIT_LIST_SETTINGS, MailmanClient, provision_local_pit
from postfix_harness import postfix_available, running_postfix

DOMAIN = "pits.test"
WAIT = 90.0
REPO = Path(__file__).resolve().parent.parent
USER = "nobody"
AS_USER = ["runuser", "-u", USER, "--"]

pytestmark = [pytest.mark.e2e]


def addr(who: str) -> str:
    return f"{who}@{testkeys.DOMAIN}"


@dataclass
class World:
    base: Path
    alpha: Kit
    beta: Kit
    mailman: object
    postfix: object
    client: MailmanClient
    notary_port: int

    def send(self, raw: bytes, sender: str, rcpt: str) -> None:
        """A trader's mail client: SMTP to the pits' mail host."""
        with smtplib.SMTP("127.0.0.1", self.postfix.smtp_port, timeout=30) as smtp:
            smtp.sendmail(sender, [rcpt], raw.replace(b"\n", b"\r\n"))


def _build(base: Path, keyhome: Path, name: str, members: dict, setup) -> Kit:
    root = base / name
    pit = ops.init(root, name, domain=DOMAIN)
    for key, value in setup:
        assert ops.operator_request(pit, key, value).accepted, (key, value)
    meta = testkeys._meta(keyhome)
    for who, accounts in members.items():
        assert ops.add_member(pit, meta[who]["public"], accounts)[1].accepted
    return Kit(root, keyhome)


def _chown(path: Path, user: str) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        shutil.chown(dirpath, user, "nogroup")
        for name in filenames:
            os.lchown(os.path.join(dirpath, name), *_ids(user))


def _ids(user: str) -> tuple[int, int]:
    import pwd
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _pit_command() -> list[str]:
    """How the pits' user runs ``pit``: the venv's program if that user may
    run it; else this Python's packages under the system's interpreter of
    the same version (a venv made from an interpreter in root's home is
    root's alone)."""
    venv_pit = [str(Path(sys.executable).with_name("pit"))]
    import sysconfig
    system_python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    paths = f"PYTHONPATH={REPO}:{sysconfig.get_paths()['purelib']}"
    for command in (venv_pit, ["/usr/bin/env", paths, system_python, "-m", "pit.cli"]):
        ok = subprocess.run(AS_USER + command + ["--help"], capture_output=True, timeout=60)
        if ok.returncode == 0:
            return command
    pytest.skip(f"user {USER} can run neither {venv_pit[0]} nor {system_python}")


def _wait_for_line(path: Path, text: str, count: int, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text(errors="replace").count(text) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{text!r} not seen:\n{path.read_text(errors='replace')}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def world(keyhome):
    for reason in (mailman_available(), postfix_available()):
        if reason:
            pytest.skip(reason)
    # Postfix and the pits' user must be able to walk to their files:
    # pytest's own temporary directories are root's alone.
    base = Path(tempfile.mkdtemp(prefix="pit-postfix-"))
    os.chmod(base, 0o755)
    _HOMES.append(base)
    notary = None
    try:
        pits = base / "pits"
        alpha = _build(pits, keyhome, "alpha", {"alice": ["alice"], "bob": ["bob"]},
                       [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")])
        for value in ("100000.00 USD to alice", "10000 ACME to bob"):
            assert ops.operator_request(alpha.pit, "Deposit", value).accepted
        for who, value in (("alice", "50000.00 USD to alice:ACME"), ("bob", "5000 ACME to bob:ACME")):
            ops.send_local(alpha.pit, alpha.request(who, "fund", "Transfer", value, pit="alpha"))
        assert all(d.accepted for d in ops.notary(alpha.pit).run_maildir())
        ops.run_filter(alpha.pit, "transfers", [])
        beta = _build(pits, keyhome, "beta", {"carol": ["carol"]}, [("Currency", "USD 0.01")])

        smtp_port, notary_port = free_port(), free_port()
        while notary_port == smtp_port:
            notary_port = free_port()
        with running_mailman(base / "mailman", smtp_port=smtp_port, postfix=True) as mailman:
            client = MailmanClient(mailman.rest_url, mailman.rest_user, mailman.rest_password)
            for kit in (alpha, beta):
                provision_local_pit(client, kit.root, DOMAIN)
            _stop_agents(pits)
            _chown(pits, USER)
            etc = base / "postfix" / "etc"
            pit_command = _pit_command()
            out = subprocess.run(
                [sys.executable, "-m", "pit.cli", "mailman", "postfix-config",
                 str(alpha.root), str(beta.root),
                 "--notary", f"127.0.0.1:{notary_port}",
                 "--mailman-data", str(mailman.root / "var" / "data"),
                 "--config-dir", str(etc), "--user", USER, "--pit-command", " ".join(pit_command),
                 "--out", str(etc)], capture_output=True, text=True, cwd=REPO, timeout=120)
            assert out.returncode == 0, out.stderr
            # The traders' own domain: relayed to the test's sink, as the
            # Internet would carry it.
            (etc / "test_transport").write_text(f"{testkeys.DOMAIN} smtp:[127.0.0.1]:{mailman.sink.port}\n")
            main = (etc / "main.cf.pit").read_text()
            main += f"transport_maps = $transport_maps_pit, hash:{etc}/test_transport\n"
            main = main.replace("transport_maps = hash:", "transport_maps_pit = hash:", 1)
            with running_postfix(base / "postfix", smtp_port, main_extra=main,
                                 master_extra=(etc / "master.cf.pit").read_text(),
                                 maps=("pit_transport", "pit_domains", "test_transport")) as postfix:
                log = open(base / "notary.log", "wb")
                notary = subprocess.Popen(
                    AS_USER + pit_command + ["mailman", "serve", str(alpha.root), str(beta.root),
                               "--listen", f"127.0.0.1:{notary_port}",
                               "--mailman", f"127.0.0.1:{mailman.lmtp_port}",
                               "--smtp", f"127.0.0.1:{smtp_port}"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=base,
                    env={**os.environ, "HOME": "/nonexistent"}, start_new_session=True)
                log.close()
                _wait_for_line(base / "notary.log", "notary for", 2, notary)
                yield World(base, alpha, beta, mailman, postfix, client, notary_port)
                notary.send_signal(signal.SIGTERM)
                notary.wait(60)
    finally:
        if notary is not None and notary.poll() is None:
            os.killpg(notary.pid, signal.SIGKILL)
            notary.wait()
        _stop_agents(base)
        shutil.rmtree(base, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------

def wait_until(what: str, predicate, timeout: float = WAIT, world: World | None = None):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            detail = f"\n--- maillog\n{world.postfix.log_text()}" if world else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(0.1)


def has_trade(world: World, who: str, line_part: str):
    for msg in world.mailman.sink.messages(addr(who)):
        if b"X-Pit-Kind: report" in msg and line_part.encode() in msg:
            return msg
    return None


def members_bounce_scores(world: World, list_id: str) -> dict[str, object]:
    roster = world.client.get(f"lists/{list_id}/roster/member") or {}
    return {e["email"]: e.get("bounce_score") for e in roster.get("entries", [])}


# -- the tests -------------------------------------------------------------------

def test_local_mailboxes_still_receive_and_unknown_users_are_refused(world):
    with smtplib.SMTP("127.0.0.1", world.postfix.smtp_port, timeout=30) as smtp:
        smtp.sendmail("someone@local.test", ["nobody@localhost"],
                      b"Subject: local mail\r\n\r\nfor a local mailbox\r\n")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("someone@local.test", ["no-such-user@localhost"], b"Subject: x\r\n\r\nx\r\n")
    assert refused.value.recipients["no-such-user@localhost"][0] == 550
    wait_until("local delivery", lambda: b"for a local mailbox" in world.postfix.mailbox("nobody"),
               world=world)


def test_an_order_through_postfix_becomes_a_trade_in_both_mailboxes(world):
    alpha = world.alpha
    buy = alpha.request("alice", "p1", "Order", "buy 10 ACME at 12.50", pit="alpha")
    sell = alpha.request("bob", "p1", "Order", "sell 10 ACME at 12.50", pit="alpha")
    world.send(buy, addr("alice"), f"alpha@{DOMAIN}")
    world.send(sell, addr("bob"), f"alpha@{DOMAIN}")
    trade = "buyer alice p1 seller bob p1"
    for who in ("alice", "bob"):
        got = wait_until(f"the trade in {who}'s mailbox", lambda: has_trade(world, who, trade),
                         world=world)
        assert b"10 at 12.50 USD" in got
    # Each order archived once (Postfix adds its Received: lines, so the
    # archived bytes are the MTA's, not the client's: found by Message-ID).
    for raw in (buy, sell):
        mid = b"\nMessage-ID: " + mbox.headers(raw, ["message-id"])["message-id"].encode() + b"\n"
        assert sum(mid in m for _, m in alpha.records()) == 1


def test_a_forged_order_is_refused_by_mail(world):
    alpha = world.alpha
    signed_order = alpha.request("alice", "f1", "Order", "buy 5 ACME at 10.00", pit="alpha")
    forged = signed_order.replace(b"buy 5 ACME", b"buy 9 ACME")
    world.send(forged, addr("alice"), f"alpha@{DOMAIN}")
    mid = mbox.headers(forged, ["message-id"])["message-id"].encode()
    wait_until("the notice", lambda: any(b"Rejected: " in m and mid in m
                                         for m in world.mailman.sink.messages(addr("alice"))),
               world=world)


def test_nothing_bounces_and_the_list_has_the_bounce_policy(world):
    alpha, beta = world.alpha, world.beta
    # a message for the other pit too, through the same notary server
    world.send(beta.sign("carol", ops.request_text(beta.pit, "carol", "b1", "Transfer",
                                                   "1.00 USD to carol:spare"),
                         pit_address=f"beta@{DOMAIN}"), addr("carol"), f"beta@{DOMAIN}")
    wait_until("beta's list copy to carol",
               lambda: any(b"X-Pit-Seq: " in m and b"carol:spare" in m
                           for m in world.mailman.sink.messages(addr("carol"))), world=world)
    wait_until("an empty Postfix queue", world.postfix.queue_empty, world=world)
    log = world.postfix.log_text(10 ** 7)
    assert "status=bounced" not in log and "status=deferred" not in log, log[-4000:]
    refused = [line for line in log.splitlines()
               if ": reject: " in line and "no-such-user@localhost" not in line]
    assert not refused, refused
    for kit in (alpha, beta):
        list_id = f"{kit.pit.name}.{DOMAIN}"
        scores = members_bounce_scores(world, list_id)
        assert scores and all(not score for score in scores.values()), scores
        config = world.client.get(f"lists/{list_id}/config")
        for name in ("process_bounces", "bounce_score_threshold", "bounce_info_stale_after",
                     "bounce_you_are_disabled_warnings", "forward_unrecognized_bounces_to"):
            assert config[name] == PIT_LIST_SETTINGS[name], name
    result = audit(alpha.root)
    assert result.ok, result.summary()
