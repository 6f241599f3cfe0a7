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


@pytest.mark.parametrize("store_after", [0, ops.STORE_AFTER])
def test_filter_position_is_the_same_whether_the_index_is_current_stale_or_gone(
        pit, monkeypatch, store_after):
    """checkpoints/index is a cache: it changes where the scan starts, never
    the answer.  The report's To-Seq comes back only while its checkpoint is
    not archived.  (STORE_AFTER 0: the notary's store is read at every call.)"""
    monkeypatch.setattr(ops, "STORE_AFTER", store_after)
    name = "specialist ACME"
    idx = pit.checkpoints / "index"
    state = pit.root / "archives" / "notary-state.sqlite"
    behind = pit.root / "state-behind.sqlite"         # the notary's store as it was earlier
    _copy_store(state, behind)

    def positions():
        current = ops.filter_position(pit, name)
        saved = idx.read_text()
        ops.note_checkpoint(pit, name, 1, 0)            # stale: before every checkpoint
        stale = ops.filter_position(pit, name)
        idx.unlink()
        gone = ops.filter_position(pit, name)
        # the notary's store (notarystate.filter_rows) gone, then behind the archive
        aside = pit.root / "state-aside.sqlite"
        _copy_store(state, aside)
        state.unlink()
        no_store = ops.filter_position(pit, name)
        _copy_store(behind, state)
        store_behind = ops.filter_position(pit, name)
        _copy_store(aside, state)
        idx.write_text(saved)
        assert current == stale == gone == no_store == store_behind, \
            (current, stale, gone, no_store, store_behind)
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


def _copy_store(src, dst):
    """A copy of the notary's store (what its write-ahead log holds too)."""
    import sqlite3
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def test_filter_position_starts_after_the_notarys_store(pit, monkeypatch, tmp_path_factory):
    """A filter that never posted a checkpoint: its position comes from the
    notary's store, and only the records after the store's are searched
    (a first replay of a 1M archive searched all of it: docs/pit-book.md,
    "The replay and the specialist on one core"); a store that is not of
    this archive is not used."""
    from pit.archive import Archive
    monkeypatch.setattr(ops, "STORE_AFTER", 0)     # (a small pit: read the store anyway)
    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    ops.notary(pit).run_maildir()
    searched = []
    real = Archive.records_of_kind

    def spy(self, from_seq, kinds):
        searched.append(from_seq)
        return real(self, from_seq, kinds)

    monkeypatch.setattr(Archive, "records_of_kind", spy)
    last = Archive(pit.root).last_seq()
    assert ops.filter_position(pit, "specialist ACME") == (None, 0)
    assert searched == [last + 1]
    # the store of another archive (a copy of this pit grown apart)
    other = funded_pit(tmp_path_factory.mktemp("o"))   # (a short path: gpg-agent's socket)
    other.send("bob", "o9", "Order", "sell 1 ACME at 12.50")
    other.send("bob", "o8", "Order", "sell 2 ACME at 12.50")
    ops.notary(other).run_maildir()
    state = pit.root / "archives" / "notary-state.sqlite"
    _copy_store(state, pit.root / "saved.sqlite")
    _copy_store(other.root / "archives" / "notary-state.sqlite", state)
    searched.clear()
    assert ops.filter_position(pit, "specialist ACME") == (None, 0)
    assert searched == [1]
    # a store that is not one (garbage where the notary keeps it)
    state.write_bytes(b"not a store\n" * 100)
    searched.clear()
    assert ops.filter_position(pit, "specialist ACME") == (None, 0)
    assert searched == [1]
    state.unlink()
    _copy_store(pit.root / "saved.sqlite", state)
    searched.clear()
    assert ops.filter_position(pit, "specialist ACME") == (None, 0)
    assert searched == [last + 1]


