"""What a pit costs on a real Mailman 3, with the real notary.

    python -m bench.mailman [N] [MEMBERS] [ROUNDS] [PAIRS]

Starts Mailman in a temp dir (tests/mailman_harness.py) and a pit (the
real ``moderator.notary.Notary`` behind ``pit.daemon.NotaryService`` and
``NotaryLMTPServer``), then:

1. Throughput.  The same N signed orders (bench/fixtures.py: signed in
   process, cached) go (a) straight into Mailman's LMTP runner for a plain
   list and (b) through the notary's LMTP server to the pit's list: verified,
   stamped, chained, archived with fsync, sealed on the timer, approved and
   injected.  Each run is timed from the first send until every member
   (MEMBERS traders and the archive address) has every message.  Best of
   ROUNDS alternating runs each, fresh orders every pit round (a notary
   refuses a replay), after one plain warm-up run.  Target: the pit path
   takes at most 25% longer.
2. Latency.  PAIRS crossing pairs (sell, then buy, of one lot of a ticker
   of its own, LAT) go through the notary one pair at a time; the LAT
   specialist daemon (pit.daemon.FilterDaemon) runs on deliveries to its
   list address and posts its report back through the notary.  Measured
   from the LMTP post of the buy to the report with its trade landing in
   the buyer's mailbox in the sink.  Prints the median and the worst.

Every wait times out (60 s plus 1 s per message).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mailman_harness import running_mailman  # noqa: E402

from bench.fixtures import fresh_pit, signed_orders, trader_keys  # noqa: E402
from pit import mbox, ops  # noqa: E402
from pit.keyring import Keyring  # noqa: E402
from pit.daemon import FilterDaemon, NotaryService  # noqa: E402
from pit.mailhost import LMTPClient, NotaryLMTPServer, PitRoute  # noqa: E402
from pit.mailman import MailmanClient, add_member, provision_pit  # noqa: E402

DOMAIN = "bench.test"
SEAL_SECONDS = 1.0


def _load() -> str:
    return ("load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
            + f" on {os.cpu_count()} CPUs")


def _sender(raw: bytes) -> str:
    value = mbox.headers(raw, ["from"])["from"]
    return value[value.find("<") + 1:value.rfind(">")] if "<" in value else value.strip()


def _wait_posts(sink, members: list[str], before: dict[str, int], n: int, timeout: float,
                notarized: bool) -> None:
    """Until each member has n more list posts; on the pit's list only stamped
    ones count, seals not (the notary's timed seals are extra posts, and a
    refusal's notice is not a post)."""
    deadline = time.monotonic() + timeout
    for member in members:
        while True:
            got = sink.messages(member)[before[member]:]
            if not notarized:
                done = len(got) >= n
            else:
                done = sum(m.startswith(b"X-Pit-Seq: ") and b"\nX-Pit-Kind: seal\n" not in m[:1200]
                           for m in got) >= n
            if done:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench.mailman: {member} got {len(got)} of {n} messages "
                                 f"after {timeout:.0f} s")
            time.sleep(0.01)


def _setup_pit(root: Path, n_orders: int, members: int):
    """The bench pit: fixtures' traders and orders, plus LAT for the latency pairs
    (funded and transferred locally, before the notary's server starts)."""
    pit = fresh_pit(root, domain=DOMAIN)
    raws = signed_orders(pit, n_orders, "ed25519")
    for key, value in (("Instrument", "LAT USD tick 0.01 lot 1"),
                       ("Deposit", "100000 LAT to trader01")):
        d = ops.operator_request(pit, key, value)
        assert d.accepted, d.reason
    keys = trader_keys("ed25519", 2)
    notary = ops.notary(pit)
    for name, value in (("trader00", "1000000.00 USD to trader00:LAT"),
                        ("trader01", "100000 LAT to trader01:LAT")):
        ring, fpr = keys[name]
        raw = ops.sign_request(pit, ops.request_text(pit, name, "lat-fund", "Transfer", value),
                               ring, fpr, f"{name}@traders.example")
        d = notary.notarize([raw])[0]
        assert d.accepted, d.reason
    for ring, _ in keys.values():
        ring.stop_agent()
    ops.run_filter(pit, "transfers", [])
    ops.filter_key(pit, "specialist LAT")
    traders = [f"trader{i:02d}@traders.example" for i in range(members)]
    return pit, raws, keys, traders


