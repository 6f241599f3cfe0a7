"""Two runs of one filter -- two specialists for one ticker (one on the
notary's host, one following a replica elsewhere), or a daemon restarted
while its last post was in flight -- must not both reach the archive: the
notary refuses a report that overlaps the filter's newest archived report
and a checkpoint that does not close it.  Through the user's path: the
real filter programs' output, signed with the filter's key, notarized."""

from __future__ import annotations

import io

from conftest import funded_pit
from pit import mbox, ops
from pit.archive import Archive
from pit.filter import run as run_filter_stream


def _output(pit, name="specialist ACME"):
    """What the specialist would post now (report, checkpoint), from where the archive says it stands."""
    cls = ops.filter_class("specialist")
    buf = io.BytesIO()
    ck, _ = ops.filter_position(pit, name)
    run_filter_stream(cls(["ACME"]), ops.replay(pit, cls(["ACME"]), checkpoint=ck), buf)
    return [m for m in mbox.iter_messages(buf.getvalue()) if not mbox.stamp(m)]


def _trade(pit, ref, price="10.00"):
    pit.send("alice", ref, "Order", f"buy 1 ACME at {price}")
    pit.send("bob", ref, "Order", f"sell 1 ACME at {price}")
    decisions = ops.notary(pit).run_maildir()
    assert len(decisions) == 2 and all(d.accepted for d in decisions), [d.reason for d in decisions]


def _trade_lines(pit):
    from pit.filter import signed_text
    lines = []
    for _, msg in Archive(pit.root).read():
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") == "report" and st.get("x-pit-account") == "specialist:ACME":
            lines += [ln for ln in signed_text(msg).split("\n") if ln.startswith("trade ")]
    return lines


def test_a_second_run_over_the_same_records_is_refused(tmp_path):
    pit = funded_pit(tmp_path)
    _trade(pit, "a1")
    first = _output(pit)                    # specialist A: report 1..n, checkpoint n
    _trade(pit, "a2")
    second = _output(pit)                   # specialist B, a moment later: report 1..n+2
    assert len(first) == len(second) == 2
    [report_a] = ops.post(pit, "specialist ACME", first[:1])
    assert report_a.accepted, report_a.reason
    report_b, checkpoint_b = ops.post(pit, "specialist ACME", second)
    assert not report_b.accepted and "overlaps report" in report_b.reason, report_b.reason
    assert not checkpoint_b.accepted and "checkpoint" in checkpoint_b.reason, checkpoint_b.reason
    [checkpoint_a] = ops.post(pit, "specialist ACME", first[1:])
    assert checkpoint_a.accepted, checkpoint_a.reason
    # the same checkpoint again (a redelivered post): refused too
    [again] = ops.post(pit, "specialist ACME", first[1:])
    assert not again.accepted
    # the next run goes on from A's checkpoint: every trade reported once
    ops.run_filter(pit, "specialist", ["ACME"])
    lines = _trade_lines(pit)
    assert len(lines) == 2 and len(set(lines)) == 2, lines
    assert ops.run_filter(pit, "specialist", ["ACME"])[1] == []      # nothing left to say
    # and the refusals are in the reject record with their reasons
    rejects = list(mbox.iter_file(pit.rejects / "rejects.mbox"))
    assert sum(b"overlaps report" in r for r in rejects) == 1


def test_a_checkpoint_rebuilt_after_a_crash_closes_its_report(tmp_path):
    pit = funded_pit(tmp_path)
    _trade(pit, "c1")
    report, checkpoint = _output(pit)
    assert ops.post(pit, "specialist ACME", [report])[0].accepted
    # killed here: the next run posts only the checkpoint, rebuilt as of the report
    flt, decisions = ops.run_filter(pit, "specialist", ["ACME"])
    assert decisions and all(d.accepted for d in decisions), [d.reason for d in decisions]
    assert len(_trade_lines(pit)) == 1


def test_a_checkpoint_that_arrives_before_its_report_is_refused(tmp_path):
    """The mail path may reorder a filter's two posts (Postfix delivers them
    in parallel; tests/test_hosts.py saw B's first checkpoint archived
    before its report, and the audit then failed: 'report differs from the
    replay, From-Seq').  A checkpoint closes a report already archived."""
    from pit.audit import audit
    pit = funded_pit(tmp_path)
    _trade(pit, "o1")
    report, checkpoint = _output(pit)
    [early] = ops.post(pit, "specialist ACME", [checkpoint])
    assert not early.accepted and "closes no report" in early.reason, early.reason
    assert ops.post(pit, "specialist ACME", [report])[0].accepted
    # the filter's next run posts the checkpoint rebuilt as of its report
    flt, decisions = ops.run_filter(pit, "specialist", ["ACME"])
    assert decisions and all(d.accepted for d in decisions), [d.reason for d in decisions]
    assert len(_trade_lines(pit)) == 1
    ops.notary(pit).seal()
    result = audit(pit.root)
    assert result.ok, result.summary()
