"""Tickers at any count: a specialist's work depends on its own tickers.

A specialist's checkpoint lists the whole registry (so that the checkpoints
of existing pits stay byte for byte what they were); it reads the lines of
other tickers' instruments only when it needs one.
"""

from __future__ import annotations

from filters.common import Registry
from filters.specialist import Specialist
from pit import message


def _operator_stamp(key: str, value: str) -> dict:
    """The stamp fields the notary writes for an operator request."""
    req = message.parse_request(f"Pit: demo\nAccount: operator\nRef: r\n{key}: {value}\n")
    return {k.lower(): v for k, v in message.stamp_fields(req)}


def _pit_of(tickers: int, mine: str) -> tuple[Specialist, str]:
    sp = Specialist([mine])
    sp.pit, seq = "demo", 1
    sp.apply(seq, _operator_stamp("Currency", "USD 0.01"), b"")
    for i in range(tickers):
        seq += 1
        sp.apply(seq, _operator_stamp("Instrument", f"T{i:05d} USD tick 0.01 lot 1"), b"")
    sp.seq = seq
    return sp, sp.checkpoint_body()


def test_a_restored_specialist_reads_only_its_own_instrument():
    sp, body = _pit_of(500, "T00007")
    again = Specialist(["T00007"])
    again.load_checkpoint(body)
    # read so far: its own instrument only (dict.keys: the ones read, without reading the rest)
    assert list(dict.keys(again.registry.instruments)) == ["T00007"]
    assert len(again.registry.instruments) == 500
    assert "T00400" in again.registry.instruments
    # the checkpoint written again is the same, byte for byte
    assert again.checkpoint_body() == body
    # another ticker's instrument is read when it is needed, as it was defined
    assert again.registry.instruments["T00400"].describe() == sp.registry.instruments["T00400"].describe()
    assert again.checkpoint_body() == body


def test_lines_not_as_written_are_read_at_once():
    reg = Registry()
    reg.restore_line("currency USD 0.01")
    rest = reg.take_instruments("currency USD 0.01\ninstrument ACME USD tick 0.01 lot 1\n")
    assert rest.endswith("instrument ACME USD tick 0.01 lot 1\n")   # not canonical: kept in the text
    assert not reg.instruments.lazy


def test_a_restored_specialist_reads_the_members_only_when_needed():
    """Every specialist's checkpoint lists the members (a line each): a run
    of orders leaves them unread, and writes them back byte for byte."""
    from pit import testkeys
    sp, _ = _pit_of(3, "T00001")
    fprs = sorted(testkeys.certificate(f"m{i}")[1].fingerprint for i in range(300))
    for i, fpr in enumerate(fprs):
        sp.apply(10 + i, _operator_stamp("Member", f"add {fpr} accounts m{i}"), b"")
    body = sp.checkpoint_body()
    again = Specialist(["T00001"])
    again.load_checkpoint(body)
    assert not again.accounts.members                 # kept as text
    assert again.checkpoint_body() == body
    assert again.accounts.exists("m7", again.registry)     # read when an account is looked up
    assert len(again.accounts.members) == 300
    assert again.checkpoint_body() == body
    # a member record read after a restore comes after the members restored
    third = Specialist(["T00001"])
    third.load_checkpoint(body)
    extra = testkeys.certificate("later")[1].fingerprint
    third.apply(999, _operator_stamp("Member", f"add {extra} accounts later"), b"")
    sp.apply(999, _operator_stamp("Member", f"add {extra} accounts later"), b"")
    assert third.accounts.state() == sp.accounts.state()
