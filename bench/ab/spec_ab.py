"""The specialist alone over a saved replay, on one core, the trees interleaved.

    python bench/ab/spec_ab.py RUNS INPUT TREE [TREE...]

INPUT: the output of `pit replay specialist ACME` (of the 1M-record pit of
``python -m bench.replay``) saved to a file.  Each TREE's code runs as
``taskset -c 0 $PIT_AB_PYTHON -m filters.specialist ACME < INPUT`` (cwd
TREE); prints its CPU (user + system, from ``wait4``), minor page faults,
peak RSS and whether the output is the same bytes as the first run's.
Figures: docs/pit-book.md, "The report spooled as it is said".
"""
import hashlib
import os
import statistics
import subprocess
import sys

runs, inp, trees = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
py = os.environ.get("PIT_AB_PYTHON", sys.executable)
res = {t: [] for t in trees}
ref = None
for i in range(runs):
    for t in trees:
        with open(inp, "rb") as f:
            b = subprocess.Popen(["taskset", "-c", "0", py, "-m", "filters.specialist", "ACME"],
                                 stdin=f, stdout=subprocess.PIPE, cwd=t)
            h = hashlib.md5()
            while d := b.stdout.read(1 << 20):
                h.update(d)
            _, st, ru = os.wait4(b.pid, 0)
        assert st == 0
        dg = h.hexdigest()
        ref = ref or dg
        cpu = ru.ru_utime + ru.ru_stime
        res[t].append(cpu)
        print(f"{t} {i}: {ru.ru_utime:.2f}+{ru.ru_stime:.2f} = {cpu:.2f} s, minflt {ru.ru_minflt}, "
              f"peak {ru.ru_maxrss // 1024} MB, output {'same' if dg == ref else 'DIFFERS'}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
for t, r in res.items():
    print(f"{t}: CPU min {min(r):.2f} s, median {statistics.median(r):.2f} s")
