"""The deep book: is it the order dict's size or the work near the mid?

    python bench/ab/deep_book.py N R

Engine.run over N messages of the default stream (chunks of 10,000; CPU
seconds, min / median of 5, variants interleaved) on: an empty book; R
orders resting far from the mid (never reached); the same with them taken
out of the order dict; R resting around the mid (bench.streams.resting_orders).
Figures: docs/pit-book.md, "The deep book and the modify-heavy flow".
"""
import gc, time, sys
from bench.streams import make_stream, resting_orders
from bench.core import shifted
from pit.book import Engine, NEW, BUY, SELL, LIMIT
N = int(sys.argv[1]); R = int(sys.argv[2])
stream = make_stream(N, 1)
def far(n):
    for m in resting_orders(n):
        _, seq, oid, owner, t, side, kind, qty, price, stop, cap = m
        price = price - 8000 if side == BUY else price + 80000
        yield (NEW, seq, oid, owner, t, side, kind, qty, price, stop, cap)
def engine(variant):
    eng = Engine(); eng.add_book("ACME")
    if variant == "empty":
        return eng
    src = far(R) if variant.startswith("far") else resting_orders(R)
    eng.run(src); eng.events.clear()
    if variant == "far-nodict":
        eng._orders = {}
    return eng
st = shifted(stream, R)
res = {}
gc.disable()
for rep in range(5):
    for v in ("empty", "far", "far-nodict", "mid"):
        eng = engine(v)
        ev = eng.events
        chunks = [st[i:i+10000] for i in range(0, len(st), 10000)]
        t = time.process_time()
        for c in chunks:
            eng.run(c); del ev[:]
        res.setdefault(v, []).append(time.process_time() - t)
        del eng
for v, ts in res.items():
    ts.sort(); print(f"{v:12s} min {ts[0]:.3f} median {ts[2]:.3f}  = {N/ts[0]:,.0f} msg/s")
