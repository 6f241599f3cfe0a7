"""A pit across three hosts: network namespaces of the test's own on one machine.

Each host is a network namespace (tests/netns_harness.py) with its own
network stack, joined to A by a veth link whose addresses exist only inside
the namespaces; everything is removed at the end, also on failure or
interrupt.  The hosts share the machine's file system, as separate
machines would share nothing: each uses only its own directory, and
whatever crosses from one host to another goes over the links (mail by
SMTP, the archive by rsync), except B's *public* key, which its operator
hands to the pit's operator.

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

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import _HOMES, _stop_agents, Kit
from mailman_harness import mailman_available
from netns_harness import Hosts, netns_available
from pit import mbox, ops, testkeys
from postfix_harness import (PIT_USER, pit_command, pits_on_postfix, postfix_available,
                             reports_of, running_postfix, sealed, seq_of)

DOMAIN = "pits.test"
WAIT = 120.0
REPO = Path(__file__).resolve().parent.parent
PAIRS = 8

pytestmark = [pytest.mark.e2e]


def addr(who: str) -> str:
    return f"{who}@{testkeys.DOMAIN}"


def wait_until(what: str, predicate, timeout: float = WAIT, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
        time.sleep(0.1)


def _pit_on(hosts: Hosts, host: str, *words: str) -> subprocess.CompletedProcess:
    """``pit WORDS`` run on ``host`` (its network namespace)."""
    return hosts.run(host, [sys.executable, "-m", "pit.cli", *words], cwd=REPO)


RSYNCD_CONF = """\
use chroot = no
pid file = {base}/rsyncd.pid
log file = {base}/rsyncd.log
[alpha]
    path = {archive}
    read only = yes
    uid = {user}
    gid = nogroup
