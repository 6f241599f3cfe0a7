"""Where Mailman's CPU goes in `bench.postfix`: each runner's CPU seconds.

    python bench/ab/mailman_cpu.py [N] [PAIRS]       (defaults 200 2)

Runs ``python -m bench.postfix N PAIRS 1`` in a process of its own (the
tree it is run from) and, every 0.25 s while it runs, reads the CPU time
(utime + stime, /proc/PID/stat) of every Mailman runner process
(``--runner=NAME:`` in its command line).  Prints the bench's own lines,
then each runner's CPU seconds over the run, their sum, and the load
average before and after.  Figures: docs/pit-book.md, "Order to trade through
Postfix and Mailman".
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

RUNNER = re.compile(rb"--runner=([a-z]+):")
TICK = os.sysconf("SC_CLK_TCK")


def runners() -> dict[int, str]:
    """pid -> runner name of the Mailman runners alive now."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    m = RUNNER.search(f.read())
            except OSError:
                continue
            if m:
                found[int(name)] = m.group(1).decode()
    return found


def cpu(pid: int) -> int | None:
    """utime + stime of *pid* in clock ticks, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def main(argv: list[str]) -> None:
    n, pairs = (argv + ["200", "2"])[:2]
    print(f"load average before: {os.getloadavg()}")
    bench = subprocess.Popen([sys.executable, "-m", "bench.postfix", n, pairs, "1"])
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    name: dict[int, str] = {}
    while bench.poll() is None:
        for pid, runner in runners().items():
            ticks = cpu(pid)
            if ticks is not None:
                name[pid] = runner
                first.setdefault(pid, ticks)
                last[pid] = ticks
        time.sleep(0.25)
    by: dict[str, float] = {}
    for pid, ticks in last.items():
        by[name[pid]] = by.get(name[pid], 0.0) + (ticks - first[pid]) / TICK
    print(f"load average after: {os.getloadavg()}")
    print(f"Mailman runners' CPU: {sum(by.values()):.2f} s in all; " +
          ", ".join(f"{k} {v:.2f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])))
    sys.exit(bench.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
