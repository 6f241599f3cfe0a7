"""The demo end to end with a small burst: the audit passes, trades happen,
and every kind of bad message is refused with its reason."""

from __future__ import annotations

import json
import shutil

import pytest

from pit import cli, query
from pit.archive import Archive
from pit.demo import MARKER, main
from pit.pitdir import Pit

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "pit"
    code = main([str(root), "--orders", "120"])
    return root, code


def test_demo_ends_in_a_passing_audit(demo):
    root, code = demo
    assert code == 0
    try:
        from pit.audit import audit
    except ImportError:
        pytest.skip("pit/audit.py is not there yet")
    assert audit(root).ok


def test_demo_leaves_no_gpg_agent(demo):
    """The pit's homes and the traders' each had an agent left running."""
    from pit import agents
    root, _ = demo
    assert not agents.running([root])


def test_demo_raises_the_rate_limit_to_fit_its_burst(tmp_path):
    """--orders 20000: five members send 4,000 orders each in a minute,
    which the default limit (1,000 a member a minute) refused half of."""
    from pit import agents, ops
    from pit.demo import Demo
    d = Demo(tmp_path / "pit", 20000)
    with agents.stopped_after([tmp_path]):
        d.pit = ops.init(d.root, "demo", **d.settings())
    assert d.pit.getint("rate_limit") >= 20000 + 100


def test_demo_trades(demo):
    root, _ = demo
    pit = Pit(root)
    trades = query.trades(pit)
    assert trades and {t["ticker"] for t in trades} <= {"ACME", "GLOBEX", "BTC"}
    assert len(query.positions(pit)) > 10


def test_each_bad_kind_is_refused_with_its_reason(demo):
    root, _ = demo
    pit = Pit(root)
    reasons = [r["reason"] for r in query.rejections(pit)]
    for expected in ("unsigned:", "bad signature", "replayed: ref bad-1 of alice",
                     "malformed request: line 4: bad quantity 'ten'", "unknown key"):
        assert any(r.startswith(expected) for r in reasons), (expected, reasons)
    lines = [r["line"] for r in query.filter_rejections(pit)]
    assert any(" erin bad-5 insufficient funds" in l for l in lines), lines


def test_demo_replaces_only_a_previous_demo(demo, tmp_path, capsys):
    root, _ = demo
    assert (root / MARKER).exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("not a demo")
    with pytest.raises(SystemExit) as e:
        main([str(other), "--orders", "10"])
    assert "not a previous demo pit" in str(e.value)
    assert (other / "keep.txt").exists()


def test_demo_leaves_a_chart_in_the_pit(demo):
    root, _ = demo
    png = root / "charts" / "ACME.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_is_the_same_bytes_each_time(demo, tmp_path, capsys):
    """pit chart from the archive, PNG and SVG, at a record and now: the
    same archive gives the same bytes (no dates, no random ids)."""
    root, _ = demo
    for name in ("a.png", "a.svg"):
        outs = []
        for i in range(2):
            out = tmp_path / f"{i}{name}"
            assert cli.main(["--pit", str(root), "chart", "ACME", "--at", "150", "-o", str(out)]) == 0
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], name
    assert b"<svg" in outs[0] and b"Date" not in outs[0]
    capsys.readouterr()
    assert cli.main(["--pit", str(root), "chart", "BTC", "--json", "-o", str(tmp_path / "b.png")]) == 0
    drawn = json.loads(capsys.readouterr().out)
    assert drawn["trades"] == len(query.trades(Pit(root), "BTC")) and drawn["at"] is None


def _on_a_terminal(argv: list[str]) -> tuple[bytes, bytes]:
    """Run the pit command with stderr on a pseudo-terminal; (stdout, stderr)."""
    import os
    import pty
    import subprocess
    import sys
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pit.cli", *argv], stdout=subprocess.PIPE,
                            stderr=slave, env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    out = proc.stdout.read()
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    proc.wait()
    os.close(master)
    return out, err


@pytest.mark.parametrize("argv, unit", [
    (["audit"], b"record"), (["replay", "specialist", "ACME", "--from-start"], b"record"),
    pytest.param(["search", "--ticker", "ACME"], b"B", marks=pytest.mark.skipif(
        shutil.which("mairix") is None, reason="needs mairix"))])
def test_long_runs_show_progress_on_a_terminal_only(demo, argv, unit):
    """On a terminal: a bar with the total and a rate (tqdm); in a pipe: nothing."""
    import subprocess
    import sys
    root, _ = demo
    argv = ["--pit", str(root), *argv]
    out, err = _on_a_terminal(argv)
    total = str(Archive(root).last_seq())
    assert unit + b"/s" in err, err[-500:]
    if unit == b"record":
        assert b"/" + total.encode() in err, err[-500:]
    else:                                  # the bytes of the volumes mairix indexes
        assert b"0.00/" in err, err[-500:]
    piped = subprocess.run([sys.executable, "-m", "pit.cli", *argv], capture_output=True)
    assert piped.stderr == b""
    if "audit" not in argv:               # the bar goes to stderr only: the same bytes out
        assert piped.stdout == out
