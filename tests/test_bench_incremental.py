"""bench.incremental's pits: a larger one grows from the largest smaller one
built (which stays as it was), a build stopped half way goes on from its
last verified chunk, and the grown pit's incremental audit passes over
the same real signed orders the smaller pit ended with."""

import gc
import hashlib

import pytest

from bench import incremental
from pit import mbox
from pit.archive import Archive

pytestmark = pytest.mark.e2e


def _files(root):
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".lock"}


def _n(root):
    return incremental._verified_conf(root / "verified-at-n.conf")[0]


def _new_mails(root, after):
    return [mbox.split_stamp(msg)[1] for _, msg in Archive(root / "pit").read(after + 1)
            if mbox.stamp(msg)["x-pit-kind"] != "seal"]


def test_a_larger_pit_grows_from_a_smaller_one_and_a_stopped_build_goes_on(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(incremental, "CHUNK", 150)
    monkeypatch.setattr(incremental, "SEAL_EVERY", 40)
    monkeypatch.setattr(incremental, "NEW_SEAL_EVERY", 7)
    gc.collect()
    gc.disable()          # what a build leaves is at rest without the cycle collector
    try:
        small = incremental.build(300, 30)
        n_small = _n(small)
        before = _files(small)
        gc.collect()
        assert _files(small) == before
    finally:
        gc.enable()
    mails = _new_mails(small, n_small)
    assert len(mails) >= 10

    # the audit of the second chunk is stopped: the build goes on from the first
    from pit import audit as audit_mod
    real, calls = audit_mod.audit, []

    def stopped(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(audit_mod, "audit", stopped)
    with pytest.raises(KeyboardInterrupt):
        incremental.build(700, 30)
    big = tmp_path / "audit-incremental-n700-new30"
    assert (big / incremental.RESUME).exists() and not (big / "built").exists()
    monkeypatch.setattr(audit_mod, "audit", real)
    assert incremental.build(700, 30) == big
    out = capsys.readouterr().out
    assert "copied audit-incremental-n300-new30" in out and "going on with" in out

    assert _files(small) == before                       # the smaller pit as it was
    n_big = _n(big)
    assert n_big >= 700 and Archive(big / "pit").last_seq() > n_big
    assert _new_mails(big, n_big) == mails               # the same signed orders, after the history
    assert len(incremental.measure(big, 1)) == 1           # its incremental audit passes
    assert f"checked after record {n_big:,}" in capsys.readouterr().out
