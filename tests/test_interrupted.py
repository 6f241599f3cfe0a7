"""A test run stopped by SIGTERM (a CI job's time limit, ``timeout``,
``kill``) stops what its tests started, as Ctrl-C does: the fixtures'
teardown runs.  Before, SIGTERM ended pytest at once and left the
gpg-agents of the running test's homes behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pit import agents
from pit.keyring import Keyring

HERE = Path(__file__).resolve().parent
PROBE = "PIT_SIGTERM_PROBE"


@pytest.mark.skipif(PROBE not in os.environ, reason="run by the test below, in its own pytest")
def test_probe_holds_an_agent_until_stopped(tmp_path):
    Keyring(tmp_path / "h").generate("probe", "probe@pit.test")     # gpg starts an agent
    Path(os.environ[PROBE]).write_text(str(tmp_path))
    time.sleep(120)


def _stopped_by_sigterm(cmd: list[str], started, env=None) -> tuple[int, str]:
    """Run *cmd*, send it SIGTERM once ``started()`` is true; its exit
    status and output."""
    run = subprocess.Popen(cmd, cwd=HERE.parent, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not started():
            assert run.poll() is None, run.stdout.read().decode()
            assert time.monotonic() < deadline, f"{cmd[2]} did not start"
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=60)[0].decode()
        return run.returncode, out
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def _no_agent_left(home: Path, out: str) -> None:
    left = agents.running([home])
    agents.stop(left)
    assert not left, f"left running after SIGTERM: {left}\n{out}"


def test_a_run_stopped_by_sigterm_stops_the_agents_of_its_tests(tmp_path):
    marker = tmp_path / "probe-home"
    status, out = _stopped_by_sigterm(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'inner'}",
         f"{HERE / 'test_interrupted.py'}::test_probe_holds_an_agent_until_stopped"],
        lambda: marker.exists() and agents.running([Path(marker.read_text())]),
        env={**os.environ, PROBE: str(marker)})
    _no_agent_left(Path(marker.read_text()), out)
    assert status != 0


def test_the_demo_stopped_by_sigterm_stops_its_agents(tmp_path):
    root = tmp_path / "demo"
    status, out = _stopped_by_sigterm([sys.executable, "-m", "pit.demo", str(root)],
                                      lambda: agents.running([root]))
    _no_agent_left(root, out)
    assert status == 128 + signal.SIGTERM
