"""What the notary's posting path costs on a real Mailman 3.

    python -m bench.mailman [N] [MEMBERS] [ROUNDS]

Starts Mailman in a temp dir (tests/mailman_harness.py), then posts N
plain messages to a plain list (members post straight into Mailman's LMTP
runner) and N messages to a pit list through the NotaryLMTPServer with a
stub notary (it prepends two stamp headers), and times each run from the
first send until every member has every message.  Prints both times and
the ratio (best of ROUNDS alternating runs each, default 2, after one
warm-up run); the pit path's target is at most +25%.  The real notary's own
cost (signature checks, archive fsync) is measured by its own benchmark
and adds to the pit figure.

Runs are bounded: every wait times out (60 s plus 1 s per message).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mailman_harness import running_mailman  # noqa: E402

from pit.mailhost import NotaryLMTPServer, PitRoute, lmtp_send  # noqa: E402
from pit.mailman import MailmanClient, add_member, provision_pit  # noqa: E402

DOMAIN = "bench.test"


def _message(n: int, sender: str, to: str) -> bytes:
    return (f"From: {sender}\nTo: {to}\nSubject: order {n}\n"
            f"Message-ID: <bench-{n}-{to}>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n\n"
            f"Pit: bench\nAccount: trader0\nRef: {n}\nOrder: buy 100 ACME at 12.50\n").encode()


def stub_notarize(msg_bytes: bytes, envelope_sender: str) -> list[bytes]:
    """Stamp-shaped headers, no cryptography: the path is measured, not the notary."""
    return [b"X-Pit-Seq: 1\nX-Pit-Kind: order\n" + msg_bytes]


def _wait_all(sink, members: list[str], want: dict[str, int], timeout: float) -> None:
    for member in members:
        sink.wait_for(member, want[member], timeout)


def run(n: int = 200, member_count: int = 5, rounds: int = 2) -> dict[str, float]:
    """Time both paths (best of ``rounds`` each); returns {"plain": s, "pit": s, "ratio": pit/plain}."""
    timeout = 60.0 + n
    with running_mailman() as mailman:
        client = MailmanClient(mailman.rest_url, mailman.rest_user, mailman.rest_password)
        sink = mailman.sink
        traders = [f"trader{i}@traders.test" for i in range(member_count)]

        client.post("domains", {"mail_host": DOMAIN})
        client.post("lists", {"fqdn_listname": f"plain@{DOMAIN}"})
        # Create the list's archiver rows now (see provision_pit: a race
        # between runners on a brand-new list otherwise breaks the list).
        client.get(f"lists/plain.{DOMAIN}/archivers")
        pit = provision_pit(client, "pit", DOMAIN, f"notary@{DOMAIN}", f"archive@{DOMAIN}",
                            members=traders)
        # Same recipients on both lists: the traders and the archive.
        members = traders + [pit.archive_address]
        for member in members:
            add_member(client, f"plain.{DOMAIN}", member)

        def plain_run() -> float:
            want = {m: sink.count(m) + n for m in members}
            start = time.perf_counter()
            for i in range(n):
                status = lmtp_send(mailman.lmtp_host, mailman.lmtp_port,
                                   _message(i, traders[0], f"plain@{DOMAIN}"),
                                   traders[0], [f"plain@{DOMAIN}"])
                assert status[f"plain@{DOMAIN}"][0] == 250, status
            _wait_all(sink, members, want, timeout)
            return time.perf_counter() - start

        route = PitRoute(pit.address, pit.notary_address, stub_notarize, pit.approval_secret)
        with NotaryLMTPServer({pit.address: route}, (mailman.lmtp_host, mailman.lmtp_port)) as notary:
            def pit_run() -> float:
                want = {m: sink.count(m) + n for m in members}
                start = time.perf_counter()
                for i in range(n):
                    status = lmtp_send(notary.host, notary.port,
                                       _message(i, traders[0], pit.address),
                                       traders[0], [pit.address])
                    assert status[pit.address][0] == 250, status
                _wait_all(sink, members, want, timeout)
                return time.perf_counter() - start

            plain_run()                     # warm-up: runners, SQLite, imports
            # Alternate the two and keep each one's best: the machine is
            # shared, and a busy moment should not decide the ratio.
            plains, pits = [], []
            for _ in range(rounds):
                plains.append(plain_run())
                pits.append(pit_run())
    plain, pit_time = min(plains), min(pits)
    return {"plain": plain, "pit": pit_time, "ratio": pit_time / plain}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        n = int(argv[0]) if argv else 200
        members = int(argv[1]) if len(argv) > 1 else 5
        rounds = int(argv[2]) if len(argv) > 2 else 2
        if min(n, members, rounds) < 1:
            raise ValueError
    except ValueError:
        print("usage: python -m bench.mailman [N] [MEMBERS] [ROUNDS]  (positive integers)",
              file=sys.stderr)
        return 2
    result = run(n, members, rounds)
    print(f"mailman: {n} messages to {members} traders and the archive")
    print(f"  plain list, direct post   {result['plain']:7.2f} s  "
          f"({n / result['plain']:6.1f} msg/s)")
    print(f"  pit list, via the notary  {result['pit']:7.2f} s  "
          f"({n / result['pit']:6.1f} msg/s)")
    verdict = "within" if result["ratio"] <= 1.25 else "OVER"
    print(f"  ratio pit/plain           {result['ratio']:7.2f}   ({verdict} the +25% target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
