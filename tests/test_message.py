"""Tests for pit/message.py: every kind round-trips, forgiving input has one
canonical form, and every user mistake is a clear error naming the line."""

import doctest

import pytest
from hypothesis import given, settings, strategies as st

import pit.message as message
from pit.message import (Checkpoint, Envelope, MessageError, Rejection, Report, Seal,
                         instruction_text, parse_canonical_order, parse_order,
                         parse_request, read_message, request_text, resolve, write_message)
from pit.units import Currency, Instrument

USD = Currency("USD", "0.01")
BTC = Currency("BTC", "0.00000001")
ACME = Instrument("ACME", USD, tick="0.01", lot="1")
NICKEL = Instrument("NKL", USD, tick="0.05", lot="10")
INSTRUMENTS = {"ACME": ACME, "NKL": NICKEL}
FPR = "0123456789ABCDEF0123456789ABCDEF01234567"
ENV = Envelope("notary@demo.example", "alice@example.org", "2026-11-22T00:52:38.123456Z")


def request(instruction_line: str, key: str = "Order", account: str = "alice") -> str:
    return f"Pit: demo\nAccount: {account}\nRef: 17\n{key}: {instruction_line}\n"


def canon(value: str, key: str = "Order", **kw) -> str:
    return instruction_text(resolve(parse_request(request(value, key)), INSTRUMENTS, **kw))


def error(text: str, **kw) -> MessageError:
    with pytest.raises(MessageError) as info:
        req = parse_request(text)
        resolve(req, INSTRUMENTS, **kw)
    return info.value


def test_doctests():
    assert doctest.testmod(message, optionflags=doctest.ELLIPSIS).failed == 0


def _either(f, *args):
    try:
        return f(*args)
    except ValueError:
        return ValueError


def test_times_read_as_strptime_reads_them():
    """The datetime constructor that reads ASCII times (instead of strptime,
    which costs a filter program ~2 ms to start) agrees with strptime on
    every day and month number, leap years, times out of range, and text
    that is not ASCII digits."""
    from datetime import datetime
    from pit.message import _strptime
    fmt = "%Y-%m-%dT%H:%M:%S"
    texts = [f"{y}-{m:02d}-{d:02d}T12:34:56" for y in ("2024", "2026", "1900", "2000", "0000",
                                                     "0001", "9999") for m in range(100)
             for d in range(100)]
    texts += [f"2026-11-22T{h:02d}:{n:02d}:{s:02d}" for h, n, s in
              [(h, 0, 0) for h in range(100)] + [(0, n, 0) for n in range(100)]
              + [(0, 0, s) for s in range(100)]]
    texts += ["2026-11-22T00:52:3\u0668", "\u0662026-11-22T00:52:38", "2026-1-22T00:52:38",
              "2026-11-22 00:52:38", "2026-11-22T00:52:38Z", "+026-11-22T00:52:38"]
    for text in texts:
        assert _either(_strptime, text, fmt) == _either(datetime.strptime, text, fmt), text
        z = text + "Z"
        assert _either(_strptime, z, fmt + "Z") == _either(datetime.strptime, z, fmt + "Z"), z


# -- forgiving orders, one canonical form --------------------------------------

FORGIVING = {
    "buy 100 ACME limit 12.50": ["buy 100 ACME at 12.50", "buy 100 acme @ 12.5",
                                 "BUY 100 ACME 12.50 limit", "buy 100 ACME limit 12.50",
                                 "buy 100 ACME@12.5", "Buy  100\tAcme  AT  12.500",
                                 "buy 100 ACME 12.5"],
    "sell 50 ACME ioc 12.55": ["sell 50 ACME at 12.55 ioc", "ioc sell 50 ACME at 12.55",
                               "sell 50 ACME ioc 12.55", "IOC SELL 50 acme 12.55"],
    "sell 50 ACME fok 12.55": ["sell 50 ACME at 12.55 fok", "fok sell 50 ACME @ 12.55"],
    "buy 10 ACME market": ["buy 10 ACME market", "buy 10 ACME at market", "buy 10 acme MKT"],
    "sell 10 ACME stop-loss 11.00": ["sell 10 ACME stop 11.00", "sell 10 ACME stop loss 11",
                                     "sell 10 ACME stop-loss 11.0", "sell 10 ACME sl 11"],
    "sell 10 ACME stop-limit 11.00 limit 10.90": [
        "sell 10 ACME stop 11.00 limit 10.90", "sell 10 ACME stop-limit 11 limit 10.9",
        "sell 10 ACME limit 10.90 stop 11", "sell 10 acme stop 11 @ 10.9"],
    "sell 10 ACME take-profit 14.00": ["sell 10 ACME take-profit 14.00", "sell 10 ACME tp 14",
                                       "sell 10 ACME take profit 14", "sell 10 ACME Take Profit 14.0"],
    "cancel 17": ["cancel 17", "CANCEL 17", "  cancel   17 "],
    "cancel Ab.c-1": ["cancel Ab.c-1"],
    "buy 1,000 NKL limit 1.05": ["buy 1000 NKL at 1.05", "buy 1,000 nkl @ 1.050"],
}


