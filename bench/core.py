"""Benchmark of the matching core (CPU time of this process, so that other
load on the machine disturbs it less): ``python -m bench.core [--n N] [--resting R]``.

Prints messages/s through ``Engine.run`` (batch, events drained every 10,000
messages, as a specialist would), messages/s with one ``new``/``cancel``/
``modify`` call per message, and memory per resting order with R orders
resting (tracemalloc: bytes the engine holds after inserting them, divided by
R; peak includes dict resizing).  The stream is ``bench.streams.make_stream``;
building it is not timed; each figure is the min and median of --repeat
runs after an untimed one.  Then the same stream on a deep book (R orders
resting before it starts, ``bench.streams.resting_orders`` around the same
mid price) and the modify-heavy flow (``make_stream(modify_heavy=True)``).
What the stream makes the engine do on each book (events, trades, crossing
orders, fills and levels a crossing order, the makers' age) is counted in an
untimed run, and the deep book's figure is given in events/s as well; the
deep book is timed twice: its orders placed one by one (in memory in the
order they came), and read back from its checkpoint (level by level), as
every specialist run holds it.
Targets: >= 2,000,000 msg/s batch, >= 1,000,000 msg/s one at a time, the
deep book no worse than 0.8x the shallow one, <= 400 bytes per resting order.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc

from bench.streams import make_stream, resting_orders
from pit import bookstate
from pit.book import BUY, CANCEL, MODIFY, NEW, SELL, Engine

CHUNK = 10_000


def deep_engine(resting: int, ticker="ACME", restored: bool = False) -> Engine:
    """An engine with *resting* orders on its book (ids 1..resting), placed one
    by one; *restored*: then written to its checkpoint and read back, as a
    specialist's run starts (the same book, its orders laid out level by level
    in memory instead of in the order they came)."""
    eng = Engine()
    eng.add_book(ticker)
    eng.run(resting_orders(resting, ticker=ticker))
    eng.events.clear()
    if restored:
        text = bookstate.write(eng)
        del eng
        eng = bookstate.read(text)
    return eng


def shifted(stream, by: int) -> list:
    """*stream* with every seq and order id *by* higher (to follow resting orders)."""
    return [(m[0], m[1] + by, m[2] + by) + m[3:] for m in stream]


def bench_batch(stream, ticker="ACME", eng=None):
    """Seconds to run *stream* in batches of CHUNK messages; events drained each batch."""
    if eng is None:
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


def work(stream, eng=None) -> dict:
    """What *stream* makes the engine do (an untimed run): events, trades,
    orders that crossed (takers), price levels they filled at, the median age
    in messages of the makers they filled against, and the cancels and
    modifies that found their order resting."""
    if eng is None:
        eng = Engine()
        eng.add_book("ACME")
    ev = eng.events
    w = {"events": 0, "trades": 0, "cancelled": 0, "modified": 0}
    levels, ages = {}, []
    for i in range(0, len(stream), CHUNK):
        eng.run(stream[i:i + CHUNK])
        w["events"] += len(ev)
        for e in ev:
            if e[0] == "trade":
                levels.setdefault(e[6], set()).add(e[3])
                ages.append(e[6] - e[5])
            elif e[0] == "cancelled" and e[4] == "cancel" or e[0] == "modified":
                w[e[0]] += 1
        del ev[:]
    w["trades"] = len(ages)
    w["takers"] = len(levels)
    w["levels"] = sum(len(p) for p in levels.values())
    ages.sort()
    w["maker_age"] = ages[len(ages) // 2] if ages else 0
    return w


def work_line(name: str, n: int, w: dict) -> str:
    return (f"{name}: {w['events'] / n:.3f} events, {w['trades'] / n:.3f} trades, "
            f"{w['takers'] / n:.3f} crossing orders ({w['trades'] / max(w['takers'], 1):.2f} fills, "
            f"{w['levels'] / max(w['takers'], 1):.2f} levels each), {w['cancelled'] / n:.3f} cancels "
            f"and {w['modified'] / n:.4f} modifies of a resting order a message; makers filled "
            f"were placed a median {w['maker_age']:,} messages earlier")


def bench_single(stream, ticker="ACME", eng=None):
    """Seconds with one method call per message (arguments prepared beforehand,
    as a specialist has them after parsing); events drained every CHUNK calls."""
    if eng is None:
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


def rates(n: int, times: list) -> tuple[float, float]:
    """(best, median) messages/s of *n* messages over run *times*."""
    times = sorted(times)
    return n / times[0], n / times[len(times) // 2]


def single_times(stream, repeat: int, eng_of=lambda: None) -> list:
    """bench_single times, gc paused as a replay pauses it around one-at-a-time
    calls (the core makes no cycles)."""
    gc.disable()
    try:
        return [bench_single(stream, eng=eng_of())[0] for _ in range(repeat)]
    finally:
        gc.enable()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="messages in the stream")
    ap.add_argument("--resting", type=int, default=1_000_000,
                    help="orders resting for the memory figure and the deep book")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each figure")
    a = ap.parse_args(argv)
    stream = make_stream(a.n, a.seed)
    kinds = {}
    for m in stream:
        k = m[6] if m[0] == NEW else m[0]
        kinds[k] = kinds.get(k, 0) + 1
    print(f"stream: {a.n} messages, seed {a.seed}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"(CPU time; min and median of {a.repeat} runs after an untimed one; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    gc.collect()
    # one untimed run first: it counts the events, and the allocator's arenas
    # are then in place as they are for a specialist that has been running
    _, events, eng = bench_batch(stream)
    print(f"events: {events}; final best bid/ask {eng.best_bid('ACME')}/{eng.best_ask('ACME')}")
    del eng
    tb = [bench_batch(stream)[0] for _ in range(a.repeat)]     # run() pauses gc itself
    ts = single_times(stream, a.repeat)
    ts_gc = min(bench_single(stream)[0] for _ in range(a.repeat))
    (batch, batch_med), (single, single_med) = rates(a.n, tb), rates(a.n, ts)
    print(f"batch  (Engine.run):        {batch:12,.0f} msg/s, median {batch_med:12,.0f}  "
          f"(target >= 2,000,000)")
    print(f"single (one call/message):  {single:12,.0f} msg/s, median {single_med:12,.0f}  "
          f"(target >= 1,000,000; gc paused by the caller)")
    print(f"single, gc left running:    {a.n / ts_gc:12,.0f} msg/s")
    sev, sev_med = rates(events, tb)
    print(f"batch events:               {sev:12,.0f} events/s, median {sev_med:12,.0f}")
    shallow_work = work(stream)

    # the same stream on a deep book: a.resting orders rest before it starts
    deep_stream = shifted(stream, a.resting)
    del stream
    deep_work = work(deep_stream, deep_engine(a.resting))
    tdb = [bench_batch(deep_stream, eng=deep_engine(a.resting))[0] for _ in range(a.repeat)]
    tds = single_times(deep_stream, a.repeat, lambda: deep_engine(a.resting))
    (dbatch, dbatch_med), (dsingle, dsingle_med) = rates(a.n, tdb), rates(a.n, tds)
    devents = deep_work["events"]
    print(work_line("shallow book", a.n, shallow_work))
    print(work_line(f"deep book ({a.resting:,} resting)", a.n, deep_work))
    print(f"deep book ({a.resting:,} resting), batch:  {dbatch:12,.0f} msg/s, median "
          f"{dbatch_med:12,.0f} = {dbatch / batch:.2f}x shallow (median {dbatch_med / batch_med:.2f}x; "
          f"target >= 0.8x)")
    print(f"deep book ({a.resting:,} resting), single: {dsingle:12,.0f} msg/s, median "
          f"{dsingle_med:12,.0f} = {dsingle / single:.2f}x shallow (median "
          f"{dsingle_med / single_med:.2f}x; target >= 0.8x)")
    dev, dev_med = rates(devents, tdb)
    print(f"deep book ({a.resting:,} resting), batch events: {dev:12,.0f} events/s, median "
          f"{dev_med:12,.0f} = {dev / sev:.2f}x shallow (median {dev_med / sev_med:.2f}x)")
    # the same book as a specialist holds it: read from its checkpoint
    tdr = [bench_batch(deep_stream, eng=deep_engine(a.resting, restored=True))
           for _ in range(a.repeat)]
    assert all(count == devents for _, count, _ in tdr), "the restored book's events differ"
    tdr = [t for t, _, _ in tdr]
    tdrs = single_times(deep_stream, a.repeat, lambda: deep_engine(a.resting, restored=True))
    del deep_stream
    (rbatch, rbatch_med), (rsingle, rsingle_med) = rates(a.n, tdr), rates(a.n, tdrs)
    print(f"deep book restored from its checkpoint, batch:  {rbatch:12,.0f} msg/s, median "
          f"{rbatch_med:12,.0f} = {rbatch / batch:.2f}x shallow (median "
          f"{rbatch_med / batch_med:.2f}x; target >= 0.8x)")
    print(f"deep book restored from its checkpoint, single: {rsingle:12,.0f} msg/s, median "
          f"{rsingle_med:12,.0f} = {rsingle / single:.2f}x shallow (median "
          f"{rsingle_med / single_med:.2f}x; target >= 0.8x)")

    # the modify-heavy flow
    mstream = make_stream(a.n, a.seed, modify_heavy=True)
    mods = sum(1 for m in mstream if m[0] == MODIFY)
    bench_batch(mstream)
    (mbatch, mbatch_med), (msingle, msingle_med) = (
        rates(a.n, [bench_batch(mstream)[0] for _ in range(a.repeat)]),
        rates(a.n, single_times(mstream, a.repeat)))
    del mstream
    print(f"modify-heavy ({100 * mods / a.n:.0f}% modifies), batch:  {mbatch:12,.0f} msg/s, "
          f"median {mbatch_med:12,.0f}  (target >= 2,000,000)")
    print(f"modify-heavy ({100 * mods / a.n:.0f}% modifies), single: {msingle:12,.0f} msg/s, "
          f"median {msingle_med:12,.0f}  (target >= 1,000,000)")

    held, peak = bench_memory(a.resting)
    print(f"memory with {a.resting:,} resting: {held:.0f} bytes/order held, "
          f"{peak:.0f} peak  (target <= 400)")
    print(f"notes: pit.book {batch / 1e6:.2f}M msg/s batch, {single / 1e6:.2f}M msg/s single, "
          f"deep book {dbatch / batch:.2f}x/{dsingle / single:.2f}x ({dev / sev:.2f}x in events/s), "
          f"restored {rbatch / batch:.2f}x/{rsingle / single:.2f}x, modify-heavy "
          f"{mbatch / 1e6:.2f}M/{msingle / 1e6:.2f}M, {held:.0f} B/resting order (peak {peak:.0f}); "
          f"CPython {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
