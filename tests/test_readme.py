"""The README's shell examples do what the text around them says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import funded_pit
from pit.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent


def readme_line(start: str) -> str:
    return next(ln.strip().partition("    #")[0].strip() for ln in README.read_text().splitlines()
                if ln.strip().startswith(start))


def test_the_pipe_example_prints_the_trades_of_an_up_to_date_pit(tmp_path):
    p = funded_pit(tmp_path)
    p.send("bob", "s1", "Order", "sell 10 ACME at 12.00")
    p.send("alice", "b1", "Order", "buy 4 ACME at 12.00")
    p.send("alice", "b2", "Order", "buy 6 ACME at 12.50")
    assert main(["--pit", str(p.root), "notarize"]) == 0
    assert main(["--pit", str(p.root), "run"]) == 0
    env = dict(os.environ, PIT_DIR=str(p.root), PATH=f"{BIN}:{os.environ['PATH']}")
    pipe = readme_line("pit replay specialist ACME --from-start |")
    out = subprocess.run(pipe, shell=True, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    trades = out.stdout.splitlines()
    assert len(trades) == 2 and all(t.startswith("trade ") for t in trades), out.stdout
    assert [t.split()[3] for t in trades] == ["4", "6"]
    # and the incremental form, as the README says, has nothing new to say
    pipe = readme_line("pit replay specialist ACME |")
    out = subprocess.run(pipe, shell=True, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout == ""
