"""Order throughput of the 1,000- and 1,000,000-member pits, in turn.

    python bench/ab/member_throughput.py RUNS

The pits are bench.members' (``python -m bench.members --sizes 1000,1000000
--cache $PIT_BENCH_CACHE``); each run notarizes 5,000 new orders of each pit
in batches of 1,000: wall orders/s and this process's CPU an order, min and
median.  Figures: docs/pit-book.md, "Members".
"""
import os
import statistics
import sys
import time

from bench.members import _new_orders
from moderator.notary import Notary
from pit.pitdir import Pit

runs, orders = int(sys.argv[1]), 5000
cache = os.environ.get("PIT_BENCH_CACHE", "bench/out")
pits = {n: Pit(f"{cache}/members-{n}") for n in (1000, 1000000)}
raws = {n: _new_orders(p, orders * runs) for n, p in pits.items()}
res = {n: ([], []) for n in pits}
for i in range(runs):
    for n, p in pits.items():
        notary = Notary(p)
        part = raws[n][i * orders:(i + 1) * orders]
        t, c = time.perf_counter(), time.process_time()
        for j in range(0, orders, 1000):
            assert all(d.accepted for d in notary.notarize(part[j:j + 1000]))
        res[n][0].append(orders / (time.perf_counter() - t))
        res[n][1].append((time.process_time() - c) * 1e6 / orders)
for n, (w, c) in res.items():
    print(f"{n:>9,} members: wall min {min(w):,.0f} median {statistics.median(w):,.0f} orders/s; "
          f"CPU min {min(c):.0f} median {statistics.median(c):.0f} us an order; "
          f"load {os.getloadavg()[0]:.1f}")
