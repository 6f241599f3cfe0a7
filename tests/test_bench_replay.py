"""`python -m bench.replay` on a small archive: it runs, and stops the
gpg-agents its pits start (the incremental step posts the specialist's
report and checkpoint through the notary, which signs)."""

import shutil
import subprocess
import sys
from pathlib import Path

from pit import agents

ROOT = Path(__file__).resolve().parent.parent
N = 300


def test_bench_replay_leaves_no_gpg_agent():
    out = ROOT / "bench" / "out"
    pits = [out / f"replay-{N}", out / f"replay-{N}-incr"]
    try:
        p = subprocess.run([sys.executable, "-m", "bench.replay", "--n", str(N), "--ckpt", "100"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "target >= 100,000" in p.stdout          # the one-core line beside its target
        assert agents.running(pits) == {}
    finally:
        agents.stop(agents.running(pits))
        for d in pits:
            shutil.rmtree(d, ignore_errors=True)
