"""Crash safety with a real SIGKILL: nothing an append reported done is lost,
and whatever a killed writer left half-done ends in quarantine."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pit.archive import CRASH_ENV, Archive

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 10

# Appends batches of 1..12 records forever, printing each batch's last seq
# (flushed) only after append returned.
WRITER = textwrap.dedent("""
    import random, sys
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from pit import archive
    from test_archive import record
    arch = archive.Archive(sys.argv[2], volume_limit=int(sys.argv[3]))
    rnd = random.Random(int(sys.argv[4]))
    print("ready", flush=True)
    while True:
        with arch.writer() as w:
            seq, prev, batch = w.last_seq, w.last_hash, []
            for _ in range(rnd.randint(1, 12)):
                seq += 1
                m = record(seq, prev, body=b"From: t\\n\\n" + b"x" * rnd.randint(0, 3000) + b"\\n")
                batch.append((m, "notary@demo", seq))
                prev = archive.record_hash(m)
            last = w.append(batch)
        print(last, flush=True)
""")


def start(pit, seed, env=None):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(pit), str(LIMIT),
                             str(seed)], stdout=subprocess.PIPE, env=env)


def reported(proc):
    out = [w for w in proc.stdout.read().split() if w != b"ready"]
    proc.stdout.close()
    return int(out[-1]) if out else 0


def uncommitted_bytes(pit):
    """Bytes on disk that the index does not cover (what must go to quarantine)."""
    d = pit / "archives"
    arch = Archive(pit, volume_limit=LIMIT)
    vols = {v.name: v.bytes for v in arch.volumes()}
    return sum((d / n).stat().st_size - vols.get(n, 0) for n in arch._volume_files())


def quarantined_bytes(pit):
    q = pit / "archives" / "quarantine"
    return sum(p.stat().st_size for p in q.iterdir()) if q.exists() else 0


def verify(pit, done, use_repair):
    torn = uncommitted_bytes(pit)
    before = quarantined_bytes(pit)
    arch = Archive(pit, volume_limit=LIMIT)
    if use_repair:
        arch.repair()
    else:
        with arch.writer():              # the next writer repairs on its own
            pass
    assert quarantined_bytes(pit) - before == torn
    assert arch.check() == []
    seqs = [s for s, _ in arch.read()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= done             # every reported seq is there
    for v in arch.volumes():
        assert v.count <= LIMIT
    return len(seqs)


@pytest.mark.parametrize("step", ["after-dotlock", "after-lock", "mid-write", "after-rollover-create",
                                  "after-data-fsync", "after-index-temp",
                                  "after-index-rename"])
def test_kill_at_each_write_step(tmp_path, step):
    for round_ in range(2):
        proc = start(tmp_path, round_, env={**os.environ, CRASH_ENV: step})
        assert proc.wait(timeout=30) == -signal.SIGKILL
        verify(tmp_path, reported(proc), use_repair=round_ == 0)


def test_kill_at_random_moments(tmp_path):
    rnd = random.Random(20261122)
    done = 0
    for i in range(30):
        proc = start(tmp_path, i)
        assert proc.stdout.readline() == b"ready\n"   # interpreter start-up is not the test
        time.sleep(rnd.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reported_now = reported(proc)
        assert reported_now >= done or reported_now == 0
        done = max(done, reported_now)
        done = max(done, verify(tmp_path, reported_now, use_repair=i % 2 == 0))
    assert done > 10                     # the writer got real work done between kills
