"""The notary's LMTP server (pit.lmtpserver) on the wire.

* its DATA reader takes what aiosmtpd's took from the same bytes (many
  random and edge messages, both servers on real sockets);
* pipelined messages (DATA and BDAT) are read while earlier ones commit,
  and their replies come in order, each once its record is durable;
* hostile input, against the real notary's server: over-long lines, a
  message over the size limit, bare LF, commands out of sequence,
  garbage, a client that vanishes mid-DATA, a silent client, too many
  recipients; each gets a clear reply and the server serves on.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time

import pytest

from pit import mbox
from pit.archive import Archive
from pit.lmtpserver import LMTPServer
from pit.mailhost import LMTPClient, _LMTPController, free_port

from test_lmtp_group import Served, _archived, _digest


# -- the DATA reader against aiosmtpd's ------------------------------------------------

class _Keep:
    """Both servers' handler: each message's content by its MAIL FROM."""

    def __init__(self):
        self.got: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def rcpt(self, address):                     # pit.lmtpserver
        return None

    def data(self, mail_from, rcpts, content):
        with self.lock:
            self.got[mail_from] = content
        return ["250 2.0.0 kept"] * len(rcpts)

    async def handle_DATA(self, server, session, envelope):     # aiosmtpd
        with self.lock:
            self.got[envelope.mail_from] = envelope.original_content
        return "\r\n".join("250 kept" for _ in envelope.rcpt_tos)


def _talk(port: int, stream: bytes, timeout: float = 60, half_close: bool = False) -> bytes:
    """Write ``stream`` (ending in QUIT, or ``half_close``: then shut the
    writing side) and read every reply until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        got = bytearray()

        def read():
            while chunk := s.recv(1 << 16):
                got.extend(chunk)
        reader = threading.Thread(target=read)
        reader.start()
        s.sendall(stream)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        reader.join(timeout)
        assert not reader.is_alive(), "the server did not close after QUIT"
        return bytes(got)


def _random_message(rng: random.Random) -> bytes:
    """A message's content as its sender meant it: lines of random bytes,
    dots first, CR and LF alone, lines near the length limit, empty ones."""
    pieces = [b"a", b".", b"..", b"\r", b" ", b"\x00", b"\xff", b"From ", b">", b"x" * 37]
    if rng.random() < 0.15:
        pieces.append(b"\n")
    lines = []
    for _ in range(rng.choice([0, 1, 2, 5, 30])):
        kind = rng.random()
        if kind < 0.05:
            line = b"x" * rng.choice([997, 998, 999, 1000, 1001, 1500, 3000])
        elif kind < 0.15:
            line = b"." * rng.randint(1, 3) + rng.choice([b"", b"x", b"\r", b"."])
        else:
            line = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        lines.append(line)
    text = b"\r\n".join(lines)
    if lines and rng.random() < 0.8:
        text += b"\r\n"
    return text


def _dot_stuffed(content: bytes) -> bytes:
    """The wire form after DATA: leading dots doubled, CRLF before the final dot."""
    wire = b"\r\n".join((b"." + line if line.startswith(b".") else line)
                        for line in content.split(b"\r\n"))
    if not wire.endswith(b"\r\n") and wire:
        wire += b"\r\n"
    return wire + b".\r\n"


def test_the_data_reader_takes_what_aiosmtpd_takes_from_the_same_bytes():
    """Many random and edge messages, pipelined on one connection to each
    server: every message pit.lmtpserver takes has aiosmtpd's content;
    every one it refuses aiosmtpd refused too (too much data, too long a
    line), but for a bare LF, which pit.lmtpserver refuses (RFC 5321
    2.3.8) and aiosmtpd keeps."""
    rng = random.Random(21)
    messages = [b"", b"\r\n", b".", b"..", b".\r\n", b"..\r\n", b"a\r\n.\r\nb\r\n",
                b"x" * 999 + b"\r\n", b"x" * 1000 + b"\r\n", b"a\n.\r\n", b"a\r.\r\n",
                b"\r\n\r\n", b"." * 1000 + b"\r\n", b"y" * 6000 + b"\r\n"]
    messages += [_random_message(rng) for _ in range(600)]
    stream = bytearray(b"LHLO test\r\n")
    for i, content in enumerate(messages):
        stream += b"MAIL FROM:<m%d@example.org>\r\nRCPT TO:<pit@example.org>\r\nDATA\r\n" % i
        stream += _dot_stuffed(content)
    stream += b"QUIT\r\n"
    limit = 5000
    ours, theirs = _Keep(), _Keep()
    server = LMTPServer(ours, "127.0.0.1", free_port(), data_size_limit=limit).start()
    port = free_port()
    stock = _LMTPController(theirs, hostname="127.0.0.1", port=port, ready_timeout=10,
                            data_size_limit=limit)
    stock.start()
    try:
        _talk(server.port, bytes(stream))
        _talk(port, bytes(stream))
    finally:
        server.stop()
        stock.stop()
    kept = refused = bare = 0
    for i, content in enumerate(messages):
        key = f"m{i}@example.org"
        wire = _dot_stuffed(content)
        if key in ours.got:
            assert ours.got[key] == theirs.got.get(key), (i, content[:80])
            kept += 1
        elif b"\n" in wire.replace(b"\r\n", b""):
            bare += 1
        else:
            assert key not in theirs.got, (i, content[:80])
            refused += 1
    assert kept > 300 and refused > 10 and bare > 10, (kept, refused, bare)


