"""Pits behind a real Postfix, configured as docs/mailman.md tells an operator.

One Postfix instance of the test's own (tests/postfix_harness.py), with
``pit mailman postfix-config``'s maps and master.cf lines, in front of a
real Mailman 3 (writing its own Postfix maps) and ``pit mailman serve``
for two pits.  The pits' files belong to an unprivileged user, as in
production: the notary server and the filters run as ``nobody``, the
filters as ``pit mailman daemon`` processes woken by the archive's commits
(``postfix-config --filters daemon``, as the production set-up of
docs/mailman.md has them; Postfix's ``pipe`` for the filters is covered by
tests/test_hosts.py).  Traders are on another domain, which Postfix relays
to the test's sink; local users keep their mailboxes.

Checked: local mail is still delivered (and an unknown local user still
refused); signed orders sent to Postfix come back to both traders as a
trade, through the notary, Mailman and the specialist; a trade does not wait
for the list (it is archived while Mailman delivers nothing); a forged order is
refused by mail; nothing bounces and no member's bounce score moves; the
list has the pit's bounce policy; the audit passes.  A specialist on a
host of its own, and a member's replica on a third: tests/test_hosts.py.
"""

from __future__ import annotations

import shutil
import smtplib
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import _stop_agents, Kit
from mailman_harness import mailman_available, paused_runner
from mailman_harness import wait_until as harness_wait_until
from pit import mbox, ops, testkeys
from pit.audit import audit
from pit.mailman import PIT_LIST_SETTINGS
from postfix_harness import (MailHost, pits_on_postfix, postfix_available, sealed,
                             walkable_base)

DOMAIN = "pits.test"
WAIT = 90.0

pytestmark = [pytest.mark.e2e]


def addr(who: str) -> str:
    return f"{who}@{testkeys.DOMAIN}"