def run(n: int = 200, member_count: int = 5, rounds: int = 2, pairs: int = 20) -> dict:
    """Both measurements; returns {"plain", "pit", "ratio", "latency_median", "latency_max"} (seconds)."""
    timeout = 60.0 + n
    with tempfile.TemporaryDirectory(prefix="pit-bench-mailman-") as tmp, \
            running_mailman(Path(tmp) / "mailman") as mailman:
        pit, raws, keys, traders = _setup_pit(Path(tmp) / "pit", 20 + n * rounds,
                                              max(member_count, 2))
        orders = raws[20:]          # the first 20 are the traders' own funding transfers
        client = MailmanClient(mailman.rest_url, mailman.rest_user, mailman.rest_password)
        sink = mailman.sink
        listed = provision_pit(client, pit.name, DOMAIN, pit.notary_address,
                               f"{pit.name}-archive@{DOMAIN}",
                               specialists=[f"specialist-lat@{DOMAIN}"], members=traders)
        plain = f"plain@{DOMAIN}"
        client.post("lists", {"fqdn_listname": plain})
        client.get(f"lists/plain.{DOMAIN}/archivers")   # see provision_pit: a first-use race
        # A plain list as Mailman makes it, except that it takes every trader's
        # post (the fixtures come from more traders than get mail) and
        # answers nobody about it.
        client.patch(f"lists/plain.{DOMAIN}/config", {
            "default_nonmember_action": "accept", "default_member_action": "accept",
            "respond_to_post_requests": False, "max_message_size": 0})
        members = traders + [listed.archive_address]
        for member in members:
            add_member(client, f"plain.{DOMAIN}", member)

        service = NotaryService(pit, smtp=("127.0.0.1", sink.port), seal_seconds=SEAL_SECONDS)
        route = PitRoute(listed.address, listed.notary_address, service, listed.approval_secret)
        server = NotaryLMTPServer({listed.address: route},
                                  (mailman.lmtp_host, mailman.lmtp_port),
                                  spool_dir=Path(tmp) / "spool")
        with server:
            service.attach(server, listed.address)
            service.start()
            try:
                plains, pits = _throughput(mailman, server, listed.address, plain, members,
                                           orders, n, rounds, timeout)
                latencies = _latency(pit, server, listed.address, sink, keys, pairs, timeout)
            finally:
                service.stop()
                for home in (pit.gnupg, pit.filters_gnupg, pit.root / "operator.gnupg"):
                    Keyring(home).stop_agent()       # the temp dir goes; its agents too
    return {"plain": min(plains), "pit": min(pits), "ratio": min(pits) / min(plains),
            "latency_median": statistics.median(latencies), "latency_max": max(latencies)}


def _throughput(mailman, server, pit_address, plain, members, orders, n, rounds, timeout):
    sink = mailman.sink

    def one_run(host, port, rcpt, batch) -> float:
        before = {m: sink.count(m) for m in members}
        start = time.perf_counter()
        with LMTPClient(host, port) as lmtp:
            for raw in batch:
                code, text = lmtp.send(raw, _sender(raw), [rcpt])[rcpt]
                assert code == 250, text
        _wait_posts(sink, members, before, len(batch), timeout, rcpt == pit_address)
        return time.perf_counter() - start

    one_run(mailman.lmtp_host, mailman.lmtp_port, plain, orders[:n])      # warm-up
    plains, pits = [], []
    for r in range(rounds):
        # Alternate the two and keep each one's best: the machine is shared.
        batch = orders[r * n:(r + 1) * n]
        plains.append(one_run(mailman.lmtp_host, mailman.lmtp_port, plain, batch))
        pits.append(one_run(server.host, server.port, pit_address, batch))
    return plains, pits


