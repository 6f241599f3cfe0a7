"""The first five minutes: what the README and the demo tell a newcomer to
type works as typed, in a new shell whose PATH knows nothing of the
checkout's .venv, and nothing is left running afterwards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pit import agents

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")]

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# lines a test cannot run: an interactive mail reader or viewer, other hosts,
# a Mailman installation, and every make target but the demo (the test
# suite, the benchmarks, the long runs)
SKIP = re.compile(r"^(mutt |xdg-open |make (?!demo\b)|\w+=\S+ make |pit mailman |pit mirror pit-host:)")


def readme_lines() -> list[str]:
    """The README's command lines, block by block, in order (indented by
    four spaces after a blank line), without comments."""
    lines, in_block, prev_blank = [], False, True
    for raw in (REPO / "README.md").read_text().splitlines():
        if raw.startswith("    ") and (in_block or prev_blank):
            in_block = True
            line = re.sub(r"\s+# .*$", "", raw[4:]).rstrip()
            if line:
                lines.append(line)
        elif raw.strip():
            in_block = False
        prev_blank = not raw.strip()
    return lines


def fresh_shell(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """bash -e in *cwd* with a PATH without the checkout's .venv and a HOME of its own."""
    path = ":".join(p for p in os.environ["PATH"].split(":")
                    if p and Path(p).resolve() != VENV_BIN.resolve())
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb"}
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def tmp_path():
    """A short temporary directory: gpg-agent's socket path under a GnuPG
    home in it must fit a unix socket's 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pit-nc-"))
    yield path
    agents.stop(agents.running([path]))
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch(tmp_path):
    """A directory standing for the checkout: its files and .venv are this
    one's (links), what the README's lines make is its own."""
    work = tmp_path / "co"
    work.mkdir()
    (work / ".venv").symlink_to(VENV_BIN.parent)
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout
    for top in sorted({line.split("/", 1)[0] for line in tracked.splitlines()}):
        if not top.startswith(".") and (REPO / top).exists():
            (work / top).symlink_to(REPO / top)
    return work


def test_pit_is_not_on_a_fresh_path(scratch, tmp_path):
    """What a newcomer met: after the demo, bare `pit` was not found."""
    proc = fresh_shell("pit --help", scratch, tmp_path)
    assert proc.returncode == 127 and "pit: command not found" in proc.stderr


def test_readme_as_typed(scratch, tmp_path):
    """Every README line after `make demo` (the demo itself with a smaller
    burst), in one new shell, as typed."""
    script = []
    for line in readme_lines():
        if SKIP.match(line):
            continue
        if line.startswith("make demo"):
            # a smaller burst, still past the records the README's --at lines name
            line = f"{sys.executable} -m pit.demo demo-pit --orders 560 > demo.out"
        elif re.search(r"\| grep [^|]*$", line):
            line += " || [ $? -eq 1 ]"         # grep finding nothing is an answer, not an error
        script.append(line)
    assert ". .venv/bin/activate" in script
    assert any(l.startswith("pit order buy 100 ACME") for l in script)
    proc = fresh_shell("\n".join(script), scratch, tmp_path)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "12.50" in proc.stdout                      # alice's bid in her own pit's book
    assert "pit-alice" not in proc.stderr
    left = agents.running([tmp_path])
    assert not left, f"gpg-agents left running: {left}"


def test_demo_try_lines_as_typed(scratch, tmp_path):
    """The demo's closing "Try:" lines, typed in a new shell after it."""
    demo = subprocess.run([".venv/bin/python", "-m", "pit.demo", "demo-pit", "--orders", "60"],
                          cwd=scratch, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:]
    tries = demo.stdout.split("Try:\n", 1)[1].splitlines()
    lines = [l.strip() for l in tries if l.strip() and not re.match(r"\s*(mutt|less|xdg-open) ", l)]
    assert lines[0] == ". .venv/bin/activate", lines
    proc = fresh_shell("\n".join(lines), scratch, tmp_path)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "ACME (USD)" in proc.stdout and "verified" in proc.stdout
    assert not agents.running([tmp_path])


def test_sysdeps_waits_for_the_dpkg_lock(tmp_path):
    """scripts/sysdeps.sh asks apt-get to wait for a held lock (a stand-in
    apt-get records how it was called; no package is installed)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "apt.log"
    (bin_ / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    (bin_ / "apt-get").chmod(0o755)
    (bin_ / "sudo").write_text("#!/bin/sh\nexec \"$@\"\n")
    (bin_ / "sudo").chmod(0o755)
    # an MTA is there already (so Postfix is not installed: no debconf, no policy-rc.d)
    (bin_ / "dpkg-query").write_text("#!/bin/sh\necho 'install ok installed mail-transport-agent'\n")
    (bin_ / "dpkg-query").chmod(0o755)
    for tool in ("id", "echo", "grep"):
        found = shutil.which(tool)
        if found:
            (bin_ / tool).symlink_to(found)
    proc = subprocess.run(["/bin/sh", str(REPO / "scripts" / "sysdeps.sh")],
                          env={"PATH": str(bin_)}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and all("-o DPkg::Lock::Timeout=300" in c for c in calls), calls
