"""Deploying a pit on a real mail host, without the mail servers themselves:
gpg homes at any path length, the exit codes of the MTA's delivery
program, provisioning that checks every address before it changes
anything, one notary server for several pits, and the Postfix
configuration ``pit mailman postfix-config`` writes.  The same things
with a real Postfix and Mailman running are in tests/test_postfix.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import _HOMES, _stop_agents
from pit import ops
from pit.keyring import Keyring

REPO = Path(__file__).resolve().parent.parent


# -- gpg homes at any path length ------------------------------------------------

def test_a_pit_at_a_long_path_signs_and_its_agent_is_stopped(tmp_path):
    _HOMES.append(tmp_path)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(deep / "pit" / "gnupg" / "S.gpg-agent.browser")) > 108
    pit = ops.init(deep / "pit", "demo")              # makes and uses the notary's key
    assert ops.operator_request(pit, "Currency", "USD 0.01").accepted
    ring = Keyring(pit.gnupg)
    assert len(ring.gpg_home) < 100 and os.path.realpath(ring.gpg_home) == str(pit.gnupg)
    ring.stop_agent()
    _stop_agents(tmp_path)
    assert not _agents_under(tmp_path)


def test_gpg_home_is_the_path_itself_when_it_is_short(tmp_path):
    from pit.keyring import gpg_home
    assert gpg_home(tmp_path / "h") == str(tmp_path / "h")


def _agents_under(base: Path) -> list[int]:
    prefix = os.path.realpath(base) + "/"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"gpg-agent") and b"--homedir" in argv:
            home = argv[argv.index(b"--homedir") + 1].decode(errors="replace")
            if os.path.realpath(home).startswith(prefix):
                found.append(int(proc.name))
    return found