class _Later(_Keep):
    """Answers each message 0.2 s later, as a commit would."""

    def data(self, mail_from, rcpts, content):
        super().data(mail_from, rcpts, content)
        loop = asyncio.get_running_loop()
        out = []
        for _ in rcpts:
            future = loop.create_future()
            loop.call_later(0.2, future.set_result, "250 2.0.0 kept")
            out.append(future)
        return out


def test_bdat_takes_the_same_content_as_data():
    """And a client that shuts its side after sending still gets every
    reply, those of messages still being committed included."""
    keep = _Later()
    content = b"Subject: x\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    with_data = (b"MAIL FROM:<d@x>\r\nRCPT TO:<p@x>\r\nDATA\r\n" + _dot_stuffed(content))
    with_bdat = (b"MAIL FROM:<b@x>\r\nRCPT TO:<p@x>\r\nBDAT 10\r\n" + content[:10]
                 + b"BDAT %d LAST\r\n" % (len(content) - 10) + content[10:])
    server = LMTPServer(keep, "127.0.0.1", free_port()).start()
    try:
        replies = _talk(server.port, b"LHLO t\r\n" + with_data + with_bdat, half_close=True)
    finally:
        server.stop()
    assert keep.got["d@x"] == keep.got["b@x"] == content
    assert b"250 2.0.0 10 octets received" in replies
    assert replies.endswith(b"250 2.0.0 kept\r\n")    # answered after the client's EOF


# -- the real notary's server ----------------------------------------------------------