@pytest.mark.parametrize("expected, variants", FORGIVING.items())
def test_forgiving_orders_have_one_canonical_form(expected, variants):
    for text in variants:
        got = canon(text)
        if expected.startswith("buy 1,000"):
            expected = "buy 1000 NKL limit 1.05"
        assert got == expected, text
        # the canonical form parses to itself, forgivingly and fast
        assert canon(got) == got
        parse_canonical_order(got)


MODIFIES = {
    "modify 17 qty 90 price 12.45": ["modify 17 to 90 at 12.45", "modify 17 qty 90 price 12.45",
                                     "modify 17 price 12.45 qty 90", "MODIFY 17 Quantity 90 @ 12.45"],
    "modify 17 qty 90": ["modify 17 qty 90", "modify 17 to 90"],
    "modify 17 price 12.45": ["modify 17 price 12.45", "modify 17 at 12.45", "modify 17 limit 12.450"],
    "modify 17 price 10.90 stop 11.00": ["modify 17 stop 11 limit 10.9", "modify 17 trigger 11 price 10.9"],
}


@pytest.mark.parametrize("expected, variants", MODIFIES.items())
def test_modify_canonical(expected, variants):
    for text in variants:
        assert canon(text, ticker="ACME") == expected, text
        assert parse_canonical_order(expected)[0] == "modify"


def test_modify_needs_the_ticker_to_resolve():
    e = error(request("modify 17 qty 90"))
    assert e.line == 4 and "ticker of order 17" in str(e)


def spaced(draw, words):
    out = []
    for w in words:
        w = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in w)
        out.append(w)
    seps = [draw(st.sampled_from([" ", "  ", "\t", " \t "])) for _ in words]
    lead = draw(st.sampled_from(["", " ", "\t"]))
    return lead + "".join(w + s for w, s in zip(out, seps))


@st.composite
def forgiving_variant(draw):
    expected, variants = draw(st.sampled_from(
        [(k, v) for k, v in FORGIVING.items() if not k.startswith(("cancel", "buy 1,000"))]))
    text = draw(st.sampled_from(variants)).replace("@", " @ ")
    return expected, spaced(draw, text.split())


@given(forgiving_variant(), st.data())
@settings(max_examples=200, deadline=None)
def test_random_case_and_spacing(case, data):
    expected, text = case
    pad = lambda: data.draw(st.sampled_from(["", " ", "\t", "  "]))   # noqa: E731
    key = lambda k: "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in k)  # noqa: E731
    lines = [f"{pad()}{key('pit')}{pad()}:{pad()}demo{pad()}",
             f"{pad()}{key('account')}{pad()}:{pad()}alice{pad()}",
             f"{pad()}{key('ref')}{pad()}:{pad()}17{pad()}",
             f"{pad()}{key('order')}{pad()}:{pad()}{text}"]
    order = data.draw(st.permutations(lines))
    req = resolve(parse_request("\n".join(order) + "\n"), INSTRUMENTS)
    assert instruction_text(req) == expected
    assert parse_canonical_order(expected)[:3] == tuple(expected.split()[:3])


CANONICAL_ORDERS = [
    ("buy 100 ACME limit 12.50", ("buy", "100", "ACME", "limit", "12.50", None)),
    ("sell 50 ACME ioc 12.55", ("sell", "50", "ACME", "ioc", "12.55", None)),
    ("sell 50 ACME fok 12.55", ("sell", "50", "ACME", "fok", "12.55", None)),
    ("buy 10 ACME market", ("buy", "10", "ACME", "market", None, None)),
    ("sell 10 ACME stop-loss 11.00", ("sell", "10", "ACME", "stop-loss", None, "11.00")),
    ("sell 10 ACME stop-limit 11.00 limit 10.90",
     ("sell", "10", "ACME", "stop-limit", "10.90", "11.00")),
    ("sell 10 ACME take-profit 14.00", ("sell", "10", "ACME", "take-profit", None, "14.00")),
    ("cancel 17", ("cancel", "17")),
    ("modify 17 qty 90 price 12.45", ("modify", "17", "90", "12.45", None)),
    ("modify x-1 stop 11.00", ("modify", "x-1", None, None, "11.00")),
]


