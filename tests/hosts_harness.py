"""A pit on three hosts (network namespaces), for tests/test_hosts.py and bench.hosts.

``pit_on_three_hosts(hosts, base, keyhome)`` sets up, as docs/mailman.md
("Across hosts") tells the operators of each host:

* host A: pit ``alpha`` (members alice and bob from ``keyhome``) on
  Mailman, Postfix and ``pit mailman serve`` (tests/postfix_harness.py),
  Postfix listening on A's links too; an rsync daemon serving the archive
  folder read only (``rsync://A/alpha``);
* host B: its key made there (``pit key new``), handed to A's operator as a
  public key and registered (``pit member add --accounts
  specialist:BRAVO``) after ``pit instrument add BRAVO``; a replica
  (``pit mirror rsync://A/alpha``); its own Postfix relaying the pit's
  domain to A's;
* alice and bob funded for BRAVO (deposits by the operator, transfers by
  mail, settled by A's transfers filter).

It yields a :class:`ThreeHostPit`; ``start_daemon()`` starts B's
``pit mailman daemon`` (``--mirror``, ``--smtp`` B's Postfix) in B.  On
exit B's daemons, B's Postfix, the rsync daemon and A's services stop.
Host C is the caller's (``mirror_on``, ``pit_on``).  ``hosts`` must hold
hosts ``a``, ``b``, ``c``; ``base`` must be a directory every user may enter.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from conftest import Kit, _stop_agents
from mailman_harness import wait_until  # noqa: F401  (bench.hosts takes it from here)
from netns_harness import Hosts
from pit import mbox, ops, testkeys
from postfix_harness import PIT_USER, MailHost, pits_on_postfix, running_postfix, sealed, seq_of

DOMAIN = "pits.test"
REPO = Path(__file__).resolve().parent.parent
TICKER = "BRAVO"
FILTER = f"specialist {TICKER}"

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


def addr(who: str) -> str:
    """A trader's mailbox (relayed by A's Postfix to the harness's sink)."""
    return f"{who}@{testkeys.DOMAIN}"




