"""Where the specialist's time goes, by what each record comes to:
``python -m bench.outcomes [--n 1000000]``.

Replays bench.replay's archive (built there if missing) into memory, runs
`pit-specialist ACME` in process over it with each ``apply_order`` call
timed (``perf_counter_ns``), and prints, for each outcome (the order's
verb and kind and the first words of the lines it reported, e.g. ``buy
limit accepted,trade``), how many records, the median time of one and
median x count.  Medians, because a call preempted by the shared
machine's other work would swamp a mean; the figures carry the load, the
shares are what to read (docs/pit-book.md, "The replay and the
specialist on one core").
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections import defaultdict

from bench.replay import OUT, build
from filters.specialist import Specialist
from pit import mbox, ops
from pit.filter import run


def outcomes(pit) -> dict[str, list[int]]:
    """Nanoseconds of each ``apply_order`` call, by outcome."""
    flt = Specialist(["ACME"])
    pieces = (p for _, p in ops.replay_pieces(pit, flt, from_start=True))
    items = list(mbox.iter_stream_orders(_Reader(pieces), flt.order_tickers))
    flt.prepare()
    samples: dict[str, list[int]] = defaultdict(list)
    apply, lines, clock = flt.apply_order, flt.lines, time.perf_counter_ns

    def timed(seq: int, account: str, ref: str, text: str) -> None:
        n = len(lines)
        t = clock()
        apply(seq, account, ref, text)
        dt = clock() - t
        w = text.split(" ", 4)
        what = w[0] if w[0] in ("cancel", "modify") else f"{w[0]} {w[3] if len(w) > 3 else ''}"
        samples[f"{what} " + ",".join(line.split(" ", 1)[0] for line in lines[n:])].append(dt)

    flt.apply_order = timed
    gc.disable()
    try:
        run(flt, items, None)
    finally:
        gc.enable()
    return samples


class _Reader:
    """`pit replay`'s pieces read the way iter_stream_orders reads its pipe."""

    def __init__(self, pieces):
        self.pieces, self.piece, self.pos = pieces, b"", 0

    def readinto1(self, view) -> int:
        while self.pos == len(self.piece):
            self.piece, self.pos = bytes(next(self.pieces, b"")), 0
            if not self.piece:
                return 0
        n = min(len(view), len(self.piece) - self.pos)
        view[:n] = self.piece[self.pos:self.pos + n]
        self.pos += n
        return n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.outcomes")
    ap.add_argument("--n", type=int, default=1_000_000, help="order records of bench.replay's archive")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    pit = build(args.n, OUT / f"replay-{args.n}")
    samples = outcomes(pit)
    clock = time.perf_counter_ns
    t = clock()
    for _ in range(100_000):
        clock()
    tick = (clock() - t) / 100_000          # one clock read, taken off each median
    rows = sorted(((statistics.median(v) - tick) * len(v), k, len(v), statistics.median(v) - tick)
                  for k, v in samples.items())[::-1]
    print(f"apply_order by outcome ({sum(len(v) for v in samples.values()):,} records; "
          f"load average {os.getloadavg()[0]:.1f}): records, median, median x records")
    for total, k, n, med in rows[:args.top]:
        print(f"  {k[:58]:58s} {n:8,d} {med / 1000:8.2f} us {total / 1e9:7.2f} s")
    print(f"  (all outcomes: {sum(r[0] for r in rows) / 1e9:.2f} s)")


if __name__ == "__main__":
    main()
