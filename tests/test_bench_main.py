"""make bench (bench/__main__.py) says why each benchmark that failed
failed, and goes on with the next one, unless the run itself is stopped."""

from __future__ import annotations

import signal
import sys
from types import SimpleNamespace

import pytest

import bench.__main__ as bench_main


def _benchmarks(monkeypatch, mains: dict):
    monkeypatch.setattr(bench_main.importlib, "import_module",
                        lambda name: SimpleNamespace(main=mains[name.rpartition(".")[2]]))


def _exit(code):
    def main(argv):
        sys.exit(code)
    return main


def _fault(argv):
    raise RuntimeError("Mailman's REST API did not answer within 60 s")


def test_a_failed_benchmark_says_why_and_the_next_one_runs(monkeypatch, capsys):
    ran = []
    _benchmarks(monkeypatch, {"a": _exit(3), "b": _fault, "c": _exit("bench.c: timed out"),
                              "d": lambda argv: ran.append("d") or 0})
    failed: list[str] = []
    bench_main.run(["a", "b", "c", "d"], failed)
    out = capsys.readouterr().out
    assert failed == ["a", "b", "c"] and ran == ["d"]
    assert "(bench.a: exit status 3)" in out
    assert "RuntimeError: Mailman's REST API did not answer" in out
    assert "bench.c: timed out" in out


def test_sigterm_stops_the_whole_run_and_says_so(monkeypatch, capsys):
    ran = []
    _benchmarks(monkeypatch, {"a": _exit(128 + signal.SIGTERM),
                              "b": lambda argv: ran.append("b") or 0})
    failed: list[str] = []
    with pytest.raises(SystemExit) as stopped:
        bench_main.run(["a", "b"], failed)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert failed == ["a"] and ran == []
    assert "(bench.a: stopped by SIGTERM" in capsys.readouterr().out
