"""A pit through a real Postfix and Mailman 3: orders a second and order ->
trade latency, the way traders reach it.

    python -m bench.postfix [N] [PAIRS] [RUNS] [--filters daemon|pipe] [--keep DIR]
                                                 (make bench: 200 50 3, daemons)

Sets up what tests/test_postfix.py sets up (tests/postfix_harness.py:
Mailman writing its Postfix maps, a Postfix instance of its own configured
by ``pit mailman postfix-config``, ``pit mailman serve`` and the filters
running as an unprivileged user: as ``pit mailman daemon`` processes, as
docs/mailman.md's production set-up has them, or with ``--filters pipe``
as Postfix ``pipe`` services run by each list copy), with one pit whose
traders are relayed to a sink, then:

1. Throughput.  N signed orders (bench/fixtures.py, signed in process)
   are handed to Postfix by SMTP on one connection, as fast as it takes
   them; timed from the first until all N are judged (archived, or
   refused: a cancel that overtook its order).
2. The trade right after the burst: one crossing pair (sell, then buy, of
   one lot of LAT), timed from handing the buy to Postfix until the
   specialist's report with its trade is in the archive, and until it is
   in the buyer's mailbox: Mailman delivers in order, so it comes after
   the burst's list copies.
3. Once the burst's mail is all delivered (Postfix's queue and Mailman's
   queues empty, the archive still, for a second; how long that took is
   printed), PAIRS crossing pairs one at a time, timed the same way
   (notary, the specialist, the notary, Mailman, Postfix).  Prints p50,
   p99 and the worst.

Each of RUNS runs sets everything up afresh; with more than one, the
min, median and max over the runs follow.  ``--keep DIR`` keeps each
run's Postfix log (queue ids, ``delays=a/b/c/d``), Mailman's logs and the
notary's log.  A wait that times out stops the bench with what it waited
for and where the mail was (Postfix's and Mailman's queues).

Needs root (a Postfix instance of its own) and the postfix package
(``make sysdeps``).  Every wait times out.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postfix_harness import pits_on_postfix, postfix_available  # noqa: E402

from bench.fixtures import fresh_pit, signed_orders, trader_keys  # noqa: E402
from bench.mailman import _lat_order, _load, _sender  # noqa: E402
from pit import mbox, ops, testkeys  # noqa: E402
from pit.archive import Archive  # noqa: E402

DOMAIN = "bench.test"
TRADERS = "traders.example"
PAIR_TIMEOUT = 120.0


def _setup(root: Path, n: int):
    pit = fresh_pit(root, domain=DOMAIN)
    raws = signed_orders(pit, 20 + n, "ed25519")
    for key, value in (("Instrument", "LAT USD tick 0.01 lot 1"),
                       ("Deposit", "100000 LAT to trader01")):
        assert ops.operator_request(pit, key, value).accepted
    keys = trader_keys("ed25519", 2)
    notary = ops.notary(pit)
    for name, value in (("trader00", "1000000.00 USD to trader00:LAT"),
                        ("trader01", "100000 LAT to trader01:LAT")):
        ring, fpr = keys[name]
        raw = ops.sign_request(pit, ops.request_text(pit, name, "lat-fund", "Transfer", value),
                               ring, fpr, f"{name}@{TRADERS}")
        assert notary.notarize([raw])[0].accepted
    for ring, _ in keys.values():
        ring.stop_agent()
    ops.run_filter(pit, "transfers", [])
    return pit, raws[20:], keys


def _wait(what: str, predicate, timeout: float, where=lambda: ""):
    """Poll ``predicate`` until true; after ``timeout`` seconds stop the
    bench, saying what it waited for and ``where()`` (where the mail is)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = where()
            raise SystemExit(f"bench.postfix: timed out after {timeout:.0f} s waiting for "
                             f"{what}" + (f" ({detail})" if detail else ""))
        time.sleep(0.01)


def _drained(host, archive: Archive, quiet: float = 1.0) -> Callable[[], bool]:
    """A predicate: true once nothing of the pit's mail is in flight, and has
    not been for ``quiet`` seconds: Postfix's queue empty, no message in any
    of Mailman's queues (its runners hold list copies that Postfix has not
    seen yet: an empty Postfix queue alone says nothing), and the archive
    not growing (a filter's run posts more)."""
    queues = host.mailman.root / "var" / "queue"
    state = {"since": None, "last": None}

    def mailman_idle() -> bool:
        return not any(p.suffix in (".pck", ".bak") for q in queues.iterdir()
                       if q.is_dir() and q.name not in ("shunt", "bad") for p in q.iterdir())

    def check() -> bool:
        now, last = time.monotonic(), archive.last_seq()
        if not (host.postfix.queue_empty() and mailman_idle()) or last != state["last"]:
            state["since"], state["last"] = now, last
            return False
        return now - state["since"] >= quiet
    return check


