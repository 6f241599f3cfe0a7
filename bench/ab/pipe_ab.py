"""replay | pit-specialist ACME on one core with another pipe size and read chunk.

    python bench/ab/pipe_ab.py RUNS PIPE:CHUNK [PIPE:CHUNK...]

PIPE: the pipe's buffer in KiB that both programs set instead of
``mbox.widen_pipe``'s 1 MiB (0: leave the kernel's 64 KiB); CHUNK: the KiB
the specialist reads at a time (``iter_stream_orders``' chunk_size).  The
variants run alternately with the code of $PIT_AB_TREE (default: this
tree) over $PIT_AB_PIT (the 1M-record pit of ``python -m bench.replay``);
prints CPU and context switches of each process.  Figures: docs/pit-book.md,
"The report spooled as it is said".
"""
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
runs, cfgs = int(sys.argv[1]), sys.argv[2:]
tree = os.environ.get("PIT_AB_TREE", str(HERE))
pit = os.environ.get("PIT_AB_PIT", str(HERE / "bench" / "out" / "replay-1000000"))
py = os.environ.get("PIT_AB_PYTHON", sys.executable)


def prelude(pipe_kib: int) -> str:
    return ("import fcntl, pit.mbox as m\n"
            f"def widen(f, _n={pipe_kib * 1024}):\n"
            "    try:\n"
            "        _n and fcntl.fcntl(f.fileno(), 1031, _n)\n"
            "    except OSError:\n"
            "        pass\n"
            "m.widen_pipe = widen\n")


res = {c: [] for c in cfgs}
ref = None
for i in range(runs):
    for c in cfgs:
        p, ch = map(int, c.split(":"))
        rep = prelude(p) + ("import sys; from pit.cli import main; "
                            f"sys.exit(main(['--pit', {pit!r}, 'replay', 'specialist', 'ACME']))")
        spec = prelude(p) + ("import functools, sys\n"
                             f"m.iter_stream_orders = functools.partial(m.iter_stream_orders, chunk_size={ch * 1024})\n"
                             "from filters.specialist import main; sys.exit(main())")
        t = time.perf_counter()
        a = subprocess.Popen(["taskset", "-c", "0", py, "-c", rep], stdout=subprocess.PIPE, cwd=tree)
        b = subprocess.Popen(["taskset", "-c", "0", py, "-c", spec, "ACME"], stdin=a.stdout,
                             stdout=subprocess.PIPE, cwd=tree)
        a.stdout.close()
        h = hashlib.md5()
        while d := b.stdout.read(1 << 20):
            h.update(d)
        _, sb, rb = os.wait4(b.pid, 0)
        _, sa, ra = os.wait4(a.pid, 0)
        w = time.perf_counter() - t
        assert sa == 0 and sb == 0
        dg = h.hexdigest()
        ref = ref or dg
        cpu = ra.ru_utime + ra.ru_stime + rb.ru_utime + rb.ru_stime
        res[c].append((w, cpu))
        print(f"{c} run {i}: wall {w:.2f} s, CPU {cpu:.2f} s ({1e6 / cpu:,.0f} msg/s); replay "
              f"{ra.ru_utime:.2f}+{ra.ru_stime:.2f} s, switches {ra.ru_nvcsw} / {ra.ru_nivcsw}; specialist "
              f"{rb.ru_utime:.2f}+{rb.ru_stime:.2f} s, switches {rb.ru_nvcsw} / {rb.ru_nivcsw}; output "
              f"{'same' if dg == ref else 'DIFFERS'}; load {os.getloadavg()[0]:.1f}", flush=True)
for c, r in res.items():
    cs, ws = [x[1] for x in r], [x[0] for x in r]
    print(f"{c}: CPU min {min(cs):.2f} s, median {statistics.median(cs):.2f} s "
          f"({1e6 / min(cs):,.0f} / {1e6 / statistics.median(cs):,.0f} msg/s); "
          f"wall min {min(ws):.2f}, median {statistics.median(ws):.2f} s")
