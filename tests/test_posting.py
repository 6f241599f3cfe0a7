"""Running and posting filters: nothing is posted twice, even when a crash
separated a run's report from its checkpoint; the audit agrees throughout."""

import io

import pytest

from pit import mbox, ops
from pit.audit import audit
from pit.filter import run as run_stream

from conftest import funded_pit


@pytest.fixture
def pit(tmp_path):
    return funded_pit(tmp_path)


def reports(p, name):
    out = []
    from pit.archive import Archive
    for seq, msg in Archive(p.root).read():
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") in ("report", "checkpoint") and \
                st["x-pit-request"].rpartition(" ")[0] == name:
            out.append((st["x-pit-kind"], st["x-pit-request"].rpartition(" ")[2]))
    return out


def test_nothing_new_posts_nothing(pit):
    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    pit.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(pit).run_maildir()
    _, first = ops.run_filter(pit, "specialist", ["ACME"])
    assert [d.accepted for d in first] == [True, True]
    flt, again = ops.run_filter(pit, "specialist", ["ACME"])
    assert again == [] and flt.lines == []
    assert audit(pit.root).ok


def test_report_without_its_checkpoint_is_not_posted_again(pit):
    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    pit.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(pit).run_maildir()
    # a run whose report reached the archive, and then the crash
    from filters.specialist import Specialist
    flt = Specialist(["ACME"])
    out = io.BytesIO()
    run_stream(flt, ops.replay(pit, Specialist(["ACME"])), out)
    report = [m for m in mbox.iter_messages(out.getvalue()) if b"\nSubject: ACME report" in m]
    assert [d.accepted for d in ops.post(pit, "specialist ACME", report)] == [True]
    # more orders, then the filter runs again
    pit.send("bob", "o2", "Order", "sell 3 ACME at 12.50")
    ops.notary(pit).run_maildir()
    _, ds = ops.run_filter(pit, "specialist", ["ACME"])
    assert all(d.accepted for d in ds)
    kinds = reports(pit, "specialist ACME")
    assert [k for k, _ in kinds] == ["report", "checkpoint", "report", "checkpoint"]
    assert kinds[1][1] == kinds[0][1].rpartition("-")[2]     # the checkpoint the crash lost
    r = audit(pit.root)
    assert r.ok, r.problem
    assert r.reports == 3 and r.checkpoints == 3          # with the transfers run


def test_filter_position_is_the_same_whether_the_index_is_current_stale_or_gone(pit):
    """checkpoints/index is a cache: it changes where the scan starts, never
    the answer.  The report's To-Seq comes back only while its checkpoint is
    not archived."""
    name = "specialist ACME"
    idx = pit.checkpoints / "index"

    def positions():
        current = ops.filter_position(pit, name)
        saved = idx.read_text()
        ops.note_checkpoint(pit, name, 1, 0)            # stale: before every checkpoint
        stale = ops.filter_position(pit, name)
        idx.unlink()
        gone = ops.filter_position(pit, name)
        idx.write_text(saved)
        assert current == stale == gone, (current, stale, gone)
        return current

    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    pit.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(pit).run_maildir()
    ops.run_filter(pit, "specialist", ["ACME"])
    (ck_record, covered), last = positions()
    assert last == 0 and reports(pit, name)[-1] == ("checkpoint", str(covered))
    # a report archived without its checkpoint
    pit.send("bob", "o2", "Order", "sell 3 ACME at 12.50")
    ops.notary(pit).run_maildir()
    from filters.specialist import Specialist
    out = io.BytesIO()
    run_stream(Specialist(["ACME"]), ops.replay(pit, Specialist(["ACME"])), out)
    report = [m for m in mbox.iter_messages(out.getvalue()) if b"\nSubject: ACME report" in m]
    assert [d.accepted for d in ops.post(pit, name, report)] == [True]
    to_seq = int(reports(pit, name)[-1][1].rpartition("-")[2])
    assert positions() == ((ck_record, covered), to_seq) and to_seq > covered
    # the next run posts the missing checkpoint first, and its own report and checkpoint
    ops.run_filter(pit, "specialist", ["ACME"])
    ck, last = positions()
    assert last == 0 and ck[0] > ck_record


def test_replay_entries_are_the_records_as_stored(pit):
    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    pit.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(pit).run_maildir()
    ops.run_filter(pit, "specialist", ["ACME"])
    pit.send("bob", "o2", "Order", "sell 3 ACME at 12.50")
    ops.notary(pit).run_maildir()
    from filters.specialist import Specialist
    raw = b"".join(e for e, _ in ops.replay_entries(pit, Specialist(["ACME"])))
    assert list(mbox.iter_messages(raw)) == list(ops.replay(pit, Specialist(["ACME"])))
    assert raw.startswith(b"From notary ")


def test_the_notary_refuses_an_instrument_it_cannot_price(pit):
    d = ops.operator_request(pit, "Instrument", "BTC EUR tick 0.5 lot 0.1")
    assert not d.accepted and "unknown currency EUR" in d.reason
    assert ops.operator_request(pit, "Currency", "EUR 0.01").accepted
    d = ops.operator_request(pit, "Instrument", "BTC EUR tick 0.5 lot 0.01")
    assert not d.accepted and "not a whole number of EUR minor units" in d.reason
    assert ops.operator_request(pit, "Instrument", "BTC EUR tick 0.5 lot 0.1").accepted
    assert audit(pit.root).ok


def test_filter_output_has_a_larger_size_limit_than_orders(pit):
    """A checkpoint holds the whole book: it may exceed the limit for orders,
    but only a filter's own key may send one that large."""
    pit.set(max_message_size="1300")        # a signed order is about 1 KB
    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    pit.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    assert all(d.accepted for d in ops.notary(pit).run_maildir())
    _, ds = ops.run_filter(pit, "specialist", ["ACME"])
    sizes = [len(m) for _, m in __import__("pit.archive", fromlist=["Archive"]).Archive(pit.root).read()
             if mbox.stamp(m).get("x-pit-kind") == "checkpoint"]
    assert all(d.accepted for d in ds) and max(sizes) > 1300
    # a trader padding an order past the limit is still refused
    pit.send("alice", "o2", "Order", "buy 1 ACME at 12.50\n#" + "x" * 5000)
    (d,) = ops.notary(pit).run_maildir()
    assert not d.accepted and d.reason.startswith("too large")
    assert audit(pit.root).ok
