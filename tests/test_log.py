"""The archive as a verifiable log (RFC 9162): the audit never crashes and
always names the record; signed tree heads in the seals; inclusion proofs a
person checks with stock tools; replicas that remember the newest head they
verified and hold no secrets."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pit import cli, ops
from pit.audit import audit

from conftest import copy_of_traded, traded_pit

DATA = Path(__file__).parent / "data"
needs_rsync = pytest.mark.skipif(not shutil.which("rsync"), reason="rsync: make install")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small traded pit: orders, filter reports and checkpoints, seals."""
    return traded_pit(tmp_path_factory.mktemp("log"))


@pytest.fixture
def pit(template, tmp_path):
    return copy_of_traded(template, tmp_path)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def volume(p) -> Path:
    return (p if isinstance(p, Path) else Path(p.root)) / "archives" / "000001.mbox"


def entry_starts(data: bytes) -> list[int]:
    return [0] + [m.start() + 1 for m in re.finditer(rb"\nFrom ", data)]


def write_index(root: Path, data: bytes, count: int) -> None:
    """Make archives/index agree with a one-volume archive, as a forger would."""
    (root / "archives" / "index").write_text(
        f"# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n000001.mbox 1 {count} {count} {len(data)}\n")


# -- reproductions ---------------------------------------------------------------

def test_a_non_utf8_byte_in_a_stamp_line_fails_naming_the_record(pit):
    data = bytearray(volume(pit).read_bytes())
    i = data.index(b"X-Pit-Account: alice")
    seq = data[:i].count(b"\nX-Pit-Seq: ") + (1 if data.startswith(b"X-Pit-Seq") else 0)
    data[i + 16] = 0xFF
    volume(pit).write_bytes(bytes(data))
    r = audit(pit.root)
    assert not r.ok
    assert r.problem.startswith(f"record {seq}:"), r.problem


def test_a_changed_separator_line_is_detected_and_located(pit):
    data = bytearray(volume(pit).read_bytes())
    starts = entry_starts(bytes(data))
    data[starts[5] + 20] ^= 0x01                  # the date of record 6's "From " line
    volume(pit).write_bytes(bytes(data))
    r = audit(pit.root)
    assert not r.ok
    assert r.problem.startswith("record 6:"), r.problem


def test_truncation_at_a_seal_boundary_with_a_rewritten_index_fails(pit, capsys):
    code, out, _ = run(capsys, "audit", pit.root)
    assert code == 0, out
    data = volume(pit).read_bytes()
    starts = entry_starts(data)
    seals = [i for i, s in enumerate(starts) if b"\nX-Pit-Kind: seal\n" in data[s:s + 400]]
    keep = seals[-2] + 1                          # drop the last batch, seal and all
    cut = data[:starts[keep]]
    volume(pit).write_bytes(cut)
    write_index(pit.root, cut, keep)
    code, out, _ = run(capsys, "audit", pit.root)
    assert code == 1, out
    assert f"records {keep + 1}-{len(starts)}" in out and "lost" in out, out


@pytest.mark.parametrize("how", ["empty", "no-index", "missing"])
def test_an_empty_or_missing_archive_fails(tmp_path, capsys, how):
    if how != "missing":
        (tmp_path / "archives").mkdir()
    else:
        (tmp_path / "pit.conf").write_text("[pit]\nname = demo\n")   # a pit without its archive
    if how == "empty":
        (tmp_path / "archives" / "index").write_text("# VOLUME FIRST-SEQ LAST-SEQ COUNT BYTES\n")
    code, out, err = run(capsys, "audit", tmp_path)
    assert code == 1, out + err
    assert "RESULT: FAIL" in out


def test_a_directory_that_is_not_a_pit_is_not_audited(tmp_path, capsys):
    """Nothing of a pit there at all: pit(1)'s 'not a pit', exit 3 (it was 1)."""
    code, out, err = run(capsys, "audit", tmp_path)
    assert code == 3 and out == "" and "not a pit" in err