@dataclass
class World:
    host: MailHost
    alpha: Kit
    beta: Kit

    @property
    def postfix(self):
        return self.host.postfix

    @property
    def mailman(self):
        return self.host.mailman

    @property
    def client(self):
        return self.host.client

    def send(self, raw: bytes, sender: str, rcpt: str) -> None:
        self.host.send(raw, sender, rcpt)


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
def world(keyhome):
    base = walkable_base("pit-postfix-", mailman_available(), postfix_available())
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
        _stop_agents(pits)
        # the traders' own domain: relayed to the test's sink, as the
        # Internet would carry it (the sink is Mailman harness's)
        with pits_on_postfix(base, [alpha.root, beta.root], DOMAIN,
                             sink_domains=(testkeys.DOMAIN, "hostb.test"),
                             filters="daemon") as host:
            yield World(host, alpha, beta)
    finally:
        _stop_agents(base)
        shutil.rmtree(base, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------

def wait_until(what: str, predicate, timeout: float = WAIT, world: World | None = None):
    """mailman_harness.wait_until, a failure saying what Postfix and the pits did."""
    return harness_wait_until(what, predicate, timeout, detail=lambda: (
        f"--- maillog\n{world.postfix.log_text()}\n{refusals(world)}" if world else ""))


def refusals(world: World) -> str:
    """What each pit refused and why (its reject records), for a failure's message."""
    out = []
    for kit in (world.alpha, world.beta):
        for raw in kit.rejects():
            h = mbox.headers(raw, ["x-pit-rejected", "from", "subject", "message-id"])
            out.append(f"{kit.pit.name}: {h.get('x-pit-rejected', '?')} "
                       f"[from {h.get('from', '?')}, {h.get('subject', '')}]")
    notary_log = world.host.base / "notary.log"
    tail = notary_log.read_text(errors="replace")[-3000:] if notary_log.exists() else ""
    return ("--- refused\n" + ("\n".join(out) if out else "(nothing)")
            + f"\n--- the notary's log\n{tail}")


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


def test_a_trade_does_not_wait_for_the_list(world):
    """The specialist runs when the order is archived, not when Mailman's
    list copy reaches it: with Mailman's outgoing runner stopped (it takes
    posts and delivers nothing, as when it is busy with a burst's copies)
    the trade is still archived; the mailboxes get it once the list moves."""
    alpha = world.alpha
    buy = alpha.request("alice", "q1", "Order", "buy 3 ACME at 12.00", pit="alpha")
    sell = alpha.request("bob", "q1", "Order", "sell 3 ACME at 12.00", pit="alpha")
    trade = b"buyer alice q1 seller bob q1"
    with paused_runner(world.mailman, "out"):
        world.send(buy, addr("alice"), f"alpha@{DOMAIN}")
        world.send(sell, addr("bob"), f"alpha@{DOMAIN}")
        wait_until("the trade in the archive while Mailman delivers nothing",
                   lambda: any(trade in m for _, m in alpha.records()), world=world)
        assert not has_trade(world, "alice", trade.decode())
    for who in ("alice", "bob"):
        wait_until(f"the trade in {who}'s mailbox", lambda: has_trade(world, who, trade.decode()),
                   world=world)


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
                                                   "1.00 USD to operator"),
                         pit_address=f"beta@{DOMAIN}"), addr("carol"), f"beta@{DOMAIN}")
    wait_until("beta's list copy to carol",
               lambda: any(b"X-Pit-Seq: " in m and b"Transfer: 1.00 USD to operator" in m
                           for m in world.mailman.sink.messages(addr("carol"))), world=world)
    wait_until("an empty Postfix queue", world.postfix.queue_empty, world=world)
    # the pits refused nothing but the forged order (a filter's post refused
    # would mean two runs of one filter raced)
    reasons = [mbox.headers(r, ["x-pit-rejected"]).get("x-pit-rejected", "")
               for kit in (alpha, beta) for r in kit.rejects()]
    assert all(r.startswith("bad signature") for r in reasons), refusals(world)
    log = world.postfix.log_text(10 ** 7)
    assert "status=bounced" not in log and "status=deferred" not in log, \
        f"{log[-4000:]}\n{refusals(world)}"
    refused = [line for line in log.splitlines()
               if ": reject: " in line and "no-such-user@localhost" not in line]
    assert not refused, f"{refused}\n{refusals(world)}"
    for kit in (alpha, beta):
        list_id = f"{kit.pit.name}.{DOMAIN}"
        scores = members_bounce_scores(world, list_id)
        assert scores and all(not score for score in scores.values()), scores
        config = world.client.get(f"lists/{list_id}/config")
        for name in ("process_bounces", "bounce_score_threshold", "bounce_info_stale_after",
                     "bounce_you_are_disabled_warnings", "forward_unrecognized_bounces_to"):
            assert config[name] == PIT_LIST_SETTINGS[name], name
    wait_until("a sealed tail", lambda: sealed(alpha), world=world)
    result = audit(alpha.root)
    assert result.ok, result.summary()


def test_a_post_leaves_no_work_for_mailmans_archive_runner(world):
    """The pit's archive is the record and Mailman's archivers are off, so a
    post is not even queued for Mailman's archive runner, which would only
    read it back to drop it (~6 ms of CPU a list copy: docs/pit-book.md,
    "Order to trade through Postfix and Mailman").  With that runner
    stopped, its queue stays empty while a signed order reaches the members.
    (Last in the module: the order rests in alpha's book.)"""
    alpha = world.alpha
    order = alpha.request("alice", "n1", "Order", "buy 1 ACME at 1.00", pit="alpha")
    mid = mbox.headers(order, ["message-id"])["message-id"].encode()
    queue = world.mailman.root / "var" / "queue" / "archive"
    with paused_runner(world.mailman, "archive"):
        world.send(order, addr("alice"), f"alpha@{DOMAIN}")
        wait_until("the order's list copy in bob's mailbox",
                   lambda: any(mid in m and b"X-Pit-Seq: " in m
                               for m in world.mailman.sink.messages(addr("bob"))), world=world)
        assert sorted(p.name for p in queue.iterdir()) == []