def _pair(host, pit, keys, archive: Archive, mailbox: str, ref: str) -> tuple[float, float]:
    """One crossing pair (sell, then buy, of one lot of LAT): seconds from
    handing the buy to Postfix until the specialist's report with its trade
    is in the archive, and until it is in the buyer's mailbox."""
    sell, buy = (_lat_order(pit, keys, who, ref, side)
                 for who, side in (("trader01", "sell"), ("trader00", "buy")))
    host.send(sell, f"trader01@{TRADERS}", pit.address)
    wanted = f"buyer trader00 {ref} seller trader01 {ref} ".encode()
    sink, seen = host.mailman.sink, archive.last_seq()
    archived = []

    def in_archive() -> bool:
        nonlocal seen
        for seq, msg in archive.read(seen + 1):
            seen = seq
            if wanted in msg:
                return True
        return False
    t0 = time.perf_counter()
    host.send(buy, f"trader00@{TRADERS}", pit.address)

    def delivered() -> bool:
        if not archived and in_archive():
            archived.append(time.perf_counter() - t0)
        return any(wanted in m for m in sink.messages(mailbox))
    _wait(f"the trade of pair {ref}", delivered, PAIR_TIMEOUT,
          lambda: f"{'in' if archived else 'not in'} the archive; " + _where(host))
    total = time.perf_counter() - t0
    return (archived[0] if archived else total), total


def _where(host) -> str:
    """Where the pit's mail is, for a timeout's reason: Postfix's queue and
    Mailman's queues, by name and count."""
    queues = host.mailman.root / "var" / "queue"
    held = {q.name: sum(1 for p in q.iterdir() if p.suffix in (".pck", ".bak"))
            for q in sorted(queues.iterdir()) if q.is_dir()}
    postfix = {sub: sum(1 for p in (host.postfix.root / "spool" / sub).rglob("*") if p.is_file())
               for sub in ("incoming", "active", "deferred")
               if (host.postfix.root / "spool" / sub).is_dir()}
    return (f"Postfix queue {postfix}; Mailman's queues "
            f"{ {k: v for k, v in held.items() if v} or 'empty'}; "
            f"Postfix log {host.postfix.root / 'maillog'}")


def run(n: int = 200, pairs: int = 20, keep: Path | None = None,
        filters: str = "daemon") -> dict:
    """One run (see the module's doc); with ``keep``, Postfix's, Mailman's and
    the notary's logs are copied there before the run's files are removed."""
    import smtplib
    base = Path(tempfile.mkdtemp(prefix="pit-bench-postfix-"))
    os.chmod(base, 0o755)
    try:
        pit, orders, keys = _setup(base / "pit", n)
        for home in (pit.gnupg, pit.filters_gnupg, pit.root / "operator.gnupg"):
            from pit.keyring import Keyring
            Keyring(home).stop_agent()
        # the traders send from traders.example; their keys (so their
        # subscriptions) are at testkeys.DOMAIN: both relayed to the sink
        mailbox = f"trader00@{testkeys.DOMAIN}"
        with pits_on_postfix(base, [pit.root], DOMAIN,
                             sink_domains=(TRADERS, testkeys.DOMAIN), filters=filters) as host:
            archive = Archive(pit.root)
            first = archive.last_seq()
            start = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", host.postfix.smtp_port, timeout=60) as smtp:
                for raw in orders:
                    smtp.sendmail(_sender(raw), [pit.address], raw.replace(b"\n", b"\r\n"))
            handed = time.perf_counter() - start
            ids = {mbox.headers(raw, ["message-id"])["message-id"].encode() for raw in orders}
            rejects = pit.root / "rejects" / "rejects.mbox"

            def judged() -> list[int]:
                """How many of the burst are archived, and how many refused (Postfix
                delivers over several connections: a cancel may overtake its order
                and is refused then, as a trader's would be)."""
                archived = sum(1 for _, m in archive.read(first + 1)
                               if mbox.headers(m, ["message-id"]).get("message-id", "").encode() in ids)
                refused = rejects.read_bytes() if rejects.exists() else b""
                return [archived, sum(1 for i in ids if i in refused)]
            _wait(f"{n} orders judged", lambda: sum(judged()) >= n, 120 + n,
                  lambda: f"{judged()} of {n} archived, refused; " + _where(host))
            elapsed = time.perf_counter() - start
            archived, refused = judged()
            # A trade right after the burst: behind the burst's list copies.
            after_burst = _pair(host, pit, keys, archive, mailbox, "burst")
            # Then the list copies of the burst (and the filters' runs they
            # trigger) are all delivered before the pairs are timed.
            _wait("the burst's mail delivered", _drained(host, archive), 300 + 2 * n,
                  lambda: _where(host))
            drained = time.perf_counter() - start
            timed = [_pair(host, pit, keys, archive, mailbox, f"p{k}") for k in range(pairs)]
    finally:
        if keep is not None:
            _keep_logs(base, keep)
        from conftest import _stop_agents
        _stop_agents(base)
        shutil.rmtree(base, ignore_errors=True)
    latencies = [total for _, total in timed]
    to_archive = [archived for archived, _ in timed]
    return {"handed": handed, "elapsed": elapsed, "rate": n / elapsed, "refused": refused,
            "after_burst": after_burst, "drained": drained,
            "latency_median": statistics.median(latencies), "latency_p99": _p99(latencies),
            "latency_max": max(latencies), "archived_median": statistics.median(to_archive),
            "archived_max": max(to_archive)}


