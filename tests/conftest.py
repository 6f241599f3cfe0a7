"""Shared fixtures: a small pit built once a session with pit.ops, copied
for each test that changes it, and helpers to sign requests as a member.

Keys are real GnuPG keys (pit.testkeys) in temp homes; every gpg-agent the
session starts is stopped at its end, so nothing is left running.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pit import mbox, message, ops, signed, testkeys
from pit.archive import Archive
from pit.keyring import Keyring
from pit.pitdir import Pit

PIT = "demo"
OTHER = "other"
# name, algorithm, kind (pit.testkeys): who signs in these tests
KEY_SPECS = [("alice", "ed25519"), ("bob", "ed25519"), ("carol", "ed25519"),
             ("mallory", "ed25519"), ("old", "ed25519", "expired"),
             ("gone", "ed25519", "revoked")]
# accounts each member of pit "demo" owns (mallory is nobody's member; carol
# is a member of pit "other" only)
DEMO_MEMBERS = {"alice": ["alice"], "bob": ["bob"], "old": ["old"], "gone": ["gone"]}
OTHER_MEMBERS = {"carol": ["carol"], "alice": ["alice"]}
DEMO_SETUP = [("Currency", "USD 0.01"), ("Currency", "EUR 0.01"),
              ("Instrument", "ACME USD tick 0.01 lot 1"),
              ("Instrument", "BTC EUR tick 0.5 lot 0.1")]

_HOMES: list[Path] = []


def pytest_configure(config):
    """SIGTERM (a CI job's time limit, ``timeout``, ``kill``) stops the run
    as Ctrl-C does, through the fixtures' teardown: the gpg-agents, Mailman,
    Postfix and namespaces the tests started are stopped, not left behind
    (tests/test_interrupted.py)."""
    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)


def _stop_agents(base: Path) -> None:
    """Stop the gpg-agent of every GnuPG home under *base* (ours only),
    including homes already deleted (pit.ops.add_member's tmp.gnupg)."""
    from pit.keyring import gpg_home
    for home in {p.parent for p in base.rglob("pubring.kbx")}:
        subprocess.run(["gpgconf", "--homedir", gpg_home(home), "--kill", "all"],
                       capture_output=True, check=False)
    from pit import agents
    agents.stop(agents.running([base]))     # a long home's agent runs under its short link


@pytest.fixture(scope="session", autouse=True)
def _agents_stopped(tmp_path_factory):
    """Stop the agents of the homes tests registered in _HOMES, then make
    sure the suite left no other agent in its temporary directories or in
    the checkout (a command or fixture that forgot its own fails here)."""
    from pit import agents
    watched = [tmp_path_factory.getbasetemp(), Path(__file__).resolve().parent.parent]
    before = set(agents.running(watched))
    yield
    for base in _HOMES:
        _stop_agents(base)
    agents.stop(set(agents.running(_HOMES)) - before)
    deadline = time.monotonic() + 3         # gpgconf --kill returns before the agent is gone
    while True:
        left = {pid: home for pid, home in agents.running(watched).items() if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    agents.stop(left)
    assert not left, f"the tests left gpg-agents running in {sorted(set(left.values()))}"


@pytest.fixture(autouse=True)
def _tmp_agents_stopped(request):
    """A test's own tmp_path goes with the test: so do the gpg-agents
    started in homes under it."""
    yield
    tmp = (getattr(request.node, "funcargs", None) or {}).get("tmp_path")   # None once interrupted
    if tmp is not None:
        from pit import agents
        agents.stop(agents.running([tmp]))


@pytest.fixture(scope="session")
def keyhome(tmp_path_factory) -> Path:
    """The members' signing home (secret keys), made once a session."""
    base = tmp_path_factory.mktemp("signers")
    _HOMES.append(base)
    home = base / "home"
    testkeys.make_keys(home, KEY_SPECS)
    return home


class Kit:
    """One pit plus the members' signing home: sign, deliver, count."""

    def __init__(self, root: Path, keyhome: Path):
        self.root = Path(root)
        self.keyhome = keyhome
        self.ring = Keyring(keyhome)
        self._fprs = None

    @property
    def pit(self) -> Pit:
        return Pit(self.root)

    def fpr(self, name: str) -> str:
        if self._fprs is None:
            self._fprs = {n: i["fpr"] for n, i in testkeys._meta(self.keyhome).items()}
        return self._fprs[name]

    def sign(self, who: str, text: str, mime: bool = False, pit_address: str | None = None,
             extra_headers=()) -> bytes:
        """A whole email of *text* signed by test key *who* (at the time its
        kind needs), addressed to this pit."""
        at = testkeys.signing_time(self.keyhome, who)
        headers = [("From", f"{who}@{testkeys.DOMAIN}"), ("To", pit_address or self.pit.address),
                   ("Subject", "pit request"),
                   ("Message-ID", f"<{time.time_ns()}.{who}@{testkeys.DOMAIN}>"),
                   *extra_headers]
        compose = signed.compose_pgp_mime if mime else signed.compose_clearsigned
        return compose(headers, text, self.ring, self.fpr(who), at=at)

    def request(self, who: str, ref: str, key: str, value: str, account: str | None = None,
                pit: str | None = None, mime: bool = False) -> bytes:
        """A request for this pit (named with its identity), or with *pit*
        another pit's name, as written."""
        line = ops.pit_line(self.pit) if pit in (None, self.pit.name) else pit
        return self.sign(who, ops.request_text(line, account or who, ref, key, value), mime=mime)

    def notary(self, **kw):
        from moderator.notary import Notary
        return Notary(self.root, **kw)

    def records(self) -> list[tuple[int, bytes]]:
        return list(Archive(self.root).read())

    def rejects(self) -> list[bytes]:
        p = self.root / "rejects" / "rejects.mbox"
        return list(mbox.iter_file(p)) if p.exists() else []

    def notices(self) -> list[bytes]:
        p = self.root / "outbox" / "notices.mbox"
        return list(mbox.iter_file(p)) if p.exists() else []

    def operator(self, key: str, value: str):
        return ops.operator_request(self.pit, key, value)


def _build(base: Path, keyhome: Path, name: str, members: dict, setup) -> Path:
    root = base / name
    pit = ops.init(root, name)
    kit = Kit(root, keyhome)
    for key, value in setup:
        d = ops.operator_request(pit, key, value)
        assert d.accepted, d.reason
    meta = testkeys._meta(keyhome)
    for who, accounts in members.items():
        # "old" has expired already: pit member add would refuse it, and the
        # tests need a member whose key expired after it joined
        d = ops.member_request(pit, meta[who]["fpr"], meta[who]["public"], accounts)
        assert d.accepted, d.reason
        if "revocation" in meta[who]:
            kit_ring = Keyring(pit.gnupg)
            kit_ring.import_revocation(meta[who]["revocation"])
    return root


@pytest.fixture(scope="session")
def template_pits(tmp_path_factory, keyhome) -> tuple[Path, Path]:
    """Pit "demo" (currencies, instruments, members) and pit "other", built
    once through pit.ops; tests copy them with :func:`kit`."""
    base = tmp_path_factory.mktemp("template")
    _HOMES.append(base)
    demo = _build(base, keyhome, PIT, DEMO_MEMBERS, DEMO_SETUP)
    other = _build(base, keyhome, OTHER, OTHER_MEMBERS, [("Currency", "USD 0.01")])
    _stop_agents(base)
    return demo, other


def funded_pit(base: Path) -> Pit:
    """Pit ``demo`` in *base*/pit trading ACME in USD: alice and bob (real
    keys in *base*/NAME) are members, funded (10000.00 USD, 500 ACME), and
    have moved the funds into their ACME trading accounts (the transfers
    filter has run).  ``pit.keys`` is {name: (keyring, fpr)};
    ``pit.send(name, ref, key, value)`` signs a request and delivers it."""
    _HOMES.append(base)
    p = ops.init(base / "pit", PIT)
    for k, v in [("Currency", "USD 0.01"), ("Instrument", "ACME USD tick 0.01 lot 1")]:
        assert ops.operator_request(p, k, v).accepted
    keys = {}
    for name in ("alice", "bob"):
        ring = Keyring(base / name)
        fpr = ring.generate(name, f"{name}@example.org")
        assert ops.add_member(p, ring.export(fpr), [name])[1].accepted
        keys[name] = (ring, fpr)
    assert ops.operator_request(p, "Deposit", "10000.00 USD to alice").accepted
    assert ops.operator_request(p, "Deposit", "500 ACME to bob").accepted

    def send(name, ref, key, value):
        ring, fpr = keys[name]
        ops.send_local(p, ops.sign_request(p, ops.request_text(p, name, ref, key, value),
                                           ring, fpr, f"{name}@example.org"))
    p.keys, p.send = keys, send
    send("alice", "t", "Transfer", "5000.00 USD to alice:ACME")
    send("bob", "t", "Transfer", "500 ACME to bob:ACME")
    assert all(d.accepted for d in ops.notary(p).run_maildir())
    ops.run_filter(p, "transfers", [])
    return p


def copy_pit(src: Path, dst: Path) -> Path:
    # agent sockets belong to the source home and must not be copied
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    return dst


def traded_pit(base: Path) -> tuple[Path, dict]:
    """:func:`funded_pit` after a little trading (orders, the specialist's
    reports and checkpoints, seals), its agents stopped: a template that
    :func:`copy_of_traded` copies for each test.  Returns (base, keys)."""
    p = funded_pit(base)
    p.send("alice", "o1", "Order", "buy 10 ACME at 12.50")
    p.send("bob", "o1", "Order", "sell 4 ACME at 12.50")
    ops.notary(p).run_maildir()
    ops.run_filter(p, "specialist", ["ACME"])
    p.send("bob", "o2", "Order", "sell 3 ACME at 12.50")
    ops.notary(p).run_maildir()
    ops.run_filter(p, "specialist", ["ACME"])
    for ring, _ in p.keys.values():
        ring.stop_agent()
    return base, p.keys


def copy_of_traded(template: tuple[Path, dict], tmp_path: Path) -> Pit:
    """A test's own copy of a :func:`traded_pit`, with its members' keys."""
    base, keys = template
    p = Pit(copy_pit(base / "pit", tmp_path / "pit"))
    p.keys = keys
    return p


@pytest.fixture
def kit(template_pits, keyhome, tmp_path) -> Kit:
    """A fresh copy of pit "demo" for one test."""
    _HOMES.append(tmp_path)
    return Kit(copy_pit(template_pits[0], tmp_path / PIT), keyhome)


@pytest.fixture
def other_kit(template_pits, keyhome, tmp_path) -> Kit:
    """A fresh copy of pit "other" for one test."""
    _HOMES.append(tmp_path)
    return Kit(copy_pit(template_pits[1], tmp_path / OTHER), keyhome)


# -- synthetic records for in-process filter tests (no gpg) ----------------------

def body_of(msg: bytes) -> str:
    """The text after the header block of a message (or of a record)."""
    _, original = mbox.split_stamp(msg)
    return original.partition(b"\n\n")[2].decode("utf-8")


def plain_or_signed_text(msg: bytes) -> str:
    """pit.filter.signed_text for synthetic records: the plain body when the
    original carries no signature, else the signed text."""
    _, original = mbox.split_stamp(msg)
    if b"-----BEGIN PGP SIGNED MESSAGE-----" in original or b"multipart/signed" in original:
        return signed.extract(original).text
    return body_of(msg)


@pytest.fixture
def plain_records(monkeypatch):
    """Let the filters read reports and checkpoints of synthetic records."""
    import filters.positions
    import filters.specialist
    import filters.transfers
    import pit.filter
    for mod in (pit.filter, filters.specialist, filters.transfers, filters.positions):
        monkeypatch.setattr(mod, "signed_text", plain_or_signed_text)


class Tape:
    """Records numbered from 1, notary times one millisecond apart, each a
    plain (unsigned) message whose stamp the notary's own functions make
    (``moderator.notary.request_fields`` and ``stamp_text``): a cancel or
    modify gets the ticker of the order it names exactly as in a real pit,
    and a request the notary would refuse raises its ``Refused``.  Only
    :meth:`forged` writes a stamp no notary would, for tests of a filter's
    defences against a damaged or hostile archive."""

    def __init__(self, pit: str = PIT):
        self.pit, self.seq, self.msgs = pit, 0, []
        self.refs: dict[tuple[str, str], tuple[int, str]] = {}
        self.instruments, self.currencies, self.fees = {}, {}, None

    def _time(self, seq: int) -> int:
        return 1_795_305_600_000_000 + seq * 1000          # 2026-11-22T00:00:00Z + seq ms

    def _append(self, fields: list[tuple[str, str]], original: bytes, seq: int | None = None) -> bytes:
        from moderator.notary import stamp_text
        if seq is None:
            self.seq += 1
            seq = self.seq
        msg = stamp_text(seq, self._time(seq), "0" * 64, "0" * 64, "F" * 40, fields).encode() + original
        st = {k.lower(): v for k, v in fields}
        if st.get("x-pit-ref"):
            self.refs[st["x-pit-account"], st["x-pit-ref"]] = (seq, st.get("x-pit-ticker", ""))
        self.msgs.append(msg)
        return msg

    def request(self, account: str, ref: str, key: str, value: str) -> bytes:
        """A request record: *value* (any input form) stamped as the notary stamps it."""
        from pit import kinds
        from moderator.notary import request_fields
        text = ops.request_text(self.pit, account, ref, key, value)
        req = message.parse_request(text)
        fields = request_fields(req, self.instruments, self.currencies, self.fees, self.refs)
        st = dict(fields)
        kind = st["X-Pit-Kind"]
        if kind in ("currency", "instrument", "fees"):
            ins = kinds.parse(kind, st["X-Pit-Request"])
            if kind == "currency":
                self.currencies[ins.code] = ins.currency()
            elif kind == "fees":
                self.fees = ins
            else:
                self.instruments[ins.ticker] = ins.instrument(self.currencies, self.fees)
        original = f"From: {account.replace(':', '-')}@pit.test\nSubject: {kind}\n\n{text}"
        return self._append(fields, original.encode())

    def op(self, kind: str, request: str) -> bytes:
        return self.request("operator", f"op-{self.seq + 1}", kind.capitalize(), request)

    def order(self, account: str, ref: str, request: str) -> bytes:
        return self.request(account, ref, "Order", request)

    def transfer(self, account: str, ref: str, request: str) -> bytes:
        return self.request(account, ref, "Transfer", request)

    def _filter_output(self, text: str) -> bytes:
        fields = message.filter_stamp(text).fields()
        kind = text.split(":")[0].lower()
        return self._append(fields, f"From: filter@pit.test\nSubject: {kind}\n\n{text}".encode())

    def report(self, name: str, pit: str, first: int, last: int, lines: list[str]) -> bytes:
        body = "\n".join([f"Report: {name}", f"Pit: {pit}", f"From-Seq: {first}",
                          f"To-Seq: {last}", ""] + lines) + "\n"
        return self._filter_output(body)

    def checkpoint_of(self, output_msg: bytes, name: str, covered: int) -> bytes:
        """A filter's unstamped checkpoint output as a record (as `pit post` would make it)."""
        return self._filter_output(body_of(output_msg))

    def forged(self, kind: str, account: str, request: str, ref: str | None = None,
               ticker: str | None = None, body: str | None = None) -> bytes:
        """A record no notary would write (a stamp that lies, a request it
        would refuse, a damaged checkpoint): only for tests of how a filter
        meets a hostile archive."""
        seq = self.seq + 1
        fields = [("X-Pit-Pit", self.pit), ("X-Pit-Kind", kind), ("X-Pit-Account", account),
                  ("X-Pit-Ref", ref or f"r{seq}")]
        if ticker:
            fields.append(("X-Pit-Ticker", ticker))
        fields.append(("X-Pit-Request", request))
        text = body if body is not None else f"Pit: {self.pit}\nAccount: {account}\n{kind}: {request}\n"
        return self._append(fields, (f"From: {account.replace(':', '-')}@pit.test\n"
                                     f"Subject: {kind}\n\n" + text).encode())


class Exchange:
    """The filters of a pit run in process over a Tape, each report fed back
    in as a record (what `pit post` does): transfers, one specialist per
    ticker, positions."""

    def __init__(self, tickers=("ACME", "BTC"), tape: Tape | None = None):
        from filters.positions import Positions
        from filters.specialist import Specialist
        from filters.transfers import Transfers
        self.tape = tape or Tape()
        self.filters = [Transfers()] + [Specialist([t]) for t in tickers] + [Positions()]
        self.posted = {id(f): 0 for f in self.filters}

    @property
    def transfers(self):
        return self.filters[0]

    @property
    def positions(self):
        return self.filters[-1]

    def specialist(self, ticker: str):
        return next(f for f in self.filters[1:-1] if ticker in f.tickers)

    def feed(self, msg: bytes) -> None:
        st = mbox.stamp(msg)
        seq = int(st["x-pit-seq"])
        for f in self.filters:
            f.feed(seq, st, msg)

    def add(self, msg: bytes) -> None:
        """Feed one record, then post and feed every filter's new report
        lines until nothing new is said."""
        self.feed(msg)
        busy = True
        while busy:
            busy = False
            for f in self.filters[:-1]:
                new = f.lines[self.posted[id(f)]:]
                if new:
                    self.posted[id(f)] = len(f.lines)
                    self.feed(self.tape.report(f.name, f.pit, f.first_seq, f.seq, new))
                    busy = True

    def lines(self) -> list[str]:
        return [ln for f in self.filters for ln in f.lines]
