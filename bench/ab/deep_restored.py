"""The deep book placed order by order against the same book read back from
its checkpoint (laid out level by level in memory, as a specialist run has it):

    python bench/ab/deep_restored.py N R

Engine.run over N messages of the default stream (chunks of 10,000, CPU
seconds) on R orders resting (bench.streams.resting_orders), three runs of
each, interleaved; prints each run, then min / median.  The two give the same
events (counted here).  Figures: docs/pit-book.md, "The deep book and the
modify-heavy flow".
"""
import sys, time
from bench.streams import make_stream
from bench.core import shifted, deep_engine
n, r = int(sys.argv[1]), int(sys.argv[2])
s = shifted(make_stream(n, 1), r)
def eng_of(v):
    return deep_engine(r, restored=v == "restored")
def one(v):
    eng = eng_of(v); ev = eng.events
    chunks = [s[i:i+10000] for i in range(0, n, 10000)]
    out = []
    t = time.process_time()
    for c in chunks:
        eng.run(c); out.append(len(ev)); del ev[:]
    return time.process_time() - t, sum(out)
res = {}
for _ in range(3):
    for v in ("run", "restored"):
        t, e = one(v)
        res.setdefault(v, []).append(t); print(v, f"{n/t:,.0f}", e, flush=True)
for v, ts in res.items():
    ts.sort(); print(f"{v}: {n / ts[0]:,.0f} / {n / ts[1]:,.0f} msg/s")