def _latency(pit, server, pit_address, sink, keys, pairs, timeout) -> list[float]:
    arrived: list[tuple[float, bytes]] = []
    got = threading.Condition()

    def on_buyer_mail(msg: bytes, sender: str) -> None:
        with got:
            arrived.append((time.perf_counter(), msg))
            got.notify_all()
    sink.on_delivery("trader00@traders.example", on_buyer_mail)
    daemon = FilterDaemon(pit, "specialist", ["LAT"], (server.host, server.port))
    # The first run replays every record of the throughput runs: not timed.
    daemon.kick()
    sink.on_delivery(f"specialist-lat@{DOMAIN}", daemon.notify)
    daemon.start()
    latencies = []
    try:
        with LMTPClient(server.host, server.port) as lmtp:
            for k in range(pairs):
                sell, buy = (_lat_order(pit, keys, who, f"p{k}", side)
                             for who, side in (("trader01", "sell"), ("trader00", "buy")))
                code, text = lmtp.send(sell, "trader01@traders.example", [pit_address])[pit_address]
                assert code == 250, text
                wanted = f"buyer trader00 p{k} seller trader01 p{k} ".encode()
                start = time.perf_counter()
                code, text = lmtp.send(buy, "trader00@traders.example", [pit_address])[pit_address]
                assert code == 250, text
                with got:
                    end = time.monotonic() + timeout
                    while not any(wanted in m for _, m in arrived):
                        if not got.wait(max(0.0, end - time.monotonic())):
                            raise SystemExit(f"bench.mailman: no trade for pair {k}")
                    when = next(t for t, m in arrived if wanted in m)
                latencies.append(when - start)
    finally:
        daemon.stop()
    return latencies


_SIGNERS: dict = {}


def _lat_order(pit, keys, who: str, ref: str, side: str) -> bytes:
    """One signed LAT order, signed in process (pit.signer), like the fixtures."""
    from pit import signed
    from pit.signer import Signer
    ring, fpr = keys[who]
    if who not in _SIGNERS:
        _SIGNERS[who] = Signer.from_keyring(ring, fpr)
        ring.stop_agent()
    text = ops.request_text(pit, who, ref, "Order", f"{side} 1 LAT at 10.00")
    headers = [("From", f"{who}@traders.example"), ("To", pit.address),
               ("Subject", f"{side} 1 LAT at 10.00"),
               ("Message-ID", f"<lat.{ref}.{who}.{time.time_ns()}@traders.example>")]
    return signed.compose_clearsigned(headers, text, _SIGNERS[who], fpr)


def main(argv: list[str] | None = None) -> int:
    from bench import exit_on_sigterm
    exit_on_sigterm()
    argv = sys.argv[1:] if argv is None else argv
    try:
        n = int(argv[0]) if argv else 200
        members = int(argv[1]) if len(argv) > 1 else 5
        rounds = int(argv[2]) if len(argv) > 2 else 2
        pairs = int(argv[3]) if len(argv) > 3 else 20
        if min(n, members, rounds, pairs) < 1:
            raise ValueError
    except ValueError:
        print("usage: python -m bench.mailman [N] [MEMBERS] [ROUNDS] [PAIRS]  (positive integers)",
              file=sys.stderr)
        return 2
    print(f"mailman: {_load()} before")
    result = run(n, members, rounds, pairs)
    print(f"mailman: {n} signed orders to {members} traders and the archive, best of {rounds}")
    print(f"  plain list, direct post        {result['plain']:7.2f} s  "
          f"({n / result['plain']:6.1f} msg/s)")
    print(f"  pit list, via the real notary  {result['pit']:7.2f} s  "
          f"({n / result['pit']:6.1f} msg/s)")
    verdict = "within" if result["ratio"] <= 1.25 else "OVER"
    print(f"  ratio pit/plain                {result['ratio']:7.2f}   ({verdict} the +25% target)")
    print(f"  order -> trade by mail, {pairs} pairs: median {result['latency_median'] * 1000:.0f} ms, "
          f"worst {result['latency_max'] * 1000:.0f} ms")
    print(f"mailman: {_load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