"""


@pytest.fixture
def three_hosts():
    """Hosts a, b, c (network namespaces) and a directory every user may
    enter (Postfix and the pits' user walk to their files; pytest's own
    temporary directories are root's alone); all removed afterwards."""
    for reason in (mailman_available(), postfix_available(), netns_available()):
        if reason:
            pytest.skip(reason)
    try:
        pit_command()
    except RuntimeError as error:
        pytest.skip(str(error))
    base = Path(tempfile.mkdtemp(prefix="pit-hosts-"))
    os.chmod(base, 0o755)
    _HOMES.append(base)
    try:
        with Hosts(["a", "b", "c"]) as hosts:
            yield hosts, base
    finally:
        _stop_agents(base)
        shutil.rmtree(base, ignore_errors=True)


def test_three_hosts_trade_survive_a_killed_and_a_cut_off_specialist_and_audit(three_hosts,
                                                                                  keyhome):
    hosts, base = three_hosts
    _three_hosts(hosts, base, keyhome)


def _three_hosts(hosts: Hosts, base: Path, keyhome: Path) -> None:
    a_to_b, b_addr = hosts.link("a", "b")
    a_to_c, _ = hosts.link("a", "c")
    hosta, hostb, hostc = base / "a", base / "b", base / "c"
    for d in (hosta, hostb, hostc):
        d.mkdir()
        os.chmod(d, 0o755)

    # -- host A: the pit, as its operator builds it -------------------------------
    root = hosta / "pits" / "alpha"
    pit = ops.init(root, "alpha", domain=DOMAIN)
    for key, value in (("Currency", "USD 0.01"),):
        assert ops.operator_request(pit, key, value).accepted
    meta = testkeys._meta(keyhome)
    for who in ("alice", "bob"):
        assert ops.add_member(pit, meta[who]["public"], [who])[1].accepted
    alpha = Kit(root, keyhome)
    _stop_agents(hosta)

    # -- host B makes its key; only the public key leaves B -----------------------
    home = hostb / "gnupg"
    made = _pit_on(hosts, "b", "key", "new", "specialist BRAVO", "bravo@hostb.test",
                   "--gnupghome", str(home))
    assert made.returncode == 0, made.stderr
    fpr = made.stdout.split()[-1]
    public = _pit_on(hosts, "b", "key", "export", fpr, "--gnupghome", str(home))
    assert public.returncode == 0 and "PRIVATE" not in public.stdout
    handed = hosta / "bravo.asc"            # what B's operator hands to A's operator
    handed.write_text(public.stdout)
    os.chmod(handed, 0o644)

    with hosts.inside("a"), pits_on_postfix(hosta, [root], DOMAIN,
                                            sink_domains=(testkeys.DOMAIN, "hostb.test"),
                                            addresses=("127.0.0.1", a_to_b, a_to_c)) as host:
        def detail() -> str:
            refused = [mbox.headers(r, ["x-pit-rejected"]).get("x-pit-rejected", "")
                       for r in alpha.rejects()]
            logb = hostb / "daemon.log"
            return (f"--- refused\n{refused[-10:]}\n--- B's daemon\n"
                    f"{logb.read_text()[-3000:] if logb.exists() else ''}\n"
                    f"--- A's maillog\n{host.postfix.log_text(3000)}")

        # The operator, on A: instrument, B's key as its specialist, a deposit.
        for words in (["instrument", "add", "BRAVO", "USD", "--tick", "0.01", "--lot", "1"],
                      ["member", "add", str(handed), "--accounts", "specialist:BRAVO"],
                      ["deposit", "100000.00", "USD", "alice"],
                      ["deposit", "1000", "BRAVO", "bob"]):
            done = host.as_pit_user("--pit", str(root), *words)
            assert done.returncode == 0, (words, done.stderr)
        funding = [alpha.request("alice", "fb", "Transfer", "5000.00 USD to alice:BRAVO", pit="alpha"),
                   alpha.request("bob", "fb", "Transfer", "1000 BRAVO to bob:BRAVO", pit="alpha")]
        for raw, who in zip(funding, ("alice", "bob")):
            host.send(raw, addr(who), f"alpha@{DOMAIN}")
        wait_until("the funding transfers", lambda: all(seq_of(alpha, r) for r in funding),
                   detail=detail)
        last_funding = max(seq_of(alpha, r) for r in funding)
        wait_until("the transfers filter's report of them",
                   lambda: (ops.filter_position(alpha.pit, "transfers")[0] or (0, 0))[1]
                   >= last_funding, detail=detail)

        # A serves its archive folder (only) read-only over rsync.
        conf = hosta / "rsyncd.conf"
        conf.write_text(RSYNCD_CONF.format(base=hosta, archive=root / "archives", user=PIT_USER))
        rsyncd = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        procs = [rsyncd]
        try:
            _b_and_c(hosts, host, alpha, base, fpr, a_to_b, a_to_c, b_addr, procs, detail)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _b_and_c(hosts, host, alpha, base, fpr, a_to_b, a_to_c, b_addr, procs, detail) -> None:
    hostb, hostc = base / "b", base / "c"
    home, replica = hostb / "gnupg", hostb / "alpha"
    source = f"rsync://{a_to_b}/alpha"
    wait_until("a sealed tail", lambda: sealed(alpha), detail=detail)   # pit mirror checks the log
    done = _pit_on(hosts, "b", "mirror", source, str(replica))
    assert done.returncode == 0, done.stdout + done.stderr

    # B's own Postfix: loopback for B's programs, its link for A; mail for
    # the pit's domain goes to A's Postfix.
    etc_b = hostb / "postfix" / "etc"
    etc_b.mkdir(parents=True)
    (etc_b / "transport").write_text(f"{DOMAIN} smtp:[{a_to_b}]:{host.postfix.smtp_port}\n")
    with contextlib.ExitStack() as stack:
        with hosts.inside("b"):             # started there; the test goes on from A
            pfb = stack.enter_context(running_postfix(
                hostb / "postfix", 25, addresses=("127.0.0.1", b_addr),
                hostname="mail.hostb.test", maps=("transport",),
                main_extra=f"transport_maps = hash:{etc_b}/transport\n"))
        log = hostb / "daemon.log"

        def daemon_b():
            with open(log, "ab") as out:
                proc = hosts.popen("b", [
                    sys.executable, "-m", "pit.cli", "--pit", str(replica), "mailman", "daemon",
                    "specialist", "BRAVO", "--mirror", source, "--smtp", "127.0.0.1:25",
                    "--to", f"alpha@{DOMAIN}", "--from", "bravo@hostb.test",
                    "--gnupghome", str(home), "--key", fpr, "--poll", "0.2", "--wait", "20"],
                    cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
            procs.append(proc)
            return proc

        proc = daemon_b()
        sells = []
        for n in range(PAIRS):
            if n == 3:              # killed once it has reported something
                wait_until("B's first report", lambda: reports_of(alpha, "specialist BRAVO"),
                           detail=detail)
                proc.kill()
                proc.wait(30)
                proc = daemon_b()
            if n == 5:              # cut off from A while orders arrive
                hosts.set_link("a", "b", False)
            buy = alpha.request("alice", f"b{n}", "Order", "buy 1 BRAVO at 10.00", pit="alpha")
            sell = alpha.request("bob", f"b{n}", "Order", "sell 1 BRAVO at 10.00", pit="alpha")
            host.send(buy, addr("alice"), f"alpha@{DOMAIN}")
            host.send(sell, addr("bob"), f"alpha@{DOMAIN}")
            sells.append(sell)
            if n == 6:
                wait_until("the orders while B is away", lambda: seq_of(alpha, sell),
                           detail=detail)
                time.sleep(3)       # B retries its source and its mail meanwhile
                hosts.set_link("a", "b", True)
            time.sleep(0.3)
        last = wait_until("the last sell archived", lambda: seq_of(alpha, sells[-1]),
                          detail=detail)
        wait_until("B's checkpoint of the last order",
                   lambda: (ops.filter_position(alpha.pit, "specialist BRAVO")[0]
                            or (0, 0))[1] >= last, timeout=300, detail=detail)
        proc.terminate()
        proc.wait(30)
        wait_until("B's mail queue empty", pfb.queue_empty, detail=detail)
        # B did lose A meanwhile: its looks at the source failed, and were retried
        assert "unreachable" in log.read_text(errors="replace"), detail()

    # Exactly once: B's reports follow each other, signed by B's own key, and
    # every pair traded once; each order archived once.
    spans = reports_of(alpha, "specialist BRAVO")
    assert {signer for _, _, signer, _ in spans} == {fpr}, detail()
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
        wait_until(f"the last trade in {who}'s mailbox", lambda: any(
            b"X-Pit-Kind: report" in m and f"buyer alice b{PAIRS - 1} seller bob".encode() in m
            for m in host.mailman.sink.messages(addr(who))), detail=detail)

    # Host C: a member's replica over rsync; identical to A's archive; audited.
    wait_until("a sealed tail", lambda: sealed(alpha), detail=detail)
    copy = hostc / "alpha"
    done = _pit_on(hosts, "c", "mirror", f"rsync://{a_to_c}/alpha", str(copy))
    assert done.returncode == 0 and "is identical to the source" in done.stdout, \
        done.stdout + done.stderr
    for path in sorted((alpha.root / "archives").glob("[0-9]*.mbox")) + [alpha.root / "archives" / "index"]:
        assert (copy / "archives" / path.name).read_bytes() == path.read_bytes(), path.name
    audited = _pit_on(hosts, "c", "audit", str(copy))
    assert audited.returncode == 0, audited.stdout + audited.stderr