def test_a_filter_with_its_checkpoint_indexed_does_not_open_the_notarys_store(pit, monkeypatch):
    """A filter's run (the daemon's, at every wake) finds its position from
    checkpoints/index and a short scan: opening and checking the notary's
    store cost each run ~3 ms on the order -> trade path (docs/pit-book.md,
    "The filter's position from the notary's store")."""
    from pit import notarystate
    pit.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    pit.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(pit).run_maildir()
    ops.run_filter(pit, "specialist", ["ACME"])
    opened = []
    real = notarystate.filter_rows
    monkeypatch.setattr(notarystate, "filter_rows", lambda *a: opened.append(a) or real(*a))
    pit.send("bob", "o2", "Order", "sell 3 ACME at 12.50")
    ops.notary(pit).run_maildir()
    ops.run_filter(pit, "specialist", ["ACME"])
    assert opened == []
    assert reports(pit, "specialist ACME")[-1][0] == "checkpoint"
    monkeypatch.setattr(ops, "STORE_AFTER", 0)
    ops.filter_position(pit, "specialist ACME")
    assert len(opened) == 1


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


def test_replay_pieces_are_the_entries_of_replay_entries(pit):
    """`pit replay`'s pieces (runs of entries, most recognised by one search
    each: Archive.entry_runs) are byte for byte its plain twin's entries,
    from the start, after a checkpoint (entries found by the walk back from
    the end of the volume), and cut into pieces of any size."""
    from filters.specialist import Specialist
    from pit.archive import Archive

    def plain(**kw):
        return b"".join(e for e, _ in ops.replay_entries(pit, Specialist(["ACME"]), **kw))

    def pieces(**kw):
        return b"".join(bytes(p) for _, p in ops.replay_pieces(pit, Specialist(["ACME"]), **kw))

    for i, order in enumerate(["buy 10 ACME at 12.50", "sell 4 ACME at 12.50",
                               "buy 1 ACME at 12.40", "sell 2 ACME at 12.60"]):
        pit.send("alice" if "buy" in order else "bob", f"o{i}", "Order", order)
    ops.notary(pit).run_maildir()
    pit.send("alice", "c1", "Order", "cancel o2")
    pit.send("alice", "t2", "Transfer", "1.00 USD to alice")     # wanted: out of alice:ACME
    ops.notary(pit).run_maildir()
    assert pieces(from_start=True) == plain(from_start=True)
    ops.run_filter(pit, "specialist", ["ACME"])                   # a checkpoint: then a walk
    pit.send("bob", "o9", "Order", "sell 1 ACME at 12.70")
    pit.send("alice", "o10", "Order", "buy 1 ACME at 12.70")
    ops.notary(pit).run_maildir()
    for kw in ({}, {"from_start": True}, {"upto": Archive(pit.root).last_seq() - 1}):
        assert pieces(**kw) == plain(**kw), kw
    from filters.transfers import Transfers          # no order tickers: entry by entry
    got = list(ops.replay_pieces(pit, Transfers([]), from_start=True))
    assert b"".join(bytes(p) for _, p in got) == b"".join(
        e for e, _ in ops.replay_entries(pit, Transfers([]), from_start=True))
    assert [seq for seq, _ in got] == [seq for seq, buf, pos, body, end in
                                       Archive(pit.root).entry_spans(1)
                                       if Transfers([]).wants(mbox.stamp(buf[body:end]))]
    whole = plain(from_start=True)
    head = mbox.order_entry_head(["ACME"])
    spec = Specialist(["ACME"])

    def wanted(buf, pos, body, end):
        return spec.wants(mbox.stamp(buf[pos:end], body - pos))

    arch = Archive(pit.root)
    entries = [(seq, buf[pos:end]) for seq, buf, pos, body, end in arch.entry_spans(1)
               if wanted(buf, pos, body, end)]
    assert b"".join(e for _, e in entries) == whole
    for size in (1, 500, 5000):                                   # pieces of every size
        got = [(seq, bytes(p)) for seq, p in arch.entry_runs(head, wanted, 1, None, size)]
        assert b"".join(p for _, p in got) == whole
        if size == 1:                                             # an entry a piece
            assert got == entries
        else:                                                     # seq: a piece's last entry's
            ends = {seq: sum(len(e) for s, e in entries if s <= seq) for seq, _ in entries}
            assert all(ends[seq] == sum(len(p) for _, p in got[:i + 1])
                       for i, (seq, _) in enumerate(got))


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
