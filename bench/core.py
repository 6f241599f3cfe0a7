"""Benchmark of the matching core (CPU time of this process, so that other
load on the machine disturbs it less): ``python -m bench.core [--n N] [--resting R]``.

Prints messages/s through ``Engine.run`` (batch, events drained every 10,000
messages, as a specialist would), messages/s with one ``new``/``cancel``/
``modify`` call per message, and memory per resting order with R orders
resting (tracemalloc: bytes the engine holds after inserting them, divided by
R; peak includes dict resizing).  The stream is ``bench.streams.make_stream``;
building it is not timed; each figure is the best of --repeat runs after an
untimed one.  Targets: >= 2,000,000 msg/s batch, >= 1,000,000
msg/s one at a time, <= 400 bytes per resting order.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

from bench.streams import make_stream, resting_orders
from pit.book import BUY, CANCEL, NEW, SELL, Engine

CHUNK = 10_000


def bench_batch(stream, ticker="ACME"):
    """Seconds to run *stream* in batches of CHUNK messages; events drained each batch."""
    eng = Engine()
    eng.add_book(ticker)
    ev = eng.events
    chunks = [stream[i:i + CHUNK] for i in range(0, len(stream), CHUNK)]
    count = 0
    t0 = time.process_time()
    for chunk in chunks:
        eng.run(chunk)
        count += len(ev)
        del ev[:]
    return time.process_time() - t0, count, eng


def bench_single(stream, ticker="ACME"):
    """Seconds with one method call per message (arguments prepared beforehand,
    as a specialist has them after parsing); events drained every CHUNK calls."""
    eng = Engine()
    eng.add_book(ticker)
    ev = eng.events
    table = {NEW: eng.new, CANCEL: eng.cancel}
    calls = [(table.get(m[0], eng.modify), m[1:]) for m in stream]
    chunks = [calls[i:i + CHUNK] for i in range(0, len(calls), CHUNK)]
    count = 0
    t0 = time.process_time()
    for chunk in chunks:
        for f, args in chunk:
            f(*args)
        count += len(ev)
        del ev[:]
    return time.process_time() - t0, count, eng


def bench_memory(n):
    """(bytes per resting order held, peak bytes per order) with *n* resting."""
    gc.collect()
    tracemalloc.start()
    eng = Engine()
    eng.add_book("ACME")
    eng.run(resting_orders(n))
    eng.events.clear()
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    resting = sum(count for side in (BUY, SELL) for _, _, count in eng.depth("ACME", side, n))
    assert resting == n, (resting, n)
    return held / n, peak / n


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="messages in the stream")
    ap.add_argument("--resting", type=int, default=1_000_000, help="orders resting for the memory figure")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5, help="best of this many timed runs")
    a = ap.parse_args(argv)
    stream = make_stream(a.n, a.seed)
    kinds = {}
    for m in stream:
        k = m[6] if m[0] == NEW else m[0]
        kinds[k] = kinds.get(k, 0) + 1
    print(f"stream: {a.n} messages, seed {a.seed}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    gc.collect()
    # one untimed run first: it counts the events, and the allocator's arenas
    # are then in place as they are for a specialist that has been running
    _, events, eng = bench_batch(stream)
    tb = min(bench_batch(stream)[0] for _ in range(a.repeat))   # run() pauses gc itself
    ts_gc = min(bench_single(stream)[0] for _ in range(a.repeat))
    gc.disable()   # what a replay does around one-at-a-time calls: the core makes no cycles
    try:
        ts = min(bench_single(stream)[0] for _ in range(a.repeat))
    finally:
        gc.enable()
    print(f"events: {events}; final best bid/ask {eng.best_bid('ACME')}/{eng.best_ask('ACME')}")
    batch_rate, single_rate = a.n / tb, a.n / ts
    print(f"batch  (Engine.run):        {batch_rate:12,.0f} msg/s  (target >= 2,000,000)")
    print(f"single (one call/message):  {single_rate:12,.0f} msg/s  (target >= 1,000,000; gc paused by the caller)")
    print(f"single, gc left running:    {a.n / ts_gc:12,.0f} msg/s")
    held, peak = bench_memory(a.resting)
    print(f"memory with {a.resting:,} resting: {held:.0f} bytes/order held, "
          f"{peak:.0f} peak  (target <= 400)")
    print(f"notes: pit.book {batch_rate / 1e6:.2f}M msg/s batch, {single_rate / 1e6:.2f}M msg/s single, "
          f"{held:.0f} B/resting order (peak {peak:.0f}); CPython {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