@dataclass
class ThreeHostPit:
    hosts: Hosts
    base: Path
    host: MailHost                 # A's Mailman, Postfix, notary
    alpha: Kit
    fpr: str                       # B's key
    a_to_b: str                    # A's address on its link to B
    a_to_c: str                    # A's address on its link to C
    b_postfix: object
    procs: list = field(default_factory=list)

    @property
    def hostb(self) -> Path:
        return self.base / "b"

    @property
    def daemon_log(self) -> Path:
        return self.hostb / "daemon.log"

    def pit_on(self, host: str, *words: str) -> subprocess.CompletedProcess:
        """``pit WORDS`` run on ``host`` (its network namespace)."""
        return self.hosts.run(host, [sys.executable, "-m", "pit.cli", *words], cwd=REPO)

    def start_daemon(self) -> subprocess.Popen:
        """B's specialist: ``pit mailman daemon`` on B's replica, in B."""
        with open(self.daemon_log, "ab") as out:
            proc = self.hosts.popen("b", [
                sys.executable, "-m", "pit.cli", "--pit", str(self.hostb / "alpha"),
                "mailman", "daemon", "specialist", TICKER,
                "--mirror", f"rsync://{self.a_to_b}/alpha", "--smtp", "127.0.0.1:25",
                "--to", f"alpha@{DOMAIN}", "--from", "bravo@hostb.test",
                "--gnupghome", str(self.hostb / "gnupg"), "--key", self.fpr,
                "--poll", "0.2", "--wait", "20"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.procs.append(proc)
        return proc

    def order_pair(self, ref: str, price: str = "10.00") -> tuple[bytes, bytes]:
        """alice's buy and bob's sell of one BRAVO at ``price``, signed (not sent)."""
        return (self.alpha.request("alice", ref, "Order", f"buy 1 {TICKER} at {price}", pit="alpha"),
                self.alpha.request("bob", ref, "Order", f"sell 1 {TICKER} at {price}", pit="alpha"))

    def send(self, raw: bytes, who: str) -> None:
        """A trader's order into A's Postfix."""
        self.host.send(raw, addr(who), f"alpha@{DOMAIN}")

    def has_trade(self, who: str, text: str) -> bool:
        return any(b"X-Pit-Kind: report" in m and text.encode() in m
                   for m in self.host.mailman.sink.messages(addr(who)))

    def detail(self) -> str:
        """What went wrong, for a failure's message: refusals, B's log, A's maillog."""
        refused = [mbox.headers(r, ["x-pit-rejected"]).get("x-pit-rejected", "")
                   for r in self.alpha.rejects()]
        log = self.daemon_log
        return (f"--- refused\n{refused[-10:]}\n--- B's daemon\n"
                f"{log.read_text(errors='replace')[-3000:] if log.exists() else ''}\n"
                f"--- A's maillog\n{self.host.postfix.log_text(3000)}")


def _stop(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def pit_on_three_hosts(hosts: Hosts, base: Path, keyhome: Path) -> Iterator[ThreeHostPit]:
    a_to_b, b_addr = hosts.link("a", "b")
    a_to_c, _ = hosts.link("a", "c")
    hosta, hostb = base / "a", base / "b"
    for d in (hosta, hostb, base / "c"):
        d.mkdir()
        os.chmod(d, 0o755)

    # A: the pit, as its operator builds it
    root = hosta / "pits" / "alpha"
    pit = ops.init(root, "alpha", domain=DOMAIN)
    assert ops.operator_request(pit, "Currency", "USD 0.01").accepted
    meta = testkeys._meta(keyhome)
    for who in ("alice", "bob"):
        assert ops.add_member(pit, meta[who]["public"], [who])[1].accepted
    alpha = Kit(root, keyhome)
    _stop_agents(hosta)

    # B makes its key; only the public key leaves B
    def pit_on(host: str, *words: str) -> subprocess.CompletedProcess:
        return hosts.run(host, [sys.executable, "-m", "pit.cli", *words], cwd=REPO)
    made = pit_on("b", "key", "new", FILTER, "bravo@hostb.test", "--gnupghome", str(hostb / "gnupg"))
    assert made.returncode == 0, made.stderr
    fpr = made.stdout.split()[-1]
    public = pit_on("b", "key", "export", fpr, "--gnupghome", str(hostb / "gnupg"))
    assert public.returncode == 0 and "PRIVATE" not in public.stdout
    handed = hosta / "bravo.asc"            # what B's operator hands to A's operator
    handed.write_text(public.stdout)
    os.chmod(handed, 0o644)

    procs: list = []
    # The caller's thread is on A (what it starts is A's, its mail goes to
    # A's loopback) but for B's Postfix, started on B.
    with hosts.inside("a"), contextlib.ExitStack() as stack:
        stack.callback(_stop, procs)        # whatever is left, last (callbacks run LIFO)
        host = stack.enter_context(pits_on_postfix(
            hosta, [root], DOMAIN, sink_domains=(testkeys.DOMAIN, "hostb.test"),
            addresses=("127.0.0.1", a_to_b, a_to_c)))
        world = ThreeHostPit(hosts, base, host, alpha, fpr, a_to_b, a_to_c, None, procs)

        # The operator, on A: the instrument, B's key as its specialist, deposits.
        for words in (["instrument", "add", TICKER, "USD", "--tick", "0.01", "--lot", "1"],
                      ["member", "add", str(handed), "--accounts", f"specialist:{TICKER}"],
                      ["deposit", "100000.00", "USD", "alice"],
                      ["deposit", "1000", TICKER, "bob"]):
            done = host.as_pit_user("--pit", str(root), *words)
            assert done.returncode == 0, (words, done.stderr)
        funding = [alpha.request("alice", "fb", "Transfer", f"5000.00 USD to alice:{TICKER}",
                                 pit="alpha"),
                   alpha.request("bob", "fb", "Transfer", f"1000 {TICKER} to bob:{TICKER}",
                                 pit="alpha")]
        for raw, who in zip(funding, ("alice", "bob")):
            world.send(raw, who)
        wait_until("the funding transfers", lambda: all(seq_of(alpha, r) for r in funding),
                   detail=world.detail)
        last_funding = max(seq_of(alpha, r) for r in funding)
        wait_until("the transfers filter's report of them",
                   lambda: (ops.filter_position(alpha.pit, "transfers")[0] or (0, 0))[1]
                   >= last_funding, detail=world.detail)

        # A serves its archive folder (only) read only over rsync.
        conf = hosta / "rsyncd.conf"
        conf.write_text(RSYNCD_CONF.format(base=hosta, archive=root / "archives", user=PIT_USER))
        procs.append(subprocess.Popen(
            ["rsync", "--daemon", "--no-detach", f"--config={conf}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))

        # B: its replica (pit mirror checks the log: wait for a sealed tail)
        wait_until("a sealed tail", lambda: sealed(alpha), detail=world.detail)
        done = world.pit_on("b", "mirror", f"rsync://{a_to_b}/alpha", str(hostb / "alpha"))
        assert done.returncode == 0, done.stdout + done.stderr

        # B's own Postfix: loopback for B's programs, its link for A; mail for
        # the pit's domain goes to A's Postfix.
        etc_b = hostb / "postfix" / "etc"
        etc_b.mkdir(parents=True)
        (etc_b / "transport").write_text(f"{DOMAIN} smtp:[{a_to_b}]:{host.postfix.smtp_port}\n")
        with hosts.inside("b"):
            world.b_postfix = stack.enter_context(running_postfix(
                hostb / "postfix", 25, addresses=("127.0.0.1", b_addr),
                hostname="mail.hostb.test", maps=("transport",),
                main_extra=f"transport_maps = hash:{etc_b}/transport\n"))
        stack.callback(_stop, procs)        # B's daemons stop before B's Postfix
        yield world
