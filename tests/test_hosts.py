"""A pit across three hosts: network namespaces of the test's own on one machine.

Each host is a network namespace (tests/netns_harness.py) with its own
network stack, joined to A by a veth link whose addresses exist only inside
the namespaces; everything is removed at the end, also on failure or
interrupt.  The hosts share the machine's file system, but each uses only
its own directory, as separate machines would, and whatever crosses from
one host to another goes over the links (mail by SMTP, the archive by
rsync), except B's *public* key, which its operator hands to the pit's
operator.  The set-up is tests/hosts_harness.py's.

* Host A, the pit's host: Mailman 3, Postfix and the notary's LMTP server
  (``pit mailman serve``) for pit ``alpha``, set up as docs/mailman.md
  says (tests/postfix_harness.py), and an rsync daemon serving the archive
  folder read-only (``rsync://A/alpha``).
* Host B, a specialist on a host of its own: its key made there
  (``pit key new``; only the public key leaves B), registered by A's
  operator (``pit member add``); a replica of the archive kept fresh by
  ``pit mirror`` over rsync before each look (``pit mailman daemon
  --mirror rsync://A/alpha``); its output posted through B's own Postfix,
  which relays it to A's Postfix like any member's mail.
* Host C, a member's replica: ``pit mirror rsync://A/alpha`` and ``pit
  audit``.

Traders send signed orders to A's Postfix; the trades come back to their
mailboxes.  Mid-burst, B's daemon is killed and restarted, then B's link is
taken down while orders keep coming, and brought back.  At the end every
order is archived once and traded once, B's reports follow each other
without gap or overlap (the notary refuses a repeat), C's replica is the
source byte for byte and its audit passes.
"""

from __future__ import annotations

import shutil
import time

import pytest

from conftest import _stop_agents
from hosts_harness import FILTER, pit_on_three_hosts, wait_until
from mailman_harness import mailman_available
from netns_harness import Hosts, netns_available
from pit import mbox, ops
from postfix_harness import postfix_available, walkable_base, reports_of, sealed, seq_of

PAIRS = 8

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def three_hosts():
    """Hosts a, b, c (network namespaces) and a directory every user may
    enter (Postfix and the pits' user walk to their files; pytest's own
    temporary directories are root's alone); all removed afterwards."""
    base = walkable_base("pit-hosts-", mailman_available(), postfix_available(),
                         netns_available())
    try:
        with Hosts(["a", "b", "c"]) as hosts:
            yield hosts, base
    finally:
        _stop_agents(base)
        shutil.rmtree(base, ignore_errors=True)


def test_three_hosts_trade_survive_a_killed_and_a_cut_off_specialist_and_audit(three_hosts,
                                                                                  keyhome):
    hosts, base = three_hosts
    with pit_on_three_hosts(hosts, base, keyhome) as world:
        alpha, detail = world.alpha, world.detail
        proc = world.start_daemon()
        sells = []
        for n in range(PAIRS):
            if n == 3:              # killed once it has reported something
                wait_until("B's first report", lambda: reports_of(alpha, FILTER), detail=detail)
                proc.kill()
                proc.wait(30)
                proc = world.start_daemon()
            if n == 5:              # cut off from A while orders arrive
                hosts.set_link("a", "b", False)
            buy, sell = world.order_pair(f"b{n}")
            world.send(buy, "alice")
            world.send(sell, "bob")
            sells.append(sell)
            if n == 6:
                wait_until("the orders while B is away", lambda: seq_of(alpha, sell),
                           detail=detail)
                # the cut is real: B cannot reach A's archive meanwhile
                probe = hosts.run("b", ["rsync", "--contimeout=10",
                                        f"rsync://{world.a_to_b}/alpha/"], timeout=120)
                assert probe.returncode != 0, (probe.stdout, probe.stderr, detail())
                time.sleep(3)       # B retries its source and its mail meanwhile
                hosts.set_link("a", "b", True)
            time.sleep(0.3)
        last = wait_until("the last sell archived", lambda: seq_of(alpha, sells[-1]),
                          detail=detail)
        wait_until("B's checkpoint of the last order",
                   lambda: (ops.filter_position(alpha.pit, FILTER)[0] or (0, 0))[1] >= last,
                   timeout=300, detail=detail)
        proc.terminate()
        proc.wait(30)
        wait_until("B's mail queue empty", world.b_postfix.queue_empty, detail=detail)

        # Exactly once: B's reports follow each other, signed by B's own key,
        # every pair traded once, each order archived once.
        spans = reports_of(alpha, FILTER)
        assert {signer for _, _, signer, _ in spans} == {world.fpr}, detail()
        for prev, this in zip(spans, spans[1:]):
            assert this[0] == prev[1] + 1, f"reports {prev[:2]} and {this[:2]} leave a gap or overlap"
        lines = [ln for *_, ls in spans for ln in ls]
        for n in range(PAIRS):
            trades = [ln for ln in lines if f"buyer alice b{n} seller bob b{n} " in ln]
            assert len(trades) == 1, (n, trades)
        for raw in sells:
            mid = b"\nMessage-ID: " + mbox.headers(raw, ["message-id"])["message-id"].encode() + b"\n"
            assert sum(mid in m for _, m in alpha.records()) == 1
        # The trades reach both traders' mailboxes.
        for who in ("alice", "bob"):
            wait_until(f"the last trade in {who}'s mailbox",
                       lambda: world.has_trade(who, f"buyer alice b{PAIRS - 1} seller bob"),
                       detail=detail)

        # Host C: a member's replica over rsync; A's archive byte for byte; audited.
        wait_until("a sealed tail", lambda: sealed(alpha), detail=detail)
        copy = base / "c" / "alpha"
        done = world.pit_on("c", "mirror", f"rsync://{world.a_to_c}/alpha", str(copy))
        assert done.returncode == 0 and "is identical to the source" in done.stdout, \
            done.stdout + done.stderr
        archive = alpha.root / "archives"
        for path in sorted(archive.glob("[0-9]*.mbox")) + [archive / "index"]:
            assert (copy / "archives" / path.name).read_bytes() == path.read_bytes(), path.name
        audited = world.pit_on("c", "audit", str(copy))
        assert audited.returncode == 0, audited.stdout + audited.stderr