@pytest.mark.parametrize("text, fields", CANONICAL_ORDERS)
def test_parse_canonical_order_agrees_with_the_forgiving_parser(text, fields):
    assert parse_canonical_order(text) == fields
    ins = parse_order(text)
    assert instruction_text(ins) == text
    if fields[0] in ("buy", "sell"):
        assert (ins.side, ins.qty, ins.ticker, ins.type, ins.price, ins.stop) == fields


@pytest.mark.parametrize("text", [
    "buy 100 ACME at 12.50", "buy 100 acme limit 12.50", "buy 100 ACME limit 12.50 ",
    "buy  100 ACME limit 12.50", "modify 17", "cancel", "sell 10 ACME stop 11.00",
    "buy 100 ACME limit", "buy 100 ACME limit 12,50", ""])
def test_parse_canonical_order_refuses_the_forgiving_form(text):
    with pytest.raises(MessageError, match="not a canonical order"):
        parse_canonical_order(text)


def test_canonical_steps():
    assert message.canonical_steps("12.50", 1) == 1250
    assert message.canonical_steps("1.05", 5) == 21      # tick 0.05 -> 5 hundredths
    assert message.canonical_steps("1000", 10) == 100    # lot 10
    with pytest.raises(MessageError):
        message.canonical_steps("1.03", 5)


# -- other instructions -----------------------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("Transfer", "1000 USD to alice:ACME", "1000.00 USD to alice:ACME"),
    ("Transfer", "1,000.5 usd TO Bob", "1000.50 USD to bob"),
    ("Transfer", "30 acme to alice:ACME", "30 ACME to alice:ACME"),
    ("Deposit", "1000.00 USD to alice", "1000.00 USD to alice"),
    ("Withdrawal", "10 USD from alice", "10.00 USD from alice"),
    ("Member", f"add {FPR.lower()} accounts alice2, alice", f"add {FPR} accounts alice, alice2"),
    ("Member", "add " + " ".join(FPR[i:i + 4] for i in range(0, 40, 4)) + " account bob",
     f"add {FPR} accounts bob"),
    ("Member", f"remove {FPR}", f"remove {FPR}"),
    ("Currency", "usd 0.010", "USD 0.01"),
    ("Currency", "BTC .00000001", "BTC 0.00000001"),
    ("Instrument", "acme usd tick .01 lot 1", "ACME USD tick 0.01 lot 1"),
    ("Instrument", "ACME USD TICK 0.01 LOT 1 taker 20bp maker 0.10%",
     "ACME USD tick 0.01 lot 1 maker 0.1% taker 0.2%"),
    ("Fees", "maker 0.1% taker 0.2%", "maker 0.1% taker 0.2%"),
    ("Fees", "taker 25bp maker 0%", "maker 0% taker 0.25%"),
])
def test_instructions_canonical(key, value, expected):
    assert canon(value, key) == expected
    assert canon(expected, key) == expected


def test_stamp_fields():
    req = resolve(parse_request(request("buy 100 acme @ 12.5")), INSTRUMENTS)
    assert message.stamp_fields(req) == [
        ("X-Pit-Kind", "order"), ("X-Pit-Account", "alice"), ("X-Pit-Ref", "17"),
        ("X-Pit-Ticker", "ACME"), ("X-Pit-Request", "buy 100 ACME limit 12.50")]
    req = resolve(parse_request(request("1 USD to bob", "Transfer")), INSTRUMENTS)
    assert [k for k, _ in message.stamp_fields(req)] == [
        "X-Pit-Kind", "X-Pit-Account", "X-Pit-Ref", "X-Pit-Request"]


def test_request_forgiving_block():
    text = ("# my order\n\n  pit :demo\nACCOUNT:Alice\n# comment with é is fine\n"
            "ref:   A-17\r\norder :  BUY 100 ACME AT 12.5  \n\n")
    req = resolve(parse_request(text, pit="demo"), INSTRUMENTS)
    assert request_text(req) == ("Pit: demo\nAccount: alice\nRef: A-17\n"
                                 "Order: buy 100 ACME limit 12.50\n")
    assert parse_request(request_text(req)) == parse_request(request_text(req))
    assert resolve(parse_request(request_text(req)), INSTRUMENTS) == req


