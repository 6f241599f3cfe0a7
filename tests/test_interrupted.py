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


def test_a_run_stopped_by_sigterm_stops_the_agents_of_its_tests(tmp_path):
    marker = tmp_path / "probe-home"
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'inner'}",
         f"{HERE / 'test_interrupted.py'}::test_probe_holds_an_agent_until_stopped"],
        cwd=HERE.parent, env={**os.environ, PROBE: str(marker)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert run.poll() is None, run.stdout.read().decode()
            assert time.monotonic() < deadline, "the probe did not start"
            time.sleep(0.05)
        home = Path(marker.read_text())
        assert agents.running([home]), "the probe's agent is not running"
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=60)[0].decode()
        left = agents.running([home])
        agents.stop(left)
        assert not left, f"left running after SIGTERM: {left}\n{out}"
        assert run.returncode != 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_the_demo_stopped_by_sigterm_stops_its_agents(tmp_path):
    root = tmp_path / "demo"
    run = subprocess.Popen([sys.executable, "-m", "pit.demo", str(root)], cwd=HERE.parent,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not agents.running([root]):
            assert run.poll() is None, run.stdout.read().decode()
            assert time.monotonic() < deadline, "the demo started no gpg-agent"
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=60)[0].decode()
        left = agents.running([root])
        agents.stop(left)
        assert not left, f"left running after SIGTERM: {left}\n{out}"
        assert run.returncode == 128 + signal.SIGTERM
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
