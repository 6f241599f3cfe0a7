"""Nothing lost: a notary process running over a maildir of ~200 messages is
killed with SIGKILL at random moments, several times, then run to the end.
Afterwards every message is in exactly one place (archive or reject record),
none twice, the archive's sequence numbers are gapless and its hash chain and
seals intact."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moderator.notary import deliver
from pit import mbox, ops
from pit.archive import record_hash

from test_notary import check_archive, reject_field

ROOT = Path(__file__).resolve().parents[1]      # the checkout under test

RUNNER = ("import sys; from moderator.notary import Notary; "
          "Notary(sys.argv[1]).run_maildir(batch=int(sys.argv[2]))")


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def _mailbag(kit, n_good: int) -> tuple[list[bytes], list[bytes]]:
    """Distinct messages: good orders of alice and bob (some PGP/MIME),
    refusals of several kinds, and re-signed orders reusing a good order's
    ref.  Returns ``(good, bad, replays)``."""
    good, bad, replays = [], [], []
    for i in range(n_good):
        who = "alice" if i % 2 else "bob"
        side = "buy" if who == "alice" else "sell"
        good.append(kit.request(who, f"c{i}", "Order", f"{side} {1 + i % 5} ACME at 12.{i % 90:02d}",
                                mime=i % 7 == 0))
    for i in range(n_good // 6):
        bad.append(kit.request("mallory", f"m{i}", "Order", "buy 1 ACME at 1", account="alice"))
        bad.append(b"not an email %d \x00\xff" % i)
        replays.append(kit.request("alice", f"c{2 * i + 1}", "Order", f"buy {i + 1} ACME at 1"))
    return good, bad, replays


def _run(kit, batch: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(kit.root), str(batch)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing(kit, tmp_path):
    kit.pit.set(seal_every=9)
    rng = random.Random(20261122)
    good, bad, replays = _mailbag(kit, 150)
    mixed = good + bad
    rng.shuffle(mixed)
    mixed += replays          # after the orders whose refs they reuse (names sort in order)
    for i, raw in enumerate(mixed):
        deliver(kit.pit, raw, name=f"{i:05d}.crash")
    base_records = len(kit.records())
    kills = 0
    new = kit.root / "incoming" / "new"
    for attempt in range(8):
        waiting = len(os.listdir(new))
        proc = _run(kit, batch=rng.choice([5, 17, 40]))
        # kill at a random moment of the work itself, not of interpreter start-up
        deadline = time.monotonic() + 60
        while proc.poll() is None and len(os.listdir(new)) == waiting and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        proc.stderr.close()
    proc = _run(kit, batch=25)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert kills >= 3, "the notary finished before it could be killed: make the mailbag bigger"

    incoming = kit.root / "incoming"
    assert not os.listdir(incoming / "new") and not os.listdir(incoming / "cur")
    recs = check_archive(kit, tmp_path)          # gapless, chained, sealed, gpg-verified
    archived = [mbox.stamp(m)["x-pit-digest"] for _, m in recs[base_records:]
                if mbox.stamp(m)["x-pit-kind"] not in ("seal",)]
    rejected = [reject_field(m, "X-Pit-Digest") for m in kit.rejects()]
    assert len(archived) == len(set(archived)), "a message was archived twice"
    assert len(rejected) == len(set(rejected)), "a message was rejected twice"
    for raw in mixed:
        d = _digest(raw)
        assert (d in archived) + (d in rejected) == 1, f"message {d[:12]} is not in exactly one place"
    assert set(archived) | set(rejected) == {_digest(r) for r in mixed}
    # every good order was accepted (a replayed ref is bad, whatever the order)
    assert {_digest(r) for r in good} <= set(archived)
    # the chain links across the crashes
    for (_, a), (_, b) in zip(recs, recs[1:]):
        assert mbox.stamp(b)["x-pit-prev"] == record_hash(a)


@pytest.mark.parametrize("step", ["after-lock", "mid-write", "after-data-fsync",
                                  "after-index-temp", "after-index-rename",
                                  "notary-state-commit"])
def test_sigkill_at_each_archive_write_step(kit, tmp_path, step):
    """Killed at an exact step of the archive append (pit.archive's crash
    hook), or after it before the notary's state is committed
    (pit.notarystate), then rerun: every message once, the archive whole."""
    good, bad, replays = _mailbag(kit, 12)
    mixed = good + bad + replays
    for i, raw in enumerate(mixed):
        deliver(kit.pit, raw, name=f"{i:05d}.step")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PIT_ARCHIVE_CRASH_AT=step)
    p = subprocess.run([sys.executable, "-c", RUNNER, str(kit.root), "5"], env=env,
                       capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    p = subprocess.run([sys.executable, "-c", RUNNER, str(kit.root), "5"],
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    check_archive(kit, tmp_path)
    archived = [mbox.stamp(m)["x-pit-digest"] for _, m in kit.records()]
    rejected = [reject_field(m, "X-Pit-Digest") for m in kit.rejects()]
    for raw in mixed:
        d = _digest(raw)
        assert archived.count(d) + rejected.count(d) == 1, step
    assert {_digest(r) for r in good} <= set(archived)


def test_a_reject_entry_torn_by_a_kill_is_cut_and_its_message_judged_again(kit):
    """A notary killed while appending to the reject record leaves a torn
    entry (no final newline) after what the state has read.  The next
    notary cuts it, starts, and judges the message, which is still waiting,
    again (seen first in the random-kill test: 'input ends inside the entry',
    and no notary could start)."""
    first, second = (kit.request("mallory", f"t{i}", "Order", "buy 1 ACME at 1", account="alice")
                     for i in range(2))
    deliver(kit.pit, first, name="00001.torn")
    kit.notary().run_maildir()
    rejects = kit.root / "rejects" / "rejects.mbox"
    whole = rejects.read_bytes()
    with open(rejects, "ab") as f:                 # the killed append: half an entry
        f.write(whole[:len(whole) // 2].rstrip(b"\n"))
    deliver(kit.pit, second, name="00002.torn")
    kit.notary().run_maildir()
    assert rejects.read_bytes().startswith(whole)
    assert [reject_field(m, "X-Pit-Digest") for m in kit.rejects()] == \
        [_digest(first), _digest(second)]