# -- errors name the line ----------------------------------------------------------------

BASE = "Pit: demo\nAccount: alice\nRef: 17\n"


@pytest.mark.parametrize("text, line, words", [
    (BASE + "Ordr: buy 1 ACME market\n", 4, "unknown key 'Ordr'"),
    ("Pit: demo\nRef: 17\nOrder: buy 1 ACME market\n", 4, "missing key Account"),
    ("Pit: demo\nAccount: alice\nOrder: buy 1 ACME market\n", 4, "missing key Ref"),
    (BASE, 4, "missing instruction"),
    ("Account: alice\nOrder: buy 1 ACME market\n", 3, "missing keys Pit and Ref (end of request)"),
    ("Account: alice\n", 2, "missing keys Pit, Ref and an instruction (one of "),
    (BASE + "Order: buy 1 ACME market\nTransfer: 1 USD to bob\n", 5, "second instruction Transfer"),
    (BASE + "Ref: 18\nOrder: buy 1 ACME market\n", 4, "key Ref given twice"),
    (BASE + "Order: buy 1x ACME market\n", 4, "bad quantity '1x'"),
    (BASE + "Order: buy 1 ACME at 12.5.0\n", 4, "bad price '12.5.0'"),
    (BASE + "Order: buy 1,5 ACME at 12.50\n", 4, "bad quantity '1,5'"),
    (BASE + "Order: buy 0 ACME at 12.50\n", 4, "quantity 0 must be positive"),
    (BASE + "Order: buy 1 ACME at 12.505\n", 4, "not a multiple of the tick 0.01"),
    (BASE + "Order: buy 15 NKL at 1.05\n", 4, "not a multiple of the lot 10"),
    (BASE + "Order: buy 1 ZZZ at 1\n", 4, "unknown ticker ZZZ"),
    (BASE + "Order: buy 1 ACME at 12.50 please\n", 4, "unexpected 'please'"),
    (BASE + "Order: buy 1 ACME\n", 4, "missing price"),
    (BASE + "Order: buy 1 ACME at 12 at 13\n", 4, "two limit prices"),
    (BASE + "Order: buy 1 ACME market ioc\n", 4, "market order takes no"),
    (BASE + "Order: buy 1 ACME ioc\n", 4, "missing price"),
    (BASE + "Order: buy 1 ACME stop 11 fok\n", 4, "stop order cannot be fok"),
    (BASE + "Order: sell 1 ACME tp 14 limit 13\n", 4, "take-profit order takes only"),
    (BASE + "Order: hold 1 ACME\n", 4, "expected 'buy', 'sell'"),
    (BASE + "Order: cancel 17 now\n", 4, "unexpected 'now'"),
    (BASE + "Order: modify 17\n", 4, "modify needs at least one"),
    (BASE + "Order: modify 17 qty 1 qty 2\n", 4, "modify names qty twice"),
    ("Pit: demo\nAccount: Alice!\nRef: 17\nOrder: buy 1 ACME market\n", 2, "bad account 'Alice!'"),
    ("Pit: demo\nAccount: 9lives\nRef: 17\nOrder: buy 1 ACME market\n", 2, "bad account"),
    ("Pit: demo\nAccount: alice\nRef: 17/1\nOrder: buy 1 ACME market\n", 3, "bad ref"),
    ("Pit: Demo Pit\nAccount: alice\nRef: 1\nOrder: buy 1 ACME market\n", 1, "bad pit name"),
    (BASE + "Member: add 0123 accounts alice\n", 4, "bad fingerprint"),
    (BASE + f"Member: add {FPR}Z accounts alice\n", 4, "bad fingerprint"),
    (BASE + f"Member: add {FPR} accounts alice, alice\n", 4, "listed twice"),
    (BASE + f"Member: add {FPR}\n", 4, "expected 'add FINGERPRINT accounts"),
    (BASE + "Transfer: 5 USD to alice\n", 4, "to itself"),
    (BASE + "Transfer: 5 USD alice\n", 4, "expected 'Transfer: AMOUNT ASSET to ACCOUNT'"),
    (BASE + "Transfer: 5 XYZ to bob\n", 4, "unknown asset XYZ"),
    (BASE + "Transfer: 5.001 USD to bob\n", 4, "not a multiple"),
    (BASE + "Withdrawal: 5 USD to alice\n", 4, "from ACCOUNT"),
    (BASE + "Currency: usd\n", 4, "expected 'Currency: CODE MINOR-UNIT'"),
    (BASE + "Instrument: ACME EUR tick 0.01 lot 1\n", 4, "unknown currency EUR"),
    (BASE + "Instrument: ACME USD tick 0.001 lot 1\n", 4, "not a whole number of USD minor units"),
    (BASE + "Instrument: ACME USD tick 0.01 lot 1 maker 0.1%\n", 4, "give both"),
    (BASE + "Fees: maker 0.1 taker 0.2%\n", 4, "bad maker rate"),
    ("", 1, "empty request"),
    ("\n\n# only comments\n", 1, "empty request"),
    ("Pit: demo\nthis is not a key line\n", 2, "expected 'Key: value'"),
    ("Pit: démo\nAccount: alice\n", 1, "non-ASCII character 'é' at column 7"),
    ("Pit: demo\nAccount: alice\x07\n", 2, "control character"),
    ("Pit: demo\n" + "# " + "x" * 1000 + "\n", 2, "at most 1000"),
    ("Pit: demo\nAccount:\n", 2, "key Account has no value"),
])
def test_errors_name_the_line(text, line, words):
    e = error(text)
    assert e.line == line, str(e)
    assert words in str(e), str(e)
    assert str(e).startswith(f"line {line}: ")


