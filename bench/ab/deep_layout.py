"""The deep book built order by order: which part of its memory layout costs?

    python bench/ab/deep_layout.py RUNS N R

Each run times, by CPU, Engine.run over N messages of the default stream
(ids shifted above R; chunks of 10,000, events drained) on R orders of
bench.streams.resting_orders placed one by one, in one process per
variant, the variants interleaved:

  came      the book as its orders came (bench.core's deep book);
  dict      the order dict emptied and filled again level by level (best
            price first); the order lists stay where they are;
  lists     every order list copied level by level, the copy put in its
            level and the dict; ids, prices and the dict's entries stay;
  ints      the order lists, their id ints, one price int a level and the
            dict all made again level by level, in place of the old ones;
  restored  the checkpoint written and read back (pit.bookstate), as a
            specialist's run holds it: a new engine, built level by level
            in fresh memory while the old one still lives.

Prints the best and median msg/s of each and the load average.  Run it in the
tree whose core it measures.  Figures: docs/pit-book.md, "The deep book
and the modify-heavy flow".
"""
import os
import subprocess
import sys

VARIANTS = ("came", "dict", "lists", "ints", "restored")


def level_order(eng):
    """Every level of every half, best price first."""
    for book in eng._books.values():
        for half in (book.bids, book.asks):
            for price in sorted(half.levels, reverse=half.is_bid):
                yield half.levels[price]


def child(n: int, r: int, variant: str) -> float:
    import gc
    import time
    from bench.core import shifted
    from bench.streams import make_stream, resting_orders
    from pit import bookstate
    from pit.book import Engine
    stream = shifted(make_stream(n, 1), r)
    eng = Engine()
    eng.add_book("ACME")
    eng.run(resting_orders(r))
    eng.events.clear()
    gc.disable()
    orders = eng._orders
    if variant == "dict":
        keep = [(rec[1], rec) for level in level_order(eng) for rec in level[1] if rec[0]]
        orders.clear()
        orders.update(keep)
        del keep
    elif variant == "lists":
        for level in level_order(eng):
            q = level[1]
            new = [rec[:] for rec in q]
            q.clear()
            q.extend(new)
            for rec in new:
                orders[rec[1]] = rec
    elif variant == "ints":
        orders.clear()
        for level in level_order(eng):
            q = level[1]
            price = q[0][3] + 0                    # + 0: a new int object, equal
            new = [[rec[0], rec[1] + 0, rec[2], price, rec[4]] for rec in q]
            q.clear()
            q.extend(new)
            for rec in new:
                orders[rec[1]] = rec
    elif variant == "restored":
        eng = bookstate.read(bookstate.write(eng))
    elif variant != "came":
        raise SystemExit(f"unknown variant {variant}")
    del orders
    gc.collect()
    ev = eng.events
    chunks = [stream[i:i + 10000] for i in range(0, n, 10000)]
    t = time.process_time()
    for c in chunks:
        eng.run(c)
        del ev[:]
    return time.process_time() - t


def main():
    if sys.argv[1] == "--child":
        print(child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
        return
    runs, n, r = (int(a) for a in sys.argv[1:4])
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    times = {v: [] for v in VARIANTS}
    for _ in range(runs):
        for v in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), str(r), v],
                                 check=True, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
            times[v].append(float(out))
    for v, ts in times.items():
        ts.sort()
        print(f"{v:9s} best {n / ts[0]:12,.0f} median {n / ts[len(ts) // 2]:12,.0f} msg/s")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
