"""The filters: determinism (in process and as programs), checkpoint halves,
pass-through, bad input, damaged checkpoints, and exact settlement."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Exchange, Kit, Tape, body_of, copy_pit, traded_pit
from filters.positions import Positions
from filters.specialist import Specialist
from filters.transfers import Transfers
from pit import mbox, ops
from pit.archive import Archive
from pit.filter import FilterError, run

BIN = Path(sys.executable).parent          # the environment running the tests


# -- a pit with real trades, built once -----------------------------------------

@pytest.fixture(scope="module")
def traded(template_pits, keyhome, tmp_path_factory) -> Kit:
    """Pit "demo" after deposits, transfers, trades (fees with rounding), a
    cancel, a withdrawal and every filter run and posted twice."""
    import conftest
    base = tmp_path_factory.mktemp("traded")
    conftest._HOMES.append(base)
    kit = Kit(copy_pit(template_pits[0], base / "demo"), keyhome)
    pit = kit.pit
    for value in ("100000.00 USD to alice", "100000.00 USD to bob", "1000 ACME to bob",
                  "500.00 EUR to alice"):
        assert kit.operator("Deposit", value).accepted
    assert kit.operator("Withdrawal", "0.01 USD from alice").accepted

    def send(*reqs):
        for r in reqs:
            ops.send_local(pit, kit.request(*r))
        ds = kit.notary().run_maildir()
        assert all(d.accepted for d in ds), [d.reason for d in ds]

    send(("alice", "1", "Transfer", "50000.00 USD to alice:ACME"),
         ("bob", "1", "Transfer", "1000 ACME to bob:ACME"),
         ("bob", "2", "Transfer", "10.00 USD to bob:ACME"))
    ops.run_filter(pit, "transfers", [])
    send(("alice", "2", "Order", "buy 100 ACME at 12.50"),
         ("bob", "3", "Order", "sell 60 acme @ 12.4"),
         ("bob", "4", "Order", "sell 7 ACME at 12.37"),
         ("alice", "3", "Order", "buy 7 ACME ioc 12.37"),
         ("bob", "5", "Order", "sell 60 acme @ 12.5 ioc"),
         ("bob", "6", "Order", "sell 5 ACME at 20"),
         ("bob", "7", "Order", "cancel 6"))
    ops.run_filter(pit, "specialist", ["ACME"])
    send(("bob", "8", "Order", "buy 3 ACME at 12.50"),
         ("alice", "4", "Order", "sell 3 ACME market"),
         ("bob", "9", "Transfer", "100.00 USD to bob", "bob:ACME"))
    ops.run_filter(pit, "specialist", ["ACME"])
    ops.run_filter(pit, "transfers", [])
    return kit


def archive_bytes(kit) -> bytes:
    return b"".join(mbox.format_message(m, "notary", mbox.stamp(m)["x-pit-time"])
                    for _, m in Archive(kit.root).read())


def records(kit) -> list[bytes]:
    return [m for _, m in Archive(kit.root).read()]


def run_bytes(flt, msgs) -> bytes:
    out = io.BytesIO()
    run(flt, msgs, out)
    return out.getvalue()


def out_messages(data: bytes) -> list[bytes]:
    return list(mbox.iter_messages(data))


# -- determinism ------------------------------------------------------------------

@pytest.mark.parametrize("cls,args", [(Specialist, ["ACME"]), (Transfers, []), (Positions, [])])
def test_same_input_same_bytes_in_process(traded, cls, args):
    a = run_bytes(cls(args), records(traded))
    b = run_bytes(cls(args), records(traded))
    assert a == b and b"Checkpoint: " in a


def test_programs_are_deterministic(traded, tmp_path):
    src = tmp_path / "in.mbox"
    src.write_bytes(archive_bytes(traded))
    outs = []
    for _ in range(2):
        with open(src, "rb") as f:
            p = subprocess.run([BIN / "pit-specialist", "ACME"], stdin=f, capture_output=True,
                               timeout=60)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
    assert outs[0] == outs[1]
    assert b"\ntrade " in outs[0]
    # and a whole pipe of them
    pipe = (f"{BIN}/pit-transfers < {src} | {BIN}/pit-specialist ACME | {BIN}/pit-positions")
    a = subprocess.run(pipe, shell=True, capture_output=True, timeout=60)
    b = subprocess.run(pipe, shell=True, capture_output=True, timeout=60)
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout


def test_program_matches_in_process(traded, tmp_path):
    src = tmp_path / "in.mbox"
    src.write_bytes(archive_bytes(traded))
    with open(src, "rb") as f:
        p = subprocess.run([BIN / "pit-transfers"], stdin=f, capture_output=True, timeout=60)
    assert p.stdout == run_bytes(Transfers(), records(traded))


_HEAVY = "{'pit.notarystate', 'sqlite3', '_hashlib'} & set(sys.modules)"


def test_filter_programs_and_the_replay_start_without_the_notarys_store(traded):
    """A filter program starts on every run of a pipe set-up and on every
    `pit replay | pit-specialist`, and so does the replay: they load neither
    the notary's store nor what that brings (SQLite, OpenSSL's hashes),
    ~20 ms a start (docs/pit-book.md, "The incremental run"); the replay
    reads the store only after a long stretch (ops.STORE_AFTER)."""
    root = Path(__file__).resolve().parent.parent
    probe = ("import sys, filters.specialist, filters.transfers, filters.positions; "
             f"print(sorted({_HEAVY}))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=60, cwd=root)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
    replay = ("import sys; from pit.cli import main; "
              "rc = main(['--pit', sys.argv[1], 'replay', 'specialist', 'ACME']); "
              f"sys.stderr.write(repr(sorted({_HEAVY}))); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", replay, str(traded.root)], capture_output=True,
                       timeout=60, cwd=root)
    assert p.returncode == 0, p.stderr
    assert b"X-Pit-Kind: checkpoint" in p.stdout          # it replayed from the checkpoint
    assert p.stderr.strip() == b"[]"


def final_checkpoint(out: bytes) -> str:
    last = out_messages(out)[-1]
    text = body_of(last)
    assert text.startswith("Checkpoint: ")
    return text


@pytest.mark.parametrize("cls,args", [(Specialist, ["ACME"]), (Transfers, []), (Positions, [])])
def test_two_halves_through_a_checkpoint_equal_one_run(traded, plain_records, cls, args):
    msgs = records(traded)
    whole = cls(args)
    whole_out = run_bytes(whole, msgs)
    for k in range(5, len(msgs), max(1, len(msgs) // 9)):
        first = cls(args)
        first_out = run_bytes(first, msgs[:k])
        tape = Tape()
        ck = tape.checkpoint_of(out_messages(first_out)[-1], first.name, first.seq)
        second = cls(args)
        second_out = run_bytes(second, [ck] + msgs[k:])
        assert first.lines + second.lines == whole.lines, k
        assert final_checkpoint(second_out) == final_checkpoint(whole_out), k
        assert second.state() == whole.state()


def test_checkpoint_restores_the_same_state(traded, plain_records):
    flt = Specialist(["ACME"])
    run(flt, records(traded))
    again = Specialist(["ACME"])
    again.load_checkpoint(flt.checkpoint_body())
    assert again.state() == flt.state() and again.checkpoint_body() == flt.checkpoint_body()


def _feed(flt, msgs) -> None:
    for msg in msgs:
        st = mbox.stamp(msg)
        flt.feed(int(st["x-pit-seq"]), st, msg)


def test_checkpoint_order_lines_are_read_when_touched(plain_records, monkeypatch):
    """A checkpoint's order lines, as state() writes them, are kept as they
    are and read only when the run touches their order (a cancel, a modify,
    a fill, a stop): the same report and state as the run that never
    stopped, and as reading them all at once.  A line in any other form is
    read with the rest, line by line, and written back in the canonical form."""
    ex = Exchange(tickers=("ACME",))
    tape = ex.tape
    for kind, req in [("currency", "USD 0.01"), ("instrument", "ACME USD tick 0.01 lot 1"),
                      ("member", f"add {'A' * 40} accounts alice"),
                      ("member", f"add {'B' * 40} accounts bob"),
                      ("deposit", "5000.00 USD to alice"), ("deposit", "100 ACME to bob")]:
        ex.add(tape.op(kind, req))
    ex.add(tape.transfer("alice", "f1", "5000.00 USD to alice:ACME"))
    ex.add(tape.transfer("bob", "f2", "100 ACME to bob:ACME"))
    for i in range(6):
        ex.add(tape.order("alice", f"b{i}", f"buy 5 ACME limit 9.{90 + i}"))
        ex.add(tape.order("bob", f"s{i}", f"sell 5 ACME limit 10.{10 + i}"))
    ex.add(tape.order("alice", "st", "buy 2 ACME stop-limit 10.11 limit 10.60"))
    whole = ex.specialist("ACME")
    body = whole.checkpoint_body()
    assert body.count("\norder ") == 13

    kept = Specialist(["ACME"])
    kept.load_checkpoint(body)
    assert len(kept._kept) == 13 and not kept.orders
    assert kept.checkpoint_body() == body
    with monkeypatch.context() as m:               # every line read at once
        m.setattr(Specialist, "_keep_orders", lambda self, lines, start: None)
        eager = Specialist(["ACME"])
        eager.load_checkpoint(body)
    assert len(eager.orders) == 13 and not eager._kept and eager.checkpoint_body() == body

    more = [tape.order("alice", "c1", "cancel b1"),
            tape.order("bob", "m1", "modify s2 qty 3"),
            tape.order("bob", "x1", "sell 12 ACME limit 9.92"),       # fills b5, b4, part of b3
            tape.order("alice", "x2", "buy 8 ACME limit 10.50")]      # fills s0, part of s1: st fires
    for flt in (whole, kept, eager):
        flt.lines = []
        _feed(flt, more)
    assert any(line.startswith("triggered ") for line in whole.lines)
    assert kept.lines == eager.lines == whole.lines
    assert kept.checkpoint_body() == eager.checkpoint_body() == whole.checkpoint_body()
    assert 0 < len(kept._kept) < 13

    lines = body.split("\n")
    n = next(i for i, line in enumerate(lines) if line.startswith("order "))
    lines[n] = lines[n].replace(" limit 5 ", " limit 05 ")    # not as state() writes it
    odd = Specialist(["ACME"])
    odd.load_checkpoint("\n".join(lines))
    assert not odd._kept and len(odd.orders) == 13 and odd.checkpoint_body() == body


@pytest.mark.parametrize("text,error", [
    ("", "list index out of range"),
    ("Checkpoint: specialist ACME", "list index out of range"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 5\n", "list index out of range"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 5\nx\n", "line 4 must be blank"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 5\nx", "line 4 must be blank"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: five\n\n", "invalid literal"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 5\n\n", "no 'book' section"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 5\n\nbook\n", "checkpoint line 1"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 5\n\nbook\npit-book checkpoint 1\n"
     "last-oid 0\nend\n", None),
])
def test_checkpoint_head_read_or_refused(text, error):
    flt = Specialist(["ACME"])
    if error is None:
        flt.load_checkpoint(text)
        assert (flt.pit, flt.seq, flt.first_seq) == ("demo", 5, 6)
        assert flt.checkpoint_body() == text
    else:
        with pytest.raises(FilterError, match=error):
            flt.load_checkpoint(text)


def test_state_read_as_text_as_from_lines(traded, plain_records):
    """Specialist.restore_text (the book section handed on as text) reads
    every state as Filter.restore_text (a string a line) does, or refuses
    it alike."""
    from pit.filter import Filter
    flt = Specialist(["ACME"])
    run(flt, records(traded))
    state = flt.checkpoint_body().split("\n", 4)[4]
    head, book = state.split("\nbook\n")

    def outcome(restore, text):
        spec = Specialist(["ACME"])
        try:
            restore(spec, text)
        except Exception as e:                  # noqa: BLE001 - compared as they are
            return type(e).__name__, str(e)
        return spec.state(), spec.orders.keys(), spec._kept.keys()

    for text in [state, state.rstrip("\n"), state + "\n", "book\n" + book, "\nbook\n" + book,
                 head + "\nbook", head + "\nbook\n", head, "", "book", head + "\nbook\n" + book[:-5],
                 head + "\nbook\nbook\n" + book, head.replace("\n", "\n\n", 1) + "\nbook\n" + book]:
        assert outcome(Specialist.restore_text, text) == outcome(Filter.restore_text, text), text[-80:]


# -- pass-through -----------------------------------------------------------------

def test_pass_through_in_order_and_checkpoints_first(traded, plain_records):
    msgs = records(traded)
    tape = Tape()
    # another filter's checkpoint and our own, leading the input
    other = Transfers()
    other_out = run_bytes(other, msgs[:20])
    mine = Specialist(["ACME"])
    mine_out = run_bytes(mine, msgs[:20])
    ck_other = tape.checkpoint_of(out_messages(other_out)[-1], "transfers", other.seq)
    ck_mine = tape.checkpoint_of(out_messages(mine_out)[-1], mine.name, mine.seq)
    stray = b"From: someone@pit.test\nSubject: not notarized\n\nhello\n"
    flt = Specialist(["ACME"])
    out = out_messages(run_bytes(flt, [ck_other, ck_mine] + msgs[20:] + [stray]))
    assert out[0] == ck_other
    assert out[1] == ck_mine                     # its own starting checkpoint, unchanged
    expected = [m for m in msgs[20:] if not flt.wants(mbox.stamp(m))] + [stray]
    assert out[2:2 + len(expected)] == expected
    assert body_of(out[-2]).startswith("Report: specialist ACME")
    assert body_of(out[-1]).startswith("Checkpoint: specialist ACME")
    assert len(out) == 2 + len(expected) + 2


def test_nothing_to_do_writes_checkpoint_only(traded):
    msgs = [m for m in records(traded) if mbox.stamp(m)["x-pit-kind"] == "seal"]
    out = out_messages(run_bytes(Specialist(["ACME"]), msgs))
    assert out[:-1] == msgs
    assert body_of(out[-1]).startswith("Checkpoint: specialist ACME")


@pytest.mark.parametrize("extra", [[], ["From the floor", ">From it", ">>From here"], ["caf\u00e9 42"]])
def test_report_written_in_pieces_is_the_whole_report(extra):
    """run() writes a long report a piece at a time: the same bytes as the
    whole report body through filter_output and format_message."""
    from pit import message
    from pit.filter import _REPORT_PIECE, _sender, _write_report
    flt = Specialist(["ACME"])
    flt.pit, flt.seq, flt.first_seq = "demo", 9000, 12
    flt.lines = [f"accepted {i} alice {i} buy 1 ACME limit 1.00" for i in range(2 * _REPORT_PIECE + 7)]
    flt.lines[_REPORT_PIECE + 1:_REPORT_PIECE + 1] = extra
    date = "2026-11-22T00:52:38.123456Z"
    out = io.BytesIO()
    _write_report(flt, out, date)
    whole = mbox.format_message(message.filter_output(
        "report", flt.name, flt.pit, flt.report_body(), date), *_sender(flt, date))
    assert out.getvalue() == whole
    assert list(mbox.iter_messages(whole))[0].endswith(
        ("\n".join(flt.lines) + "\n").encode())


@pytest.mark.parametrize("cls,args", [(Specialist, ["ACME"]), (Transfers, []), (Positions, [])])
def test_spooled_report_is_the_report(traded, monkeypatch, cls, args):
    """run(spool=True), as the filter programs run: the report lines said so
    far are encoded a piece at a time as records come, and the output is the
    same bytes as without (a look every record, pieces of two lines)."""
    import pit.filter
    monkeypatch.setattr(pit.filter, "_SPOOL", 1)
    monkeypatch.setattr(pit.filter, "_REPORT_PIECE", 2)
    msgs = records(traded)
    plain = run_bytes(cls(args), msgs)
    flt, out = cls(args), io.BytesIO()
    run(flt, msgs, out, spool=True)
    assert out.getvalue() == plain


@pytest.mark.parametrize("late", [[], ["From the floor", ">From it"], ["caf\u00e9 42"]])
def test_spooled_report_of_many_lines_is_the_report(traded, monkeypatch, late):
    """A filter that says many lines a record, one not ASCII (the report is
    then written whole) or mboxrd-quoted coming after pieces were spooled:
    run(spool=True) writes the same bytes as run(), and keeps only the lines
    said since the last piece."""
    import pit.filter
    from pit.filter import Filter
    monkeypatch.setattr(pit.filter, "_SPOOL", 3)

    class Chatty(Filter):
        name = "chatty"

        def wants(self, stamp):
            return True

        def apply(self, seq, stamp, msg):
            self.lines += [f"record {seq} line {i}" for i in range(700)]
            if seq == 20:
                self.lines += late

        def state(self):
            return []

    msgs = records(traded)
    assert len(msgs) > 20
    plain = run_bytes(Chatty(), msgs)
    flt, out = Chatty(), io.BytesIO()
    run(flt, msgs, out, spool=True)
    assert out.getvalue() == plain
    n = sum(1 for m in msgs if mbox.stamp(m).get("x-pit-seq")) * 700 + len(late)
    if late[-1:] == ["caf\u00e9 42"]:
        assert len(flt.lines) == n                  # all of them back, written whole
    else:
        assert len(flt.lines) <= 3 * 700 + len(late) < n


@pytest.mark.parametrize("n", [0, 1, 1024, 2055])
@pytest.mark.parametrize("extra", [[], ["From the floor", ">From it"], ["caf\u00e9 42"]])
def test_checkpoint_written_in_pieces_is_the_whole_checkpoint(n, extra):
    """run() writes the final checkpoint a piece at a time: the same bytes as
    checkpoint_body() through filter_output and format_message."""
    from pit import message
    from pit.filter import Filter, _sender, _write_checkpoint

    class Lines(Filter):
        name = "lines"

        def state(self):
            lines = [f"line {i} of the state" for i in range(n)]
            lines[n // 2:n // 2] = extra
            return lines

    flt = Lines()
    flt.pit, flt.seq = "demo", 9000
    date = "2026-11-22T00:52:38.123456Z"
    out = io.BytesIO()
    _write_checkpoint(flt, out, date)
    whole = mbox.format_message(message.filter_output(
        "checkpoint", flt.name, flt.pit, flt.checkpoint_body(), date), *_sender(flt, date))
    assert out.getvalue() == whole
    body = "\n".join(["Checkpoint: lines", "Pit: demo", "Seq: 9000", ""] + flt.state()) + "\n"
    assert flt.checkpoint_body() == body


# -- bad input --------------------------------------------------------------------

@pytest.fixture
def exchange(plain_records) -> Exchange:
    ex = Exchange()
    t = ex.tape
    for kind, req in [("currency", "USD 0.01"), ("currency", "EUR 0.01"),
                      ("instrument", "ACME USD tick 0.01 lot 1"),
                      ("instrument", "BTC EUR tick 0.5 lot 0.1"),
                      ("member", "add " + "A" * 40 + " accounts alice"),
                      ("member", "add " + "B" * 40 + " accounts bob"),
                      ("deposit", "1000.00 USD to alice"), ("deposit", "100 ACME to bob"),
                      ("deposit", "50.00 EUR to alice")]:
        ex.add(t.op(kind, req))
    ex.add(t.transfer("alice", "t1", "500.00 USD to alice:ACME"))
    ex.add(t.transfer("bob", "t1", "100 ACME to bob:ACME"))
    ex.add(t.transfer("alice", "t2", "50.00 EUR to alice:BTC"))
    assert not [ln for ln in ex.lines() if ln.startswith("rejected")], ex.lines()
    return ex


def states(ex: Exchange) -> list[list[str]]:
    return [f.state() for f in ex.filters]


def assert_rejected(ex: Exchange, msg: bytes, *reason: str) -> str:
    before = states(ex)
    n = len(ex.lines())
    ex.add(msg)
    new = ex.lines()[n:]
    rejected = [ln for ln in new if ln.startswith("rejected ")]
    assert len(rejected) == 1, new
    for part in reason:
        assert part in rejected[0], (part, rejected[0])
    assert states(ex) == before, "a rejected record changed some state"
    return rejected[0]


def test_malformed_order_text_in_a_record(exchange):
    assert_rejected(exchange, exchange.tape.forged("order", "alice", "buy lots of ACME", ticker="ACME"),
                    "not a canonical order")


def test_unknown_ticker(exchange):
    assert_rejected(exchange, exchange.tape.forged("order", "alice", "buy 1 ZZZ limit 1.00", ticker="ACME"),
                    "unknown ticker ZZZ")


def test_off_tick_price(exchange):
    assert_rejected(exchange, exchange.tape.forged("order", "alice", "buy 1 ACME limit 1.005",
                                                    ticker="ACME"), "1.005")


def test_quantity_off_lot(exchange):
    assert_rejected(exchange, exchange.tape.forged("order", "alice", "buy 0.15 BTC limit 10.0",
                                                    ticker="BTC"), "0.15")


def test_cancel_of_an_order_never_placed(exchange):
    """The notary knows the ref (the record exists); the specialist refused
    the order for its funds, so there is nothing to cancel."""
    t = exchange.tape
    assert_rejected(exchange, t.order("alice", "big", "buy 100 ACME limit 9.00"), "insufficient funds")
    assert_rejected(exchange, t.order("alice", "x", "cancel big"), "cancel big", "no open order")


def test_cancel_of_unknown_ref_in_a_forged_record(exchange):
    assert_rejected(exchange, exchange.tape.forged("order", "alice", "cancel nope", ticker="ACME"),
                    "cancel nope", "no open order")


def test_modify_of_a_filled_order(exchange):
    t = exchange.tape
    exchange.add(t.order("alice", "b1", "buy 10 ACME limit 5.00"))
    exchange.add(t.order("bob", "s1", "sell 10 ACME limit 5.00"))
    assert any(ln.startswith("trade ") for ln in exchange.lines())
    assert_rejected(exchange, t.order("alice", "m1", "modify b1 qty 20"),
                    "modify b1", "no open order")


def test_a_repeated_order_text_is_checked_like_a_new_one(exchange):
    """The specialist keeps a new order's figures by its text: a duplicate
    ref, a changed instrument and the funds are still checked every time."""
    t = exchange.tape
    exchange.add(t.order("alice", "r1", "buy 1 ACME limit 1.01"))
    assert_rejected(exchange, t.forged("order", "alice", "buy 1 ACME limit 1.01", ref="r1",
                                       ticker="ACME"), "duplicate ref r1", "is open")
    exchange.add(t.order("alice", "r2", "buy 1 ACME limit 1.01"))
    assert exchange.lines()[-1].startswith("accepted ") and exchange.lines()[-1].endswith(
        " alice r2 buy 1 ACME limit 1.01")
    exchange.add(t.order("alice", "r3", "buy 300 ACME limit 1.01"))
    assert exchange.lines()[-1].endswith(" alice r3 buy 300 ACME limit 1.01")
    assert_rejected(exchange, t.order("alice", "r4", "buy 300 ACME limit 1.01"),
                    "insufficient funds", "alice:ACME")
    exchange.add(t.op("instrument", "ACME USD tick 0.05 lot 1"))
    assert_rejected(exchange, t.forged("order", "alice", "buy 1 ACME limit 1.01", ticker="ACME"),
                    "1.01")


def test_open_orders_share_one_string_per_account(exchange):
    """The specialist hands the core one string object per account (each
    record's stamp is a fresh one): the core's resting orders and the
    specialist's share a few names however many orders rest."""
    t = exchange.tape
    for i in range(3):
        exchange.add(t.order("alice", f"b{i}", f"buy 1 ACME limit 1.0{i}"))
        exchange.add(t.order("bob", f"s{i}", f"sell 1 ACME limit 9.0{i}"))
    spec = exchange.specialist("ACME")
    orders = spec.open_orders()
    assert len(orders) == 6
    names = {od.account: od.account for od in orders.values()}
    assert sorted(names) == ["alice", "bob"]
    for oid, od in orders.items():
        assert od.account is names[od.account] and od.rkey[0] is od.account
        assert spec.engine._orders[oid][2] is od.account    # the core's owner


def test_buy_more_than_cash(exchange):
    assert_rejected(exchange, exchange.tape.order("alice", "x", "buy 100 ACME limit 5.00"),
                    "insufficient funds", "alice:ACME")


def test_market_buy_without_cash(exchange):
    assert_rejected(exchange, exchange.tape.order("bob", "x", "buy 1 ACME market"),
                    "insufficient funds", "bob:ACME")


def test_sell_more_than_holdings(exchange):
    assert_rejected(exchange, exchange.tape.order("bob", "x", "sell 101 ACME limit 5.00"),
                    "insufficient funds", "bob:ACME")
    assert_rejected(exchange, exchange.tape.order("alice", "y", "sell 1 ACME limit 5.00"),
                    "insufficient funds", "alice:ACME")


def test_transfer_from_too_little(exchange):
    t = exchange.tape
    assert_rejected(exchange, t.transfer("alice", "x", "600.00 USD to alice:ACME"),
                    "insufficient funds")
    assert_rejected(exchange, t.transfer("alice:ACME", "y", "500.01 USD to alice"),
                    "insufficient funds")


def test_transfer_to_unknown_account(exchange):
    t = exchange.tape
    line = assert_rejected(exchange, t.transfer("alice", "x", "1.00 USD to nobody"),
                           "unknown account nobody")
    assert line.split(" ")[2:4] == ["alice", "x"], line       # the ref, as for an order
    line = assert_rejected(exchange, t.transfer("alice:ACME", "y", "1.00 USD to nobody:ACME"),
                           "unknown account nobody:ACME")
    assert line.split(" ")[2:4] == ["alice:ACME", "y"], line


def test_deposit_by_non_operator(exchange):
    msg = exchange.tape.forged("deposit", "alice", "1000000.00 USD to alice")
    assert_rejected(exchange, msg, "only the operator")


def test_withdrawal_of_more_than_the_balance(exchange):
    assert_rejected(exchange, exchange.tape.op("withdrawal", "500.01 USD from alice"),
                    "insufficient funds")


def test_transfer_out_of_a_held_balance(exchange):
    t = exchange.tape
    exchange.add(t.order("alice", "b1", "buy 10 ACME limit 40.00"))   # holds ~400 of 500
    assert_rejected(exchange, t.transfer("alice:ACME", "x", "200.00 USD to alice"),
                    "insufficient funds")


# -- damaged checkpoints and bad streams ------------------------------------------------

def _damaged_checkpoints(good: str) -> list[str]:
    lines = good.split("\n")
    return [good.replace("Seq: ", "Seq: x", 1),
            "\n".join(lines[:4] + ["balance alice:ACME USD notanumber 0"] + lines[4:]),
            "\n".join(lines[:4] + ["frobnicate 1 2 3"] + lines[4:]),
            "\n".join(lines[:4] + ["order 999 alice x ZZZ buy limit 1 100 100"] + lines[4:]),
            good.split("\nbook\n")[0] + "\n",                 # the book section cut off
            good.replace("Pit: ", "Pt: ", 1)]


def test_damaged_own_checkpoint_in_process(traded, plain_records):
    flt = Specialist(["ACME"])
    run(flt, records(traded))
    for text in _damaged_checkpoints(flt.checkpoint_body()):
        with pytest.raises(FilterError, match="damaged checkpoint for specialist ACME"):
            Specialist(["ACME"]).load_checkpoint(text)
        rec = Tape().forged("checkpoint", "specialist:ACME", "specialist ACME 1", body=text)
        with pytest.raises(FilterError):
            run(Specialist(["ACME"]), [rec])


def test_damaged_own_checkpoint_program(traded, tmp_path, plain_records):
    flt = Transfers()
    run(flt, records(traded))
    damaged = _damaged_checkpoints(flt.checkpoint_body())[1].replace("alice:ACME USD", "alice USD")
    # a checkpoint record as `pit post` makes it: clearsigned (the filter
    # reads, it does not verify: any key will do here), then stamped
    from pit import signed
    signed_msg = signed.compose_clearsigned([("From", "transfers@demo.pit"), ("Subject", "cp")],
                                            damaged, traded.ring, traded.fpr("alice"))
    stamp = Tape().forged("checkpoint", "transfers", "transfers 1", body="")
    rec = mbox.split_stamp(stamp)[0] + signed_msg
    unsigned = Tape().forged("checkpoint", "transfers", "transfers 1", body=damaged)
    for bad in (rec, unsigned):
        src = tmp_path / "in.mbox"
        src.write_bytes(mbox.format_message(bad, "notary", "2026-11-22T00:00:00Z"))
        with open(src, "rb") as f:
            p = subprocess.run([BIN / "pit-transfers"], stdin=f, capture_output=True, timeout=60)
        assert p.returncode == 1, (p.returncode, p.stderr)
        err = p.stderr.decode()
        assert err.count("\n") == 1 and "damaged checkpoint for transfers" in err, err


@pytest.mark.parametrize("data", [b"hello\nthis is not an mbox\n", b"\x00\x01\x02",
                                  b"From x Sat Jan  1 00:00:00 2000\nX-Pit-Seq: one\n\nbody\n"])
def test_not_an_mbox(data, tmp_path):
    src = tmp_path / "in"
    src.write_bytes(data)
    with open(src, "rb") as f:
        p = subprocess.run([BIN / "pit-specialist", "ACME"], stdin=f, capture_output=True, timeout=60)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert b"Traceback" not in p.stderr and p.stderr.strip()


def test_a_stream_without_its_instrument_records_is_one_line_not_a_traceback(tmp_path):
    """`pit export | pit-transfers | pit-specialist ACME`: the transfers filter
    takes the records that are its business out of the stream (the pit's
    Instrument and Currency records among them), so the specialist meets
    credits of ACME with no instrument for it.  One line naming the filter,
    exit 1, as for any stream it cannot read: it was a Python traceback."""
    base, _ = traded_pit(tmp_path)
    chain = (f"'{BIN / 'pit'}' --pit '{base / 'pit'}' export | '{BIN / 'pit-transfers'}' "
             f"| '{BIN / 'pit-specialist'}' ACME > /dev/null")
    p = subprocess.run(["bash", "-o", "pipefail", "-c", chain], capture_output=True, timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 1 and "Traceback" not in err, (p.returncode, err)
    assert err == "specialist ACME: unknown asset ACME\n", err


def test_bad_arguments_exit_2():
    p = subprocess.run([BIN / "pit-transfers", "extra"], capture_output=True, timeout=60)
    assert p.returncode == 2 and b"usage" in p.stderr


# -- settlement -------------------------------------------------------------------

def test_settlement_is_exact_and_conserves_every_asset(traded):
    import re
    msgs = records(traded)
    pos = Positions()
    run(pos, msgs)
    spec = Specialist(["ACME"])
    run(spec, msgs)
    tr = Transfers()
    run(tr, msgs)
    # conservation: the positions table sums to deposits minus withdrawals
    expected = {"USD": 20000000 - 1, "ACME": 1000, "EUR": 50000}
    totals: dict[str, int] = {}
    for (acct, asset), n in pos.balance.items():
        totals[asset] = totals.get(asset, 0) + n
        assert n >= 0, (acct, asset, n)
    assert totals == expected
    # the filters' own ledgers agree with the positions table, account by account
    ledgers = {(a, asset): b for a, asset, b, _ in tr.ledger.accounts() + spec.ledger.accounts()}
    assert ledgers == {k: v for k, v in pos.balance.items() if v}
    # fees: maker + taker of every trade, each rounded up to a whole cent
    inst = spec.registry.instruments["ACME"]
    trades = [ln for ln in spec.lines if ln.startswith("trade ")]
    assert len(trades) >= 4
    want, rounded = 0, False
    for ln in trades:
        m = re.match(r"trade \d+ ACME (\d+) at ([\d.]+) USD .* fees ([\d.]+) ([\d.]+)$", ln)
        qty, price = int(m.group(1)), int(m.group(2).replace(".", ""))   # 2 decimals: cents
        notional = qty * price                         # cents: lot 1, tick 0.01
        maker_fee = -(-notional * inst.maker_ppm // 1_000_000)
        taker_fee = -(-notional * inst.taker_ppm // 1_000_000)
        maker_side = ln.split(" maker ")[1].split(" ")[0]
        buy_fee, sell_fee = (maker_fee, taker_fee) if maker_side == "buy" else (taker_fee, maker_fee)
        assert (m.group(3), m.group(4)) == (f"{buy_fee // 100}.{buy_fee % 100:02d}",
                                            f"{sell_fee // 100}.{sell_fee % 100:02d}"), ln
        want += maker_fee + taker_fee
        rounded = rounded or notional * inst.maker_ppm % 1_000_000 != 0
    assert rounded, "no trade needed its fee rounded up"
    assert pos.balance[("fees:ACME", "USD")] == want
