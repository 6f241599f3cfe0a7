"""pit.mailhost.LMTPClient against an LMTP server that misbehaves on purpose.

A message whose final dot went out may have been delivered, whatever
happens to the reply: the client never sends it again (on a kept
connection it used to retry a dropped one, so a server that had already
delivered got the message twice).  A kept connection the server closed
while idle is still reopened once.
"""

from __future__ import annotations

import random
import smtplib
import socket
import threading

import pytest

from pit.mailhost import _BARE_ADDRESS, LMTPClient, MailError


class Server:
    """Minimal LMTP on loopback; ``drop_after_data(n)``: on the first
    connection, close without a reply once the n-th message is read."""

    def __init__(self, drop_at: int | None = None, close_idle_after: int | None = None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self.commands: list[bytes] = []         # MAIL and RCPT lines, as received
        self.drop_at = drop_at
        self.close_idle_after = close_idle_after
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            first = self.connections == 1
            with conn:
                self._session(conn, first)

    def _session(self, conn: socket.socket, first: bool) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 test LMTP\r\n")
        on_this = 0
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"LHLO":
                conn.sendall(b"250-test\r\n250 PIPELINING\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                if verb in (b"MAIL", b"RCPT"):
                    self.commands.append(line)
                conn.sendall(b"250 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                body = b""
                while True:
                    chunk = f.readline()
                    if not chunk or chunk == b".\r\n":
                        break
                    body += chunk
                self.messages.append(body)
                on_this += 1
                if first and self.drop_at == len(self.messages):
                    return                     # delivered, reply lost
                conn.sendall(b"250 delivered\r\n")
                if first and self.close_idle_after == on_this:
                    return                     # closes the kept connection while idle
            else:
                conn.sendall(b"500 what\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server_factory():
    made = []

    def make(**kw) -> Server:
        made.append(Server(**kw))
        return made[-1]
    yield make
    for s in made:
        s.close()


def test_a_message_whose_reply_is_lost_is_not_sent_again(server_factory):
    server = server_factory(drop_at=2)
    client = LMTPClient("127.0.0.1", server.port, timeout=10)
    try:
        assert client.send(b"Subject: one\n\nfirst\n", "a@x", ["b@x"])["b@x"][0] == 250
        with pytest.raises(MailError, match="may have been delivered"):
            client.send(b"Subject: two\n\nsecond\n", "a@x", ["b@x"])   # on the kept connection
    finally:
        client.close()
    assert [m.count(b"second") for m in server.messages] == [0, 1]


def test_a_kept_connection_closed_while_idle_is_reopened(server_factory):
    server = server_factory(close_idle_after=1)
    client = LMTPClient("127.0.0.1", server.port, timeout=10)
    try:
        assert client.send(b"Subject: one\n\nfirst\n", "a@x", ["b@x"])["b@x"][0] == 250
        assert client.send(b"Subject: two\n\nsecond\n", "a@x", ["b@x"])["b@x"][0] == 250
    finally:
        client.close()
    assert len(server.messages) == 2 and server.connections == 2


def test_the_reply_to_a_message_is_awaited_longer_than_a_command(server_factory):
    server = server_factory()
    client = LMTPClient("127.0.0.1", server.port, timeout=5, reply_timeout=600)
    try:
        client.send(b"Subject: one\n\nfirst\n", "a@x", ["b@x"])
        assert client._lmtp.sock.gettimeout() == 5       # back to the command timeout
    finally:
        client.close()


ADDRESSES = ["trader00@traders.example", "a+tag@b.example", "a..b@c", "x.y@b",
             "Trader <t@traders.example>", "<t@traders.example>", "a(comment)@b",
             '"quoted"@b', "a@[192.0.2.1]", "MAILER-DAEMON", ""]


def test_mail_and_rcpt_go_out_as_smtplib_sends_them(server_factory):
    """The client writes MAIL FROM and RCPT TO itself for a bare address
    (smtplib's address parse was a fifth of the injector's CPU): the same
    bytes as smtplib.LMTP.mail() and .rcpt(), whatever the address."""
    server = server_factory()
    client = LMTPClient("127.0.0.1", server.port, timeout=10)
    try:
        for address in ADDRESSES:
            client.send(b"Subject: one\n\nfirst\n", address, [address or "b@x"])
    finally:
        client.close()
    ours, server.commands = server.commands, []
    plain = smtplib.LMTP("127.0.0.1", server.port, timeout=10)
    try:
        plain.ehlo()
        for address in ADDRESSES:
            plain.mail(address)
            plain.rcpt(address or "b@x")
            plain.rset()
    finally:
        plain.close()
    assert ours == server.commands and len(ours) == 2 * len(ADDRESSES)


def test_a_bare_address_is_what_smtplib_would_quote_as_it_is():
    rnd = random.Random(21)
    alphabet = [chr(c) for c in range(128)] + ["ä", "€", "\u2028"]
    bare = 0
    for _ in range(20_000):
        address = "@".join("".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 4)))
                           for _ in range(2))
        if _BARE_ADDRESS.fullmatch(address):
            bare += 1
            assert smtplib.quoteaddr(address) == f"<{address}>", address
    assert bare > 5_000
