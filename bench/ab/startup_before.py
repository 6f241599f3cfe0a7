"""The notary's start-up and peak memory, for a tree without the state snapshot.

    cd TREE && python /path/to/bench/ab/startup_before.py 100000 1000000

Run in a checkout from before pit/notarystate.py (9dfa037): each start reads
the whole archive.  The pits are bench.scale's (``python -m bench.scale
--records ... --cache $PIT_BENCH_CACHE``, named replay-N).  Three starts each:
min and median seconds, the child's VmHWM.  Figures: docs/pit-book.md,
"Records: the notary's start-up".
"""
import os
import statistics
import subprocess
import sys

CODE = ("import sys, time\nt = time.perf_counter()\nfrom moderator.notary import Notary\n"
        "n = Notary(sys.argv[1])\nn.verifier.key(n.pit.operator)\ns = time.perf_counter() - t\n"
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(s, int(hwm.split()[1]) * 1024)\n")
cache = os.environ.get("PIT_BENCH_CACHE", "bench/out")
for n in map(int, sys.argv[1:]):
    ts, ms = [], []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", CODE, f"{cache}/replay-{n}"],
                             capture_output=True, text=True, check=True).stdout.split()
        ts.append(float(out[0]))
        ms.append(int(out[1]))
    print(f"  {n:>10,} records (before): start-up min {min(ts):.2f} s, median "
          f"{statistics.median(ts):.2f} s; peak memory {max(ms) / 2**20:,.0f} MiB", flush=True)
