"""replay | pit-specialist ACME on one core (taskset -c 0), the trees interleaved.

    python bench/ab/one_core.py RUNS TREE [TREE...]

Each TREE's code runs with $PIT_AB_PYTHON (cwd TREE) over $PIT_AB_PIT (the
1M-record pit of ``python -m bench.replay``); prints wall and CPU of both
processes and of each, and whether every output is the same bytes as the
first run's (msg/s counts the 1,000,000 records of that pit).  Figures: docs/pit-book.md, "The replay and the specialist on one core".
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
runs, trees = int(sys.argv[1]), sys.argv[2:]
py = os.environ.get("PIT_AB_PYTHON", sys.executable)
pit = os.environ.get("PIT_AB_PIT", str(HERE / "bench" / "out" / "replay-1000000"))
rep = f"import sys; from pit.cli import main; sys.exit(main(['--pit', {pit!r}, 'replay', 'specialist', 'ACME']))"
res = {t: [] for t in trees}
work = Path(tempfile.mkdtemp(prefix="one-core-"))
ref = work / "first.out"
for i in range(runs):
    for wt in trees:
        out = work / "run.out"
        t = time.perf_counter()
        with open(out, "wb") as f:
            a = subprocess.Popen(["taskset", "-c", "0", py, "-c", rep], stdout=subprocess.PIPE, cwd=wt)
            b = subprocess.Popen(["taskset", "-c", "0", py, "-m", "filters.specialist", "ACME"],
                                 stdin=a.stdout, stdout=f, cwd=wt)
            a.stdout.close()
            _, sb, rb = os.wait4(b.pid, 0)
            _, sa, ra = os.wait4(a.pid, 0)
        w = time.perf_counter() - t
        assert sa == 0 and sb == 0
        if not ref.exists():
            out.rename(ref)
            same = True
        else:
            same = subprocess.run(["cmp", "-s", out, ref]).returncode == 0
        cpu = ra.ru_utime + ra.ru_stime + rb.ru_utime + rb.ru_stime
        res[wt].append((w, cpu))
        print(f"{wt} run {i}: wall {w:.2f} s, cpu {cpu:.2f} s ({1e6 / cpu:,.0f} msg/s): replay "
              f"{ra.ru_utime:.2f}+{ra.ru_stime:.2f}, specialist {rb.ru_utime:.2f}+{rb.ru_stime:.2f}; "
              f"output {'same' if same else 'DIFFERS'}; load {os.getloadavg()[0]:.1f}", flush=True)
for p in work.iterdir():
    p.unlink()
work.rmdir()
for wt, r in res.items():
    ws = [x[0] for x in r]
    cs = [x[1] for x in r]
    print(f"{wt}: wall best {1e6 / min(ws):,.0f} msg/s, median {1e6 / statistics.median(ws):,.0f}; by CPU time min {min(cs):.2f} s "
          f"({1e6 / min(cs):,.0f} msg/s), median {statistics.median(cs):.2f} s "
          f"({1e6 / statistics.median(cs):,.0f} msg/s)")