def test_wrong_pit():
    with pytest.raises(MessageError, match="line 1: request is for pit 'demo', not this pit 'other'"):
        parse_request(BASE + "Order: buy 1 ACME market\n", pit="other")


# -- whole messages: every kind round-trips ------------------------------------------------

def kinds():
    req = resolve(parse_request(BASE + "Order: buy 100 acme @ 12.5\n"), INSTRUMENTS)
    op = parse_request("Pit: demo\nAccount: operator\nRef: op-1\n"
                       "Instrument: ACME USD tick 0.01 lot 1 maker 0.1% taker 0.2%\n")
    h = [f"{i:064x}" for i in range(1, 4)]
    return [
        req, op,
        Report("specialist ACME", "demo", 1001, 2000,
               ("accepted 1001 alice 17 buy 100 ACME limit 12.50",
                "trade 1002 1001 100 @ 12.50"), "1 trade"),
        Report("transfers", "demo", 5, 5, ("transferred 1000.00 USD alice -> alice:ACME",)),
        Report("specialist ACME", "demo", 3, 2),
        Checkpoint("specialist ACME", "demo", 2000, ("book ACME", "bid 1001 alice 100 12.50 café")),
        Checkpoint("positions", "demo", 0),
        Seal("demo", 1, tuple(h)),
        Rejection("demo", "unknown key 'Ordr' (expected one of Pit, Account, ...)", 4,
                  "<abc.123@example.org>",
                  (("From", "Alice <alice@example.org>"), ("Subject", "my order é"),
                   ("X-Empty", ""))),
        Rejection("demo", "bad signature"),
    ]


@pytest.mark.parametrize("content", kinds(), ids=lambda c: type(c).__name__)
def test_round_trip(content):
    data = write_message(content, ENV)
    assert write_message(content, ENV) == data                  # deterministic
    back, env = read_message(data, INSTRUMENTS if isinstance(content, message.Request) else None)
    assert back == content and env == ENV
    assert write_message(back, env) == data
    head = data.split(b"\n\n", 1)[0]
    assert head.isascii()
    assert b"Date: Sun, 22 Nov 2026 00:52:38 +0000\n" in head
    assert b"Message-ID: <" in head and b"@demo.example>\n" in head
    charset = b"us-ascii" if data.isascii() else b"utf-8"
    assert b"Content-Type: text/plain; charset=" + charset in head


def test_report_message_reads_well():
    data = write_message(kinds()[2], ENV)
    assert data.decode() == (
        "From: notary@demo.example\nTo: alice@example.org\n"
        "Subject: ACME report 1001-2000: 1 trade\n"
        "Date: Sun, 22 Nov 2026 00:52:38 +0000\n"
        "Message-ID: <report.demo.specialist=ACME.1001-2000@demo.example>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
        "Content-Transfer-Encoding: 7bit\n\n"
        "Report: specialist ACME\nPit: demo\nFrom-Seq: 1001\nTo-Seq: 2000\n\n"
        "accepted 1001 alice 17 buy 100 ACME limit 12.50\ntrade 1002 1001 100 @ 12.50\n")


def test_rejection_subject_and_threading():
    data = write_message(kinds()[8], ENV).decode()
    assert "Subject: Rejected: unknown key 'Ordr'" in data
    assert "In-Reply-To: <abc.123@example.org>\n" in data
    assert "\n> Subject: my order é\n" in data