class _Wire:
    """A raw LMTP connection: write bytes, read whole replies."""

    def __init__(self, port: int, timeout: float = 30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        assert self.reply()[0].startswith("220")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> list[str]:
        """One reply's lines (a multiline one whole)."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return lines or ["<closed>"]
            lines.append(line.decode("ascii").rstrip("\r\n"))
            if line[3:4] != b"-":
                return lines

    def code(self) -> str:
        return self.reply()[-1][:3]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _envelope(pit, sender: str = "t@example.org") -> bytes:
    return b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (sender.encode(), pit.address.encode())


def _wire_data(raw: bytes) -> bytes:
    return _dot_stuffed(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def test_pipelined_messages_are_read_while_earlier_ones_commit_and_answered_in_order(
        kit, monkeypatch):
    """One connection, 20 orders in one write (DATA and BDAT alternating,
    as RFC 2920/3030 allow): each reply in order, each once its record is
    durable, all of them in few groups."""
    orders = [kit.request("alice", f"pl{i}", "Order", f"buy 1 ACME at 11.{i:02d}")
              for i in range(20)]
    durable: set[str] = set()
    real = Archive.append

    def noting(self, messages):
        messages = list(messages)
        out = real(self, messages)
        durable.update(mbox.stamp(m[0]).get("x-pit-digest") for m in messages)
        return out
    monkeypatch.setattr(Archive, "append", noting)
    with Served(kit.pit) as s:
        w = _Wire(s.server.port)
        w.send(b"LHLO t\r\n")
        assert "250-PIPELINING" in w.reply()
        stream = bytearray()
        for i, order in enumerate(orders):
            stream += _envelope(kit.pit)
            if i % 2:
                data = order.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                stream += b"BDAT %d LAST\r\n" % len(data) + data
            else:
                stream += b"DATA\r\n"
        # DATA needs its 354 first: send up to each DATA, then its message
        parts = bytes(stream).split(b"DATA\r\n")
        w.send(parts[0] + b"DATA\r\n")
        answers = []
        for i, order in enumerate(orders):
            for _ in range(2):                       # MAIL, RCPT
                assert w.code() == "250"
            if i % 2 == 0:
                assert w.code() == "354"
                rest = parts[i // 2 + 1]
                w.send(_wire_data(order) + rest + (b"DATA\r\n" if i // 2 + 1 < len(parts) - 1
                                                  else b""))
            line = w.reply()[-1]
            assert line.startswith("250") and "notarized" in line, (i, line)
            assert _digest(order) in durable, f"reply {i} before its record was durable"
            answers.append(line)
        w.send(b"QUIT\r\n")
        assert w.code() == "221"
        w.close()
    seqs = [_archived(kit.root)[_digest(o)] for o in orders]
    assert seqs == sorted(seqs)


def test_hostile_input_gets_a_clear_reply_and_the_server_serves_on(kit):
    order = kit.request("alice", "hostile-ok", "Order", "buy 1 ACME at 12.00")
    with Served(kit.pit, data_size_limit=20_000, max_recipients=3) as s:
        port = s.server.port
        w = _Wire(port)
        # out of sequence, before and after LHLO
        w.send(b"MAIL FROM:<a@b>\r\n")
        assert w.code() == "503"
        w.send(b"HELO x\r\n")
        assert w.code() == "500"
        w.send(b"LHLO t\r\n")
        w.reply()
        for command, code in [(b"RCPT TO:<%s>" % kit.pit.address.encode(), "503"),
                              (b"DATA", "503"), (b"MAIL FROM:<a@b>", "250"),
                              (b"MAIL FROM:<a@b>", "503"), (b"DATA", "503"),
                              (b"RCPT TO:<nobody@nowhere.example>", "550"),
                              (b"RCPT TO:<<a@b>>", "553"), (b"RSET", "250"),
                              (b"MAIL FROM:<a@b> SIZE=999999999", "552"),
                              (b"MAIL FROM:<a@b> FOO=1", "555"),
                              (b"FROB", "500"), (b"\xff\xfe", "500"), (b"", "500"),
                              (b"NOOP " + b"x" * 5000, "500"), (b"NOOP", "250"),
                              (b"NOOP\n", "500")]:
            w.send(command + (b"" if command.endswith(b"\n") else b"\r\n"))
            got = w.reply()
            assert got[-1][:3] == code, (command[:40], got)
        # too many recipients: the fourth of the pit's address is refused
        w.send(b"MAIL FROM:<a@b>\r\n" + b"RCPT TO:<%s>\r\n" % kit.pit.address.encode() * 4)
        assert [w.code() for _ in range(5)] == ["250", "250", "250", "250", "452"]
        w.send(b"RSET\r\n")
        assert w.code() == "250"
        # a line too long, a bare LF, too much data: one reply each, nothing kept
        for body, code in [(b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n", "500"),
                           (b"Subject: x\r\n\r\nbare\nLF\r\n", "550"),
                           (b"Subject: x\r\n\r\n" + (b"z" * 900 + b"\r\n") * 30, "552")]:
            w.send(_envelope(kit.pit) + b"DATA\r\n")
            assert [w.code() for _ in range(3)] == ["250", "250", "354"]
            w.send(body + b".\r\n")
            got = w.reply()
            assert got[-1][:3] == code, got
        # BDAT without a transaction: the chunk is read and refused
        w.send(b"BDAT 5 LAST\r\nQUIT\r\nNOOP\r\n")  # 'QUIT\r' is the chunk
        assert w.code() == "503"
        assert w.code() == "500"                   # the bare LF left over
        assert w.code() == "250"
        # and a good order on the same connection
        w.send(_envelope(kit.pit) + b"DATA\r\n")
        assert [w.code() for _ in range(3)] == ["250", "250", "354"]
        w.send(_wire_data(order))
        assert "notarized" in w.reply()[-1]
        w.close()

        # garbage until the server has had enough: 421, closed
        g = _Wire(port)
        g.send(b"\x00\x01garbage\r\n" * 25)
        got = [g.reply()[-1] for _ in range(21)]
        assert got[-1].startswith("421"), got
        assert g.reply() == ["<closed>"]
        g.close()

        # a client that vanishes mid-DATA: nothing of its message is kept
        half = kit.request("alice", "hostile-half", "Order", "buy 1 ACME at 12.01")
        v = _Wire(port)
        v.send(b"LHLO t\r\n")
        v.reply()
        v.send(_envelope(kit.pit) + b"DATA\r\n")
        assert [v.code() for _ in range(3)] == ["250", "250", "354"]
        v.send(_wire_data(half)[:len(half) // 2])
        v.close()
        # BDAT with no size it can be read by: 501, closed
        b = _Wire(port)
        b.send(b"LHLO t\r\n")
        b.reply()
        b.send(b"BDAT lots\r\nMAIL FROM:<smuggled@x>\r\n")
        assert b.code() == "501"
        assert b.reply() == ["<closed>"]
        b.close()

        # still serving
        with LMTPClient(s.server.host, port) as c:
            again = kit.request("alice", "hostile-after", "Order", "buy 1 ACME at 12.02")
            code, text = c.send(again, "t@example.org", [kit.pit.address])[kit.pit.address]
            assert code == 250 and "notarized" in text, text
    archived = _archived(kit.root)
    assert _digest(order) in archived and _digest(again) in archived
    assert _digest(half) not in archived


def test_a_silent_client_is_closed_after_the_timeout(kit):
    with Served(kit.pit, timeout=0.5) as s:
        w = _Wire(s.server.port)
        w.send(b"LHLO t\r\n")
        w.reply()
        started = time.monotonic()
        got = w.reply()
        assert got[-1].startswith("421") and "timeout" in got[-1], got
        assert 0.4 < time.monotonic() - started < 5
        assert w.reply() == ["<closed>"]
        w.close()
        # mid-DATA too
        w = _Wire(s.server.port)
        w.send(b"LHLO t\r\n")
        w.reply()
        w.send(_envelope(kit.pit) + b"DATA\r\nSubject: slow\r\n")
        assert [w.code() for _ in range(3)] == ["250", "250", "354"]
        assert w.reply()[-1].startswith("421")
        w.close()
        assert s.send(kit.request("alice", "after-slow", "Order", "buy 1 ACME at 12.03"))[0] == 250


def test_a_client_that_keeps_talking_is_not_timed_out():
    """The silence is timed from the client's last line, not from the
    connection's start (the server moves one timer a connection lazily,
    not at each read): commands every 0.15 s for three timeouts of 0.4 s
    are all answered; then the silence gets its 421."""
    server = LMTPServer(_Keep(), "127.0.0.1", free_port(), timeout=0.4).start()
    try:
        w = _Wire(server.port)
        w.send(b"LHLO t\r\n")
        w.reply()
        started = time.monotonic()
        while time.monotonic() - started < 1.2:
            time.sleep(0.15)
            quiet = time.monotonic()
            w.send(b"NOOP\r\n")
            assert w.reply() == ["250 2.0.0 OK"]
        got = w.reply()
        assert got[-1].startswith("421") and "timeout" in got[-1], got
        assert 0.35 < time.monotonic() - quiet < 5
        w.close()
    finally:
        server.stop()


def test_a_client_that_does_not_read_its_replies_is_cut_off():
    """Pipelined commands from a client that never reads: the server stops
    reading when its replies back up, and after its timeouts drops the
    connection instead of holding it (and its buffers) for ever."""
    server = LMTPServer(_Keep(), "127.0.0.1", free_port(), timeout=0.5).start()
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.port))
        assert s.recv(100).startswith(b"220")
        (session,) = list(server._sessions)
        s.setblocking(False)
        try:
            for _ in range(4000):            # until both sides' buffers are full
                s.send(b"NOOP\r\n" * 1000)
        except BlockingIOError:
            pass
        deadline = time.monotonic() + 10
        while not session._closing:          # the timeout's 421, which cannot drain
            assert time.monotonic() < deadline, "never timed out"
            time.sleep(0.05)
        assert session.transport is not None and session.transport.get_write_buffer_size()
        while session.transport is not None:
            assert time.monotonic() < deadline, "the connection is still held"
            time.sleep(0.05)
        s.close()
    finally:
        server.stop()


@pytest.mark.parametrize("offered", [True, False])
def test_send_many_pipelines_when_offered_and_stops_at_a_refusal_when_not(kit, offered,
                                                                          monkeypatch):
    """LMTPClient.send_many: with PIPELINING and CHUNKING offered, one write
    and each message's reply, in order; without, one send after another,
    up to the first refusal."""
    from pit.lmtpserver import LMTPSession
    if not offered:
        monkeypatch.setitem(LMTPSession._COMMANDS, "LHLO", _lhlo_plain)
    orders = [kit.request("alice", f"sm{i}{offered}", "Order", f"buy 1 ACME at 13.{i:02d}")
              for i in range(3)]
    with Served(kit.pit) as s:
        with LMTPClient(s.server.host, s.server.port) as c:
            sends = []
            real_send = c.send
            c.send = lambda *a, **k: sends.append(1) or real_send(*a, **k)
            replies = c.send_many(orders, "t@example.org", kit.pit.address)
            assert [code for code, _ in replies] == [250, 250, 250], replies
            assert len(sends) == (0 if offered else 3)
            replies = c.send_many(orders, "t@example.org", "nobody@nowhere.example")
            assert [code for code, _ in replies] == [550] * (3 if offered else 1), replies
    seqs = [_archived(kit.root)[_digest(o)] for o in orders]
    assert seqs == sorted(seqs)


def _lhlo_plain(self, arg):
    self._greeted = True
    self._reply(f"250-{self.hostname}\r\n250 8BITMIME")
