"""One tree's matching core against another's, on the same stream.

    python bench/ab/core_trees.py RUNS N TREE...

Each run starts one process per tree (in turn, the trees interleaved) that
imports that tree's pit.book and times, by CPU, Engine.run over N messages of
this tree's bench.streams.make_stream (seed 1; built in the child with that
tree's constants, which the batch loop tests by identity; chunks of 10,000,
events drained: bench.core's bench_batch) after one untimed run, then one call per
message with gc paused (bench_single); prints min / median per tree and
the load average.  The stream and the timing loop are the same for every
tree, so only pit.book differs.  Figures: docs/pit-book.md, "Figures".
"""
import os
import subprocess
import sys

CHILD = r"""
import gc, sys, time, importlib.util
sys.path.insert(0, sys.argv[1])
import pit.book as book
assert book.__file__.startswith(sys.argv[1]), book.__file__
spec = importlib.util.spec_from_file_location("streams", sys.argv[2])
streams = importlib.util.module_from_spec(spec)
spec.loader.exec_module(streams)     # its constants are this tree's pit.book's
stream = streams.make_stream(int(sys.argv[3]), 1)
Engine = book.Engine
def batch():
    eng = Engine(); eng.add_book("ACME"); ev = eng.events
    chunks = [stream[i:i + 10000] for i in range(0, len(stream), 10000)]
    t = time.process_time()
    for c in chunks:
        eng.run(c); del ev[:]
    return time.process_time() - t
def single():
    eng = Engine(); eng.add_book("ACME"); ev = eng.events
    table = {book.NEW: eng.new, book.CANCEL: eng.cancel}
    calls = [(table.get(m[0], eng.modify), m[1:]) for m in stream]
    chunks = [calls[i:i + 10000] for i in range(0, len(calls), 10000)]
    gc.disable()
    t = time.process_time()
    for c in chunks:
        for f, a in c:
            f(*a)
        del ev[:]
    t = time.process_time() - t
    gc.enable()
    return t
batch()
print(batch(), single())
"""


def main():
    runs, n, trees = int(sys.argv[1]), int(sys.argv[2]), [os.path.abspath(t) for t in sys.argv[3:]]
    streams = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "streams.py")
    if True:
        res = {t: ([], []) for t in trees}
        for _ in range(runs):
            for t in trees:
                out = subprocess.run([sys.executable, "-c", CHILD, t, streams, str(n)], check=True,
                                     capture_output=True, text=True,
                                     env=dict(os.environ, PYTHONHASHSEED="0")).stdout
                b, s = map(float, out.split())
                res[t][0].append(b)
                res[t][1].append(s)
                print(f"{t}: batch {n / b:,.0f} single {n / s:,.0f} msg/s  load "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
    for t, (b, s) in res.items():
        b.sort()
        s.sort()
        print(f"{t}: batch min/median {n / b[0]:,.0f} / {n / b[len(b) // 2]:,.0f} msg/s; "
              f"single {n / s[0]:,.0f} / {n / s[len(s) // 2]:,.0f}")


if __name__ == "__main__":
    main()
