"""mboxrd reading and writing: exact round trips, quoting, header reads."""

import io

import pytest
from hypothesis import given, settings, strategies as st

from pit import mbox

LINE = st.sampled_from([b"From x", b">From y", b">>From z", b"From", b"", b"body",
                        b"\r", b"From \r", b"X-Pit-Seq: 1", b" >From", b"Fro", b"m "])
MESSAGE = st.one_of(
    st.binary(max_size=200),
    st.lists(LINE, max_size=12).map(b"\n".join),
    st.lists(LINE, max_size=12).map(lambda ls: b"\n".join(ls) + b"\n"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(MESSAGE, max_size=8), st.integers(1, 64))
def test_round_trip_is_exact(messages, chunk):
    data = b"".join(mbox.format_message(m, "notary@demo", i) for i, m in enumerate(messages))
    assert list(mbox.iter_messages(data)) == messages
    assert [e.message for e in mbox.iter_entries(data)] == messages
    assert list(mbox.iter_stream(io.BytesIO(data), chunk_size=chunk)) == messages


def test_mboxrd_quoting():
    msg = b"From me\n>From you\n>>From them\nFrom\nnot From here\n"
    entry = mbox.format_message(msg, "a", 0)
    assert entry == (b"From a Thu Jan  1 00:00:00 1970\n"
                     b">From me\n>>From you\n>>>From them\nFrom\nnot From here\n\n")
    assert list(mbox.iter_messages(entry)) == [msg]


def test_signed_bytes_unchanged():
    body = (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- From alice\nFrom bob\n"
            b"Order: buy 100 ACME at 12.50\r\n-----BEGIN PGP SIGNATURE-----\n\niHUEARYKAB0WIQ\n"
            b"-----END PGP SIGNATURE-----")
    buf = io.BytesIO()
    mbox.write_message(buf, body, "alice@example.org", "2026-11-22T00:52:38.123456Z")
    assert buf.getvalue().startswith(b"From alice@example.org Sun Nov 22 00:52:38 2026\n")
    assert list(mbox.iter_file(io.BytesIO(buf.getvalue()))) == [body]


def test_message_without_final_newline_and_empty():
    data = mbox.format_message(b"abc", "a", 0) + mbox.format_message(b"", "b", 0)
    assert data.count(b"\n") == 4
    entries = list(mbox.iter_entries(data))
    assert [e.message for e in entries] == [b"abc", b""]
    assert entries[1].sender == "b" and entries[1].offset == data.index(b"From b")


def test_from_line_dates():
    assert mbox.from_line("n", 0) == b"From n Thu Jan  1 00:00:00 1970\n"
    assert mbox.from_line("n", "Sun Nov 22 00:52:38 2026") == b"From n Sun Nov 22 00:52:38 2026\n"
    assert mbox.from_line("", None) == b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
    with pytest.raises(mbox.MboxError, match="sender"):
        mbox.from_line("a b", 0)
    with pytest.raises(mbox.MboxError, match="date"):
        mbox.from_line("a", "yesterday")


def test_timegm_is_calendar_timegm():
    import calendar
    for fields in [(2026, 11, 22, 0, 52, 38), (1970, 1, 1, 0, 0, 0), (1969, 12, 31, 23, 59, 59),
                   (2024, 2, 29, 12, 0, 0), (2026, 2, 30, 25, 61, 61), (1, 1, 1, 0, 0, 0),
                   (9999, 12, 31, 23, 59, 59)]:
        assert mbox._timegm(*fields) == calendar.timegm(fields), fields
    for fields in [(2026, 13, 1, 0, 0, 0), (2026, 0, 1, 0, 0, 0), (0, 1, 1, 0, 0, 0)]:
        with pytest.raises(ValueError):
            calendar.timegm(fields)
        with pytest.raises(ValueError):
            mbox._timegm(*fields)


@pytest.mark.parametrize("data, where", [
    (b"garbage\n", "byte 0"),
    (b"From a 0\nbody", "byte 13"),
    (b"From a 0\n\nFrom b", "byte 10"),
])
def test_bad_input_names_the_offset(data, where):
    with pytest.raises(mbox.MboxError, match=where):
        list(mbox.iter_messages(data))
    with pytest.raises(mbox.MboxError, match=where):
        list(mbox.iter_stream(io.BytesIO(data), chunk_size=3))


def test_headers_unfold_and_case():
    msg = b"Subject: a\n long\n\tsubject\nFROM: x@y\nSubject: second\n\nBody: no\n"
    assert mbox.headers(msg) == {"subject": "a long subject", "from": "x@y"}
    assert mbox.headers(msg, ["from"]) == {"from": "x@y"}
    with pytest.raises(mbox.MboxError, match="line 2"):
        mbox.headers(b"A: b\nnot a header\n\n")


def test_stamp_and_split():
    stamp = b"X-Pit-Seq: 42\nX-Pit-Kind: order\nX-Pit-Request: buy 1 A at 1: ok\n"
    original = b"From: a\n\nX-Pit-Seq: 9\n"
    msg = stamp + original
    assert mbox.split_stamp(msg) == (stamp, original)
    assert mbox.stamp(msg) == {"x-pit-seq": "42", "x-pit-kind": "order",
                               "x-pit-request": "buy 1 A at 1: ok"}
    assert mbox.stamp_seq(msg) == 42
    assert mbox.stamp(b"From: a\n\n") == {}
    assert mbox.stamp(b"X-Pit-Seq:  7 \r\n") == {"x-pit-seq": "7"}
    with pytest.raises(mbox.MboxError, match="line 2: X-Pit-seq repeated"):
        mbox.stamp(b"X-Pit-Seq: 1\nX-Pit-seq: 2\n")
    with pytest.raises(mbox.MboxError, match="line 1"):
        mbox.stamp(b"X-Pit-Seq 1\n")


def test_stream_does_not_hold_everything():
    class Chunks(io.RawIOBase):
        reads = 0

        def __init__(self, data):
            self.data = io.BytesIO(data)

        def read(self, n=-1):
            Chunks.reads += 1
            return self.data.read(n)

    msgs = [b"X-Pit-Seq: %d\n\n" % i + b"x" * 1000 for i in range(200)]
    data = b"".join(mbox.format_message(m, "n", 0) for m in msgs)
    assert list(mbox.iter_stream(Chunks(data), chunk_size=4096)) == msgs
    assert Chunks.reads > 40


STAMP_LINE = st.tuples(st.sampled_from(["X-Pit-Seq", "X-Pit-Kind", "X-Pit-kind", "X-Pit-Time"]),
                       st.sampled_from([": ", ":", ":  ", ": \t", "\t:", " : ", " :"]),
                       st.sampled_from(["1", "order", "a: b", "", " x ", "x\r", "é"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(STAMP_LINE, max_size=5), st.sampled_from([b"", b"From: a\n", b"X-Pit-"]))
def test_stamp_fast_path_agrees_with_strict_reading(lines, rest):
    msg = "".join(f"{n}{sep}{v}\n" for n, sep, v in lines).encode() + rest
    try:
        expected = mbox._stamp_strict(msg)
    except mbox.MboxError as e:
        with pytest.raises(mbox.MboxError):
            mbox.stamp(msg)
        return
    assert mbox.stamp(msg) == expected


def _order_stamp(seq, ticker=b"ACME", request=b"buy 5 ACME limit 1.00", signer=b"0" * 40,
                 extra=b""):
    return (b"X-Pit-Seq: %d\nX-Pit-Time: 2026-11-22T00:52:38.%06dZ\nX-Pit-Prev: %s\n"
            b"X-Pit-Digest: %s\nX-Pit-Signer: %s\nX-Pit-Pit: demo\nX-Pit-Kind: order\n"
            b"X-Pit-Account: alice\nX-Pit-Ref: r%d\nX-Pit-Ticker: %s\nX-Pit-Request: %s\n%s"
            % (seq, seq, b"a" * 64, b"b" * 64, signer, seq, ticker, request, extra))


ORDER_ENTRY = st.one_of(
    st.builds(lambda t, r: _order_stamp(7, ticker=t, request=r) + b"From: a\n\nbody\n",
              st.sampled_from([b"ACME", b"BTC", b"ACM", b"ACMEX"]),
              st.sampled_from([b"buy 5 ACME limit 1.00", b"cancel 3", b"cancel 3 ", b"x"])),
    st.builds(lambda s, e: _order_stamp(8, signer=s, extra=e) + b"\nFrom x\n>From y\n",
              st.sampled_from([b"0" * 40, "é".encode(), b"\xff", b" 0"]),
              st.sampled_from([b"", b"X-Pit-Note: 1\n", b"From: a\n"])),
    st.just(_order_stamp(9)),
    st.just(_order_stamp(10)[:-1]),
    MESSAGE,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ORDER_ENTRY, max_size=8), st.integers(1, 600), st.booleans())
def test_stream_orders_agree_with_the_general_reading(messages, chunk, torn):
    """iter_stream_orders gives exactly iter_stream's messages, an order for
    a wanted ticker in the notary's layout as the values stamp() reads."""
    data = b"".join(mbox.format_message(m, "notary", i) for i, m in enumerate(messages))
    if torn and data:
        data = data[:-1]                  # input ending inside an entry: the same error
    try:
        expected = list(mbox.iter_stream(io.BytesIO(data), chunk_size=chunk))
    except mbox.MboxError as e:
        with pytest.raises(mbox.MboxError, match=str(e).split(":")[0]):
            list(mbox.iter_stream_orders(io.BytesIO(data), ["ACME", "BTC"], chunk_size=chunk))
        return
    got = list(mbox.iter_stream_orders(io.BytesIO(data), ["ACME", "BTC"], chunk_size=chunk))
    assert len(got) == len(expected)
    for item, msg in zip(got, expected):
        if item.__class__ is tuple:
            st_ = mbox.stamp(msg)
            assert st_["x-pit-kind"] == "order" and st_["x-pit-ticker"] in ("ACME", "BTC")
            assert item == (int(st_["x-pit-seq"]), st_["x-pit-time"], st_["x-pit-pit"],
                            st_["x-pit-account"], st_["x-pit-ref"], st_["x-pit-request"])
        else:
            assert item.__class__ is bytes and item == msg


@settings(max_examples=300, deadline=None)
@given(ORDER_ENTRY)
def test_order_entry_agrees_with_stamp(message):
    """order_entry (the replay's test of an order record for its tickers)
    matches only an entry whose stamp() is an order for one of them, with
    the same request; what it does not match takes the stamp() path."""
    entry = mbox.format_message(message, "notary", 0)
    m = mbox.order_entry(["ACME", "BTC"])(entry, 0, len(entry))
    if m is None or m[6].endswith(b" "):
        return
    st_ = mbox.stamp(message)
    assert st_["x-pit-kind"] == "order" and st_["x-pit-ticker"] in ("ACME", "BTC")
    assert m[6].decode() == st_["x-pit-request"]
    assert int(m[1]) == int(st_["x-pit-seq"])