def _keep_logs(base: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    for source, name in ((base / "postfix" / "maillog", "maillog"),
                         (base / "notary.log", "notary.log"),
                         (base / "mailman" / "var" / "logs", "mailman-logs")):
        if source.is_dir():
            shutil.copytree(source, keep / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy(source, keep / name)


def _p99(values: list[float]) -> float:
    """The 99th percentile of the samples (inclusive method: with 50 samples, between the
    two worst)."""
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 \
        else values[0]


def main(argv: list[str] | None = None) -> int:
    import argparse
    from bench import exit_on_sigterm
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.postfix",
                                     description=__doc__.split("\n\n")[0])
    for name, default, text in (("n", 200, "signed orders in the burst"),
                                ("pairs", 50, "crossing pairs timed after the burst"),
                                ("runs", 3, "runs, each set up afresh")):
        parser.add_argument(name, nargs="?", type=int, default=default, help=text)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="copy each run's Postfix, Mailman and notary logs to DIR/run-K")
    parser.add_argument("--filters", choices=("daemon", "pipe"), default="daemon",
                        help="postfix-config's --filters: Postfix's pipe for each list copy "
                             "to a filter's address, or a 'pit mailman daemon' a filter")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if min(args.n, args.pairs, args.runs) < 1:
        parser.error("N, PAIRS and RUNS are positive integers")
    n, pairs, runs = args.n, args.pairs, args.runs
    reason = postfix_available()
    if reason:
        print(f"bench.postfix: skipped: {reason}")
        return 0
    print(f"postfix: {n} signed orders by SMTP to Postfix -> notary (LMTP) -> archive; one "
          f"crossing pair right after them; then, once their mail is all delivered, {pairs} "
          f"crossing pairs one at a time; order -> trade in the archive and in the buyer's "
          f"mailbox (notary, the specialist "
          f"{'woken by the archive' if args.filters == 'daemon' else 'run by Postfix pipe'}, "
          f"the notary, Mailman, Postfix; --filters {args.filters})")
    results = []
    for k in range(runs):
        load = _load()
        r = run(n, pairs, args.keep / f"run-{k + 1}" if args.keep else None, args.filters)
        results.append(r)
        burst_archived, burst_total = r["after_burst"]
        print(f"  run {k + 1}: {r['rate']:.1f} orders/s (handed to Postfix in "
              f"{r['handed']:.2f} s, all judged after {r['elapsed']:.2f} s, {r['refused']} "
              f"refused: cancels that overtook their orders); the trade right after them: "
              f"archived after {burst_archived * 1000:.0f} ms, in the mailbox after "
              f"{burst_total * 1000:.0f} ms; their mail all delivered after "
              f"{r['drained']:.1f} s; then order -> trade in the mailbox "
              f"p50 {r['latency_median'] * 1000:.0f} ms, p99 {r['latency_p99'] * 1000:.0f} ms, "
              f"worst {r['latency_max'] * 1000:.0f} ms (archived: p50 "
              f"{r['archived_median'] * 1000:.0f} ms, worst {r['archived_max'] * 1000:.0f} ms); "
              f"{load} before", flush=True)
    if runs > 1:
        for key, label, scale, unit in (("rate", "orders/s", 1, ""),
                                        ("latency_median", "trade p50", 1000, " ms"),
                                        ("latency_p99", "trade p99", 1000, " ms"),
                                        ("drained", "burst delivered", 1, " s")):
            values = [r[key] * scale for r in results]
            print(f"  {label}: min {min(values):.1f}{unit}, median "
                  f"{statistics.median(values):.1f}{unit}, max {max(values):.1f}{unit} "
                  f"over {runs} runs")
        values = [r["after_burst"][1] * 1000 for r in results]
        print(f"  trade right after the burst, in the mailbox: min {min(values):.1f} ms, "
              f"median {statistics.median(values):.1f} ms, max {max(values):.1f} ms "
              f"over {runs} runs")
    print("  issue 21: 'the same path [signed orders over LMTP, >= 1,000/s from 32 "
          "connections in bench.lmtp] through a real Postfix in front, its figure reported': "
          "the orders/s above; 'order -> trade on one host p50 <= 50 ms, p99 <= 200 ms' "
          "(bench.lmtp, the notary's host): here the trade is timed to the buyer's mailbox, "
          "through Mailman and Postfix both ways")
    print(f"postfix: {_load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
