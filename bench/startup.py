"""Start-up of the incremental run, tree against tree.

    python -m bench.startup PIT TREE [TREE ...] [--runs 30]

CPU time (user + system, both processes) of ``pit replay specialist ACME |
pit-specialist ACME`` over a copy of the pit PIT, for each code TREE (a
checkout: its pit/, filters/ and moderator/ are put first on PYTHONPATH;
compile it first, ``python -m compileall -q pit filters moderator``, as
`make install` does), runs interleaved, min and median.  What
docs/pit-book.md ("Start-up") weighs the command line's start-up choices
with.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile


def run(tree: str, pit: str) -> float:
    env = {**os.environ, "PYTHONPATH": tree}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    a = subprocess.Popen([sys.executable, "-m", "pit.cli", "--pit", pit, "replay", "specialist",
                          "ACME"], stdout=subprocess.PIPE, env=env, cwd="/")
    b = subprocess.Popen([sys.executable, "-m", "filters.specialist", "ACME"], stdin=a.stdout,
                         stdout=subprocess.DEVNULL, env=env, cwd="/")
    a.stdout.close()
    b.wait()
    a.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pit")
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        pit = shutil.copytree(args.pit, os.path.join(tmp, "pit"), symlinks=True)
        times = {t: [] for t in args.trees}
        for t in args.trees:
            run(t, pit)                     # once, untimed
        for _ in range(args.runs):
            for t in args.trees:
                times[t].append(run(t, pit))
    for t, v in times.items():
        print(f"{t}: min {min(v):.1f} ms, median {statistics.median(v):.1f} ms CPU "
              f"({len(v)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