def _ssh_shim(tmp_path: Path) -> Path:
    """An RSYNC_RSH that runs the remote side on this host (no ssh server)."""
    shim = tmp_path / "local-rsh"
    shim.write_text('#!/bin/sh\n# rsh HOST COMMAND...: run COMMAND here\nshift\nexec "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return shim


def _secrets_in(root: Path) -> list[str]:
    found = []
    for p in root.rglob("*"):
        if p.is_file():
            text = p.read_bytes()
            if (p.name in ("pit.conf", "private-keys-v1.d") or "private-keys-v1.d" in p.parts
                    or b"PRIVATE KEY" in text or b"mailman_secret" in text or p.suffix == ".key"):
                found.append(str(p.relative_to(root)))
    return found


@needs_rsync
def test_mirror_from_host_path_copies_no_secret_and_compares(pit, tmp_path, capsys, monkeypatch):
    pit.set(mailman_secret="s3cret-approval")
    assert _secrets_in(pit.root), "the source pit should hold secrets"
    monkeypatch.setenv("RSYNC_RSH", str(_ssh_shim(tmp_path)))
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", f"notaryhost:{pit.root}", replica)
    assert code == 0, out + err
    assert _secrets_in(replica) == []
    assert sorted(p.name for p in (replica / "archives").iterdir()) == ["000001.mbox", "index"]
    assert "identical" in out
    # the comparison is real: a replica byte changed is found
    data = bytearray(volume(replica).read_bytes())
    data[-10] ^= 1
    volume(replica).write_bytes(bytes(data))
    from pit import mirror
    assert mirror.compare(f"notaryhost:{pit.root}", replica) != []


@needs_rsync
def test_mirror_of_a_pit_whose_notary_appends_meanwhile_is_not_called_different(pit, tmp_path,
                                                                               capsys,
                                                                               monkeypatch):
    """The source's notary appends between the copy and the comparison (a
    busy pit: 4 mirrors in 5 said 'DIFFERS', exit 1): the replica is the
    source as of its record N, the source has grown since; exit 0.  A
    replica whose bytes do differ is still called so."""
    shims = tmp_path / "shims"
    shims.mkdir()
    real, pit_bin = shutil.which("rsync"), Path(sys.executable).with_name("pit")
    # the comparison (--dry-run --checksum) starts just after the source grew
    (shims / "rsync").write_text(
        "#!/bin/sh\ncase \" $* \" in *\" --dry-run \"*) "
        f"'{pit_bin}' --pit '{pit.root}' deposit 1.00 USD alice >/dev/null || exit 99;; esac\n"
        f"exec '{real}' \"$@\"\n")
    (shims / "rsync").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    n = int(re.search(r"log of (\d+) records checked", out).group(1))
    assert f"replica {replica} is the source as of record {n}; the source has grown since " \
           f"(now {n + 2} records: index, 000001.mbox)" in out, out
    assert "DIFFERS" not in out
    monkeypatch.setenv("PATH", os.environ["PATH"].split(":", 1)[1])
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0 and "is identical to the source" in out, out + err
    data = bytearray(volume(replica).read_bytes())
    data[100] ^= 1
    volume(replica).write_bytes(bytes(data))
    from pit import mirror
    diffs = mirror.compare(pit.root, replica)
    assert diffs == ["000001.mbox: differs from the source"]
    assert mirror.grown(pit.root, replica, diffs) is None


@needs_rsync
def test_a_refused_mirror_leaves_the_replica_conf_as_it_was(pit, tmp_path, capsys):
    """pit mirror of another pit into a replica: refused (its genesis names
    another notary), the verified archive put back, and replica.conf too
    (it used to keep the other pit's name, operator and source)."""
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    conf = (replica / "replica.conf").read_bytes()
    other = ops.init(tmp_path / "other", "other")
    try:
        code, out, err = run(capsys, "mirror", other.root, replica)
    finally:
        from pit import agents
        agents.stop(agents.running([other.root]))
    assert code == 1 and "log check FAILED: the replica keeps the copy it verified" in out, out
    assert (replica / "replica.conf").read_bytes() == conf
    code, out, err = run(capsys, "audit", replica)
    assert code == 0, out


@needs_rsync
def test_a_replica_takes_no_order_and_runs_no_filter(pit, tmp_path, capsys):
    """A replica holds the archive and public material only: pit order
    (sent to its maildir), pit run and pit start say so, exit 3, as pit
    notarize and pit order --notarize do; they used to fail with a
    traceback (FileNotFoundError: incoming/tmp), to make a filter's secret
    key in the replica before failing, and to start a daemon that died at
    once (pit start said 'daemon started', exit 0)."""
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    home = pit.keys["alice"][0].home
    for argv in (["order", "buy", "1", "ACME", "at", "12.00", "--account", "alice",
                  "--gnupghome", home],
                 ["order", "buy", "1", "ACME", "at", "12.00", "--account", "alice",
                  "--gnupghome", home, "--notarize"],
                 ["run"], ["run", "specialist", "ACME"], ["notarize"], ["start"], ["daemon"]):
        code, out, err = run(capsys, "--pit", replica, *argv)
        assert (code, out) == (3, ""), (argv, code, out, err)
        assert err == f"pit {argv[0]}: {replica}: a replica (replica.conf): only the pit's " \
                      "notary writes its log\n", (argv, err)
    assert not (replica / "incoming").exists() and not (replica / "filters.gnupg").exists()
    assert not (replica / "pit.pid").exists() and not (replica / "daemon.log").exists()


@needs_rsync
def test_a_replica_is_a_pit_for_search_replay_and_book(pit, tmp_path, capsys):
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    code, out, err = run(capsys, "--pit", replica, "replay", "specialist", "ACME")
    assert code == 0, err
    assert "not a pit" not in err
    code, out, err = run(capsys, "--pit", replica, "book", "ACME", "--at", "20")
    assert code == 0, err
    if shutil.which("mairix"):
        code, out, err = run(capsys, "--pit", replica, "search", "--account", "alice")
        assert code == 0, err
        assert "order" in out


# -- the log ----------------------------------------------------------------------

def test_an_archive_made_before_tree_heads_audits_as_before(tmp_path):
    """The demo archive as `python -m pit.demo` wrote it before seals carried
    tree heads (tests/data): the audit passes and says there are no heads."""
    with tarfile.open(DATA / "legacy-demo-archive.tar.gz") as t:
        t.extractall(tmp_path)
    r = audit(tmp_path)
    assert r.ok, r.problem
    assert (r.records, r.seals, r.heads, r.signatures) == (130, 19, 0, 110)
    assert r.reports == 4 and r.checkpoints == 4


def test_every_seal_is_a_signed_tree_head_over_the_records_before_it(pit):
    from pit import merkle, message, signed
    from pit.archive import Archive, record_hash
    leaves, heads = [], 0
    for seq, msg in Archive(pit.root).read():
        st = mbox_stamp(msg)
        if st["x-pit-kind"] == "seal":
            from pit.mbox import split_stamp
            seal = message.parse_seal(signed.extract(split_stamp(msg)[1]).text)
            assert seal.tree_size == seq - 1 == len(leaves)
            assert seal.root == merkle.root(leaves).hex()
            assert seal.time == st["x-pit-time"]
            heads += 1
        leaves.append(merkle.leaf_hash(bytes.fromhex(record_hash(msg))))
    r = audit(pit.root)
    assert r.ok and r.heads == heads == r.seals
    assert r.tree_root == merkle.root(leaves).hex()


def mbox_stamp(msg):
    from pit.mbox import stamp
    return stamp(msg)


# -- inclusion proofs ---------------------------------------------------------------

AWK_RECORD = r'''
  /^From / { if (hit) exit; rec = ""; next }
  { rec = rec $0 "\n" }
  $0 == want { hit = 1 }
  END { if (hit) printf "%s", substr(rec, 1, length(rec) - 1) }'''


def _take_record(root: Path, seq: int, out: Path) -> None:
    """docs/verifying.md step 1, as a person runs it: awk and sed."""
    vols = sorted(str(p) for p in (root / "archives").glob("*.mbox"))
    cmd = (f"awk -v want='X-Pit-Seq: {seq}' '{AWK_RECORD}' {' '.join(vols)} "
           f"| sed 's/^>\\(>*From \\)/\\1/' > {out}")
    subprocess.run(["sh", "-c", cmd], check=True)


@pytest.mark.parametrize("seq", [1, 7, 20])
def test_an_inclusion_proof_checks_with_sha256sum_xxd_and_gpg_alone(pit, tmp_path, capsys, seq):
    code, proof, err = run(capsys, "--pit", pit.root, "verify", seq, "--proof")
    assert code == 0, err
    (tmp_path / "proof.txt").write_text(proof)
    _take_record(pit.root, seq, tmp_path / "record.eml")
    key = subprocess.run(["gpg", "--homedir", str(pit.gnupg), "--export", pit.notary],
                         capture_output=True, check=True).stdout
    (tmp_path / "notary.gpg").write_bytes(key)
    script = Path(__file__).parent.parent / "scripts" / "check-inclusion.sh"
    p = subprocess.run(["sh", str(script), "proof.txt", "record.eml", "notary.gpg"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "proven" in p.stdout
    # one byte of the record, of the path or of the signed root changed: refused
    def flip(data: bytes, at: int) -> bytes:
        return data[:at] + (b"1" if data[at:at + 1] != b"1" else b"2") + data[at + 1:]
    text = proof.encode()
    edits = [("record.eml", lambda b: flip(b, b.index(b"X-Pit-Time: ") + 30)),
             ("proof.txt", lambda b: flip(b, b.index(b"\nRoot: ") + 10))]
    if re.search(rb"\n(left|right) ", text):
        edits.append(("proof.txt", lambda b: flip(b, re.search(rb"\n(left|right) ", b).end() + 3)))
    for where, edit in edits:
        orig = (tmp_path / where).read_bytes()
        (tmp_path / where).write_bytes(edit(orig))
        p = subprocess.run(["sh", str(script), "proof.txt", "record.eml", "notary.gpg"],
                           cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode != 0, (where, p.stdout)
        (tmp_path / where).write_bytes(orig)


def test_verify_json_carries_the_proof_and_it_verifies(pit, capsys):
    import json
    from pit import merkle
    code, out, err = run(capsys, "--pit", pit.root, "verify", 9, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["verified"] and d["record"] == 9 and d["leaf_index"] == 8
    path = [bytes.fromhex(p["hash"]) for p in d["path"]]
    assert merkle.verify_inclusion(8, d["tree_size"], bytes.fromhex(d["leaf_hash"]), path,
                                   bytes.fromhex(d["root"]))
    assert f"Root: {d['root']}" in d["head"] and "BEGIN PGP SIGNATURE" in d["head"]


# -- replicas that remember ------------------------------------------------------------

def _cut_at_seal(root: Path, nth_from_end: int) -> int:
    """Cut the archive after its nth-from-last seal, index rewritten; the
    number of records kept."""
    data = volume(root).read_bytes()
    starts = entry_starts(data)
    seals = [i for i, s in enumerate(starts) if b"\nX-Pit-Kind: seal\n" in data[s:s + 400]]
    keep = seals[-nth_from_end] + 1
    cut = data[:starts[keep]]
    volume(root).write_bytes(cut)
    write_index(root, cut, keep)
    return keep


@needs_rsync
def test_a_replica_that_saw_a_head_fails_a_later_archive_inconsistent_with_it(pit, tmp_path, capsys):
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    assert "remembered as this replica's first verified head" in out
    conf = (replica / "replica.conf").read_text()
    assert f"notary = {pit.notary}" in conf and "[verified]" in conf and "frontier = " in conf
    seen = int(re.search(r"\nsize = (\d+)", conf).group(1))
    # the source grows: the replica follows, by a consistency proof
    assert ops.operator_request(pit, "Deposit", "1.00 USD to alice").accepted
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    assert f"consistency proof {seen} -> " in out
    # the notary's host rewrites history from an older seal on, re-signed
    # with the notary's own key: valid by itself, inconsistent with the head
    keep = _cut_at_seal(pit.root, 3)
    for code_ in ("XAA", "XAB", "XAC", "XAD"):
        assert ops.operator_request(pit, "Currency", f"{code_} 0.01").accepted
    assert audit(pit.root).ok                           # no audit alone can tell
    before = volume(replica).read_bytes()
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 1, out
    assert "history was rewritten" in out, out
    first = int(re.search(r"records? (\d+)(?:-(\d+))? differ", out).group(1))
    assert first <= keep + 1
    # the replica kept what it verified, and says exactly where the new copy departs
    assert f"record {keep + 1} is the first that differs from the verified copy" in out
    assert volume(replica).read_bytes() == before
    refused = [p for p in replica.iterdir() if p.name.startswith("refused-")]
    assert len(refused) == 1 and (refused[0] / "archives" / "index").exists()
    code, out, err = run(capsys, "audit", replica)
    assert code == 0, out
    # cut short at a seal, index rewritten: the records lost are named
    replica2 = tmp_path / "replica2"
    code, out, err = run(capsys, "mirror", pit.root, replica2)
    assert code == 0, out + err
    total = len(entry_starts(volume(pit).read_bytes()))
    keep = _cut_at_seal(pit.root, 2)
    code, out, err = run(capsys, "mirror", pit.root, replica2)
    assert code == 1
    assert f"records {keep + 1}-{total} were lost" in out, out
    assert f"the new copy ends at record {keep}" in out
    # the head a replica remembers stays: any later audit of a copy that
    # does not extend it fails too
    shutil.copytree(pit.root / "archives", replica2 / "archives", dirs_exist_ok=True)
    code, out, err = run(capsys, "audit", replica2)
    assert code == 1 and "were lost" in out


@needs_rsync
@pytest.mark.parametrize("damage", [b"[pit\nnotary = 12AB\n", b"\xff\xfe\x00[pit]\n",
                                    b"[pit]\nname = a\n[pit]\nname = b\n"])
def test_a_damaged_replica_conf_is_one_line_naming_it_not_a_traceback(pit, tmp_path, capsys,
                                                                      damage):
    """replica.conf that does not read (no section header, not UTF-8, a
    section twice): pit audit and pit mirror say so in one line naming the
    file, exit 1, and leave the replica as it was."""
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica)
    assert code == 0, out + err
    conf = replica / "replica.conf"
    conf.write_bytes(damage)
    for argv in (["audit", replica], ["audit", replica, "--full"], ["mirror", pit.root, replica]):
        code, out, err = run(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert "PASS" not in out
        assert err.count("\n") == 1 and str(conf) in err and "damaged" in err, (argv, err)
    assert conf.read_bytes() == damage


@needs_rsync
def test_a_pinned_notary_key_is_required(pit, tmp_path, capsys):
    other = "0" * 40
    code, out, err = run(capsys, "audit", pit.root, "--notary", other)
    assert code == 1
    assert "record 1: the genesis record names another notary key" in out
    code, out, err = run(capsys, "audit", pit.root, "--notary", pit.notary)
    assert code == 0, out
    code, out, err = run(capsys, "audit", pit.root, "--notary", "12AB")
    assert code == 2 and "40 hex digits" in err
    replica = tmp_path / "replica"
    code, out, err = run(capsys, "mirror", pit.root, replica, "--notary", other)
    assert code == 1 and "another notary key" in out


@needs_rsync
def test_verify_works_on_a_replica_with_keys_from_the_archive(pit, tmp_path, capsys):
    replica = tmp_path / "replica"
    assert run(capsys, "mirror", pit.root, replica)[0] == 0
    code, out, err = run(capsys, "--pit", replica, "verify", 12)
    assert code == 0, out + err
    assert "inclusion proof of" in out and out.rstrip().endswith("verified")
    from pit.pitdir import Pit, PitError
    from moderator.notary import Notary
    with pytest.raises(PitError, match="replica"):
        Notary(replica)


@needs_rsync
def test_mirror_from_an_rsync_daemon_copies_no_secret(pit, tmp_path, capsys):
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(f"use chroot = no\npid file = {tmp_path}/rsyncd.pid\n"
                    f"uid = {os.getuid()}\ngid = {os.getgid()}\n"
                    f"[pits]\n  path = {pit.root.parent}\n  read only = yes\n")
    daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--port={port}",
                               "--address=127.0.0.1", f"--config={conf}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        replica = tmp_path / "replica"
        code, out, err = run(capsys, "mirror", f"rsync://127.0.0.1:{port}/pits/{pit.root.name}",
                             replica)
        assert code == 0, out + err
        assert "identical" in out
        assert _secrets_in(replica) == []
        assert sorted(p.name for p in (replica / "archives").iterdir()) == ["000001.mbox", "index"]
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_the_notary_starts_from_its_saved_frontier_only_when_the_seal_signed_it(pit):
    from moderator.notary import Notary
    from pit import merkle
    tree_file = pit.root / "archives" / "tree"
    saved = merkle.Frontier.from_text(tree_file.read_text())
    n = Notary(pit)
    assert n.tree.size == n.seq and saved.size == n.seq - 1     # the newest seal's tree
    root = n.tree.root()
    # a damaged or stale file is not trusted: the tree is rebuilt from the records
    for text in ("garbage", f"{saved.size} " + " ".join("00" * 32 for _ in saved.hashes),
                 "3 " + " ".join(h.hex() for h in saved.hashes[:2])):
        tree_file.write_text(text)
        assert Notary(pit).tree.root() == root
    tree_file.unlink()
    assert Notary(pit).tree.root() == root
    # and the notary goes on from it: the next seal's head is the whole tree
    assert ops.operator_request(pit, "Deposit", "1.00 USD to alice").accepted
    assert audit(pit.root).ok
    assert merkle.Frontier.from_text(tree_file.read_text()).size == Notary(pit).seq - 1


def test_a_copy_whose_state_cannot_be_written_still_audits(pit, tmp_path):
    """A read-only copy (here: the state's temporary name is taken by a
    directory, which stops root too) is audited; the result says the head
    was not remembered."""
    copy = tmp_path / "ro"
    shutil.copytree(pit.root / "archives", copy / "archives")
    (copy / "verified.conf.tmp").mkdir()
    r = audit(copy, remember=True)
    assert r.ok, r.problem
    assert "could not be remembered" in r.consistency


def test_a_key_block_without_its_end_line_fails_at_its_record(pit):
    """Found by the every-byte matrix: a key block whose END line is damaged
    made the audit loop, allocating, until the machine ran out of memory."""
    data = volume(pit).read_bytes()
    starts = entry_starts(data)
    end = data.rindex(b"-----END PGP PUBLIC KEY BLOCK-----", 0, starts[1])
    volume(pit).write_bytes(data[:end + 10] + b"X" + data[end + 11:])
    r = audit(pit.root)
    assert not r.ok and r.problem.startswith("record 1:"), r.problem


def test_a_changed_fraction_of_a_time_is_named_at_its_record_not_the_next(pit):
    """X-Pit-Time's microseconds: no check of the record itself reads them
    (the order of times still holds, the From line has whole seconds); the
    next record's X-Pit-Prev no longer chains, and the seal's list says the
    record before changed, not the link."""
    data = bytearray(volume(pit).read_bytes())
    starts = entry_starts(bytes(data))
    for seq in (1, 5, 9):
        copy = bytearray(data)
        i = copy.index(b"X-Pit-Time: ", starts[seq - 1]) + len(b"X-Pit-Time: 2026-12-06T00:00:00.12345")
        copy[i] = ord("0") if copy[i] != ord("0") else ord("1")
        volume(pit).write_bytes(bytes(copy))
        r = audit(pit.root)
        assert not r.ok and r.problem.startswith(f"record {seq}:"), r.problem
