"""The notary's LMTP event loop alone (docs/pit-book.md, "Throughput over
LMTP": around the group): ``pit.lmtpserver.LMTPServer`` with a handler
that answers every message at once (no notary: the loop's own work, the
LMTP dialogue), C connections of ``LMTPClient`` (pipelined MAIL, RCPT and
DATA, then the data: two reads a message, as bench.lmtp's clients) in a
process of their own.

    python -m bench.ab.lmtploop [--n 8000] [--connections 32] [--runs 5]

Prints the event loop thread's CPU (/proc, user+system) a message of each
run, min and median, and the load.  To time another tree's server with
this script: ``PYTHONPATH=TREE python bench/ab/lmtploop.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading

from pit.lmtpserver import LMTPServer
from pit.mailhost import LMTPClient, free_port

MESSAGE = (b"From: trader <trader@traders.example>\nTo: pit@bench.example\nSubject: order\n\n"
           + b"Order: new\nTicker: ACME\nSide: buy\nQuantity: 1\nPrice: 12.03\n" * 20)


class _Answer:
    """Every recipient is taken, every message answered at once."""

    def rcpt(self, address):
        return None

    def data(self, mail_from, rcpts, content):
        return ["250 2.0.0 taken"] * len(rcpts)


def _clients(port: int, n: int, connections: int) -> None:
    def one(count: int) -> None:
        with LMTPClient("127.0.0.1", port) as client:
            for _ in range(count):
                code = client.send(MESSAGE, "trader@traders.example",
                                   ["pit@bench.example"])["pit@bench.example"][0]
                assert code == 250, code
    threads = [threading.Thread(target=one, args=(n // connections,)) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _thread_cpu(thread: threading.Thread) -> float:
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ab.lmtploop",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    server = LMTPServer(_Answer(), "127.0.0.1", free_port()).start()
    ctx = multiprocessing.get_context("spawn")
    out = []
    try:
        for _ in range(args.runs):
            before = _thread_cpu(server.thread)
            p = ctx.Process(target=_clients, args=(server.port, args.n, args.connections))
            p.start()
            p.join()
            if p.exitcode:
                raise SystemExit(f"bench.ab.lmtploop: the clients failed ({p.exitcode})")
            sent = args.n // args.connections * args.connections
            out.append((_thread_cpu(server.thread) - before) / sent * 1e6)
    finally:
        server.stop()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"LMTP event loop CPU a message: min {min(out):.1f}, median {statistics.median(out):.1f} us "
          f"({', '.join(f'{x:.1f}' for x in out)}); {args.n} messages a run, "
          f"{args.connections} connections (load average {load})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