def test_seal_body():
    s = kinds()[7]
    text = message.seal_text(s)
    assert text.startswith(f"Pit: demo\nSeal: 1-3\nHead: {s.hashes[2]}\n\n1 {s.hashes[0]}\n")
    assert message.parse_seal(text) == s


@pytest.mark.parametrize("mangle, line, words", [
    (lambda t: t.replace("2 " + "0" * 63 + "2", "4 " + "0" * 63 + "2"), 6, "expected record 2"),
    (lambda t: t.replace("Seal: 1-3", "Seal: 1-4"), 8, "lists 3 records, expected 4"),
    (lambda t: t.replace("Head: " + "0" * 63 + "3", "Head: " + "0" * 63 + "2"), 3, "Head is not"),
    (lambda t: t.replace("Head: ", "Hd: "), 3, "expected 'Head: ...'"),
])
def test_seal_errors(mangle, line, words):
    text = mangle(message.seal_text(kinds()[7]))
    with pytest.raises(MessageError) as info:
        message.parse_seal(text)
    assert info.value.line == line and words in str(info.value)


@pytest.mark.parametrize("text, line, words", [
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: x\n\n", 3, "bad Seq 'x'"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 3\nbook\n", 4, "expected a blank line"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 3\n\nbook \n", 5, "trailing whitespace"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 3\n\nbook\n\n", 6, "blank line"),
    ("Checkpoint: Specialist\nPit: demo\nSeq: 3\n\n", 1, "bad filter name"),
    ("Checkpoint: specialist ACME\nPit: demo\n", 3, "missing 'Seq: ...'"),
    ("Checkpoint: specialist ACME\nPit: demo\nSeq: 3\n\n" + "x" * 1001 + "\n", 5, "at most 1000"),
])
def test_checkpoint_errors(text, line, words):
    with pytest.raises(MessageError) as info:
        message.parse_checkpoint(text)
    assert info.value.line == line and words in str(info.value), str(info.value)


def test_report_errors():
    with pytest.raises(MessageError, match="line 4: bad report range 5-3"):
        message.parse_report("Report: transfers\nPit: demo\nFrom-Seq: 5\nTo-Seq: 3\n\n")
    with pytest.raises(MessageError, match="line 6: control character"):
        message.parse_report("Report: transfers\nPit: demo\nFrom-Seq: 5\nTo-Seq: 6\n\nx\x1b\n")


def test_read_message_refuses_non_canonical_bytes():
    data = write_message(kinds()[5], ENV)
    with pytest.raises(MessageError, match="not in canonical form"):
        read_message(data.replace(b"Subject: ACME checkpoint 2000", b"Subject: hello"))
    with pytest.raises(MessageError, match="line 3: bad Seq"):
        read_message(data.replace(b"Seq: 2000", b"Seq: two"))
    with pytest.raises(MessageError, match="no blank line"):
        read_message(b"From: a@b\n")


def test_envelope_errors():
    with pytest.raises(MessageError, match="bad time"):
        Envelope("a@b", "c@d", "2026-11-22 00:52:38")
    with pytest.raises(MessageError, match="bad sender address"):
        Envelope("not an address", "c@d", "2026-11-22T00:52:38Z")


def test_filter_output_matches_the_filter_driver_bodies():
    body = "Checkpoint: specialist ACME\nPit: demo\nSeq: 7\n\nbook ACME\n"
    data = message.filter_output("checkpoint", "specialist ACME", "demo", body,
                                 "2026-11-22T00:52:38.5Z")
    assert data.endswith(b"\n\n" + body.encode())
    assert b"From: specialist-acme@demo.pit\n" in data
    assert read_message(data)[0] == message.parse_checkpoint(body)


def test_kind_of():
    assert message.kind_of({"X-Pit-Kind": "order"}) == "order"
    assert message.kind_of([("x-pit-kind", "seal ")]) == "seal"
    assert message.kind_of({"Subject": "hi"}) is None
    with pytest.raises(MessageError, match="unknown X-Pit-Kind"):
        message.kind_of({"X-Pit-Kind": "gossip"})
    for content in kinds():
        body = write_message(content, ENV).split(b"\n\n", 1)[1].decode()
        expected = {"Report": "report", "Checkpoint": "checkpoint", "Seal": "seal",
                    "Rejection": "rejection"}.get(type(content).__name__)
        assert message.kind_of_text(body) == (expected or content.kind)
