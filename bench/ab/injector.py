"""The LMTP server's injector alone (docs/pit-book.md, "Throughput over
LMTP": around the group): ``NotaryLMTPServer._inject`` posting notarized
records to an LMTP sink in Mailman's place (bench.lmtp's: aiosmtpd, in a
process of its own, no PIPELINING, as Mailman's LMTP runner), G
deliveries a call as the injector takes them, each one record, through a
route with a spool (as every served pit has).

    python -m bench.ab.injector [--n 2000] [--group 14] [--runs 5] [--profile FILE]

Prints the thread's CPU (``time.thread_time``) a record of each run, min
and median, and the load.  ``--profile FILE``: one more run under
cProfile (thread CPU as its clock), its stats written to FILE.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from bench.lmtp import _load, _sink_process
from pit.mailhost import NotaryLMTPServer, PitRoute, _Delivery, free_port

LIST = "pit@bench.example"
# A record as the archive holds it: the stamp first, then the signed order.
RECORD = (b"X-Pit-Seq: %d\nX-Pit-Time: 2026-12-07T00:00:00Z\nX-Pit-Prev: " + b"ab" * 32
          + b"\nFrom: trader <trader@traders.example>\nTo: " + LIST.encode()
          + b"\nSubject: order\n\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
          + b"Order: new\nTicker: ACME\nSide: buy\nQuantity: 1\nPrice: 12.03\n" * 4
          + b"-----BEGIN PGP SIGNATURE-----\n" + b"A" * 64 + b"\n" + b"B" * 60
          + b"\n-----END PGP SIGNATURE-----\n")


def run(server: NotaryLMTPServer, first: int, n: int, group: int) -> float:
    """Inject records first..first+n-1; the thread's CPU a record, in us."""
    done = [(_Delivery(LIST, b"", ""), [RECORD % (first + i)]) for i in range(n)]
    cpu = time.thread_time()
    for k in range(0, n, group):
        server._inject(LIST, done[k:k + group])
    cpu = time.thread_time() - cpu
    bad = [item.reply.result() for item, _ in done if not item.reply.result().startswith("250")]
    if bad:
        raise SystemExit(f"bench.ab.injector: {len(bad)} not posted: {bad[0]}")
    return cpu / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ab.injector", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--group", type=int, default=14)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", metavar="FILE")
    args = ap.parse_args(argv)
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    sink = ctx.Process(target=_sink_process, args=(port, ready, stop))
    sink.start()
    try:
        if not ready.wait(30):
            raise SystemExit("bench.ab.injector: the LMTP sink did not start")
        with tempfile.TemporaryDirectory(prefix="pit-bench-injector-") as tmp:
            route = PitRoute(LIST, "notary@bench.example", lambda m, s: [], "bench-secret",
                             Path(tmp) / "spool")
            server = NotaryLMTPServer({LIST: route}, ("127.0.0.1", port))
            run(server, 1, 50, args.group)                      # connected, warm
            seq, out = 51, []
            for _ in range(args.runs):
                out.append(run(server, seq, args.n, args.group))
                seq += args.n
            print(f"injector CPU a record: min {min(out):.1f}, median {statistics.median(out):.1f} us "
                  f"({', '.join(f'{x:.1f}' for x in out)}); {args.n} records a run, "
                  f"{args.group} a call ({_load()})")
            if args.profile:
                import cProfile
                prof = cProfile.Profile(time.thread_time)
                prof.runcall(run, server, seq, args.n, args.group)
                prof.dump_stats(args.profile)
            for client in server._clients.values():
                client.close()
    finally:
        stop.set()
        sink.join(10)
        if sink.is_alive():
            sink.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
