"""pit start, pit daemon, pit stop: the embedded daemon (notarize + run, in a loop)."""

from __future__ import annotations

import os
import sys
import time

from pit import ops
from pit.commands.common import CliError, daemon_pid, find_pit, is_daemon, pid_file
from pit.commands.run import run_all

STOP_WAIT = 10.0        # seconds pit stop waits for the daemon to end (after its current run)


def arguments(cmd) -> None:
    for name, func, text in (("start", run_start, "start the embedded daemon (notarize + run, in a loop)"),
                             ("daemon", run_daemon, "the embedded daemon, in the foreground")):
        sp = cmd(name, func, text, [f"pit {name}"])
        sp.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    cmd("stop", run_stop, "stop the embedded daemon", ["pit stop"])


def run_daemon(args) -> int:
    """The embedded daemon in the foreground (what 'pit start' runs)."""
    import signal
    pit = find_pit(args.pit).not_a_replica()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    new = pit.incoming / "new"
    while not stop:
        if any(new.iterdir()):
            decisions = ops.notary(pit).run_maildir()
            if any(d.accepted for d in decisions):
                run_all(pit, say=lambda line: print(line, flush=True))
        for _ in range(int(args.interval * 10)):
            if stop:
                break
            time.sleep(0.1)
    return 0


def run_start(args) -> int:
    import subprocess
    pit = find_pit(args.pit).not_a_replica()
    pidfile = pid_file(pit)
    running = daemon_pid(pit)
    if running:
        raise CliError(f"the daemon is already running (pid {running})")
    log = open(pit.root / "daemon.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pit.cli", "--pit", str(pit.root.resolve()),
                             "daemon", "--interval", str(args.interval)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    print(f"daemon started: pid {proc.pid}, log {pit.root / 'daemon.log'}")
    return 0


def run_stop(args) -> int:
    import signal
    pit = find_pit(args.pit)
    pidfile = pid_file(pit)
    if not pidfile.exists():
        raise CliError("the daemon is not running (no pit.pid)")
    pid = daemon_pid(pit)
    if pid is None:
        was = pidfile.read_text().strip()
        pidfile.unlink()
        raise CliError(f"the daemon is not running (pid {was} of pit.pid has ended; "
                       "pit.pid removed)")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while is_daemon(pid, pit):
        _reap(pid)
        if time.monotonic() > deadline:
            raise CliError(f"the daemon (pid {pid}) has not ended after {STOP_WAIT:g} s (it "
                           "ends once its current run is done): pit stop again later, or kill it")
        time.sleep(0.1)
    _reap(pid)
    pidfile.unlink()
    print(f"daemon stopped (pid {pid})")
    return 0


def _reap(pid: int) -> None:
    """Collect the daemon's exit when it is our child (pit start in the same process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
