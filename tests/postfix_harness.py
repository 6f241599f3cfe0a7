"""A real Postfix instance of the test's own, for tests and benchmarks.

``running_postfix(root, smtp_port, main_extra, master_extra)`` writes a
configuration directory under ``root`` (its own queue, data directory, log
file and mailboxes; loopback only; SMTP on ``smtp_port``), starts it with
``postfix -c <root>/etc start`` and stops it on exit (``postfix stop``,
then ``abort``, then the master's process group), also when the test is
interrupted.  The system's own Postfix instance is never touched.

Mail goes nowhere but loopback: ``default_transport`` is an error, DNS is
off, and the only relays are the ones a test puts in its transport map
(``[127.0.0.1]:PORT``).  Local delivery is Postfix's stock ``local`` into
``<root>/mailboxes/USER`` (mbox), for the users of the machine's passwd.

``postfix_available()`` is '' when Postfix can run here, else the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

POSTFIX = "/usr/sbin/postfix"
POSTMAP = "/usr/sbin/postmap"
START_TIMEOUT = 30.0

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
myhostname = {hostname}
mydomain = local.test
myorigin = $myhostname
mydestination = localhost, $myhostname
inet_interfaces = {interfaces}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_bind_address = {bind}
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
default_transport = error:tests send no mail beyond loopback
relay_transport = error:tests send no mail beyond loopback
alias_maps = hash:{root}/etc/aliases
alias_database = hash:{root}/etc/aliases
mail_spool_directory = {root}/mailboxes
biff = no
smtputf8_enable = no
# message_size_limit: Postfix's default (10,240,000 bytes), as on a production
# host; the pit keeps larger records off the list (max_list_message_size)
mailbox_size_limit = 0
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
"""

MASTER_CF = """\
{listeners}pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class PostfixHandle:
    root: Path
    config_dir: Path
    smtp_port: int

    def log_text(self, tail: int = 6000) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace")[-tail:] if path.exists() else "(no maillog)"

    def mailbox(self, user: str) -> bytes:
        path = self.root / "mailboxes" / user
        return path.read_bytes() if path.exists() else b""

    def postmap(self, *maps: Path) -> None:
        for path in maps:
            _run([POSTMAP, "-c", str(self.config_dir), f"hash:{path}"])

    def queue_empty(self) -> bool:
        """No message waiting (active, incoming, deferred) in this instance's queue."""
        for sub in ("incoming", "active", "deferred", "maildrop"):
            directory = self.root / "spool" / sub
            if directory.is_dir() and any(p.is_file() for p in directory.rglob("*")):
                return False
        return True


def _run(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {proc.stdout}{proc.stderr}")


def postfix_available() -> str:
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (make sysdeps installs it)"
    if os.getuid() != 0:
        return "a Postfix instance of the test's own needs root"
    try:
        import pwd
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user (the postfix package makes it)"
    return ""


def _master_pid(root: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((root / "spool" / "pid" / "master.pid").read_text().strip())
    return None


def _stop(handle: PostfixHandle) -> None:
    conf = str(handle.config_dir)
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run([POSTFIX, "-c", conf, "stop"], capture_output=True, timeout=30)
    pid = _master_pid(handle.root)
    deadline = time.monotonic() + 15
    while pid is not None and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run([POSTFIX, "-c", conf, "abort"], capture_output=True, timeout=30)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_postfix(root: Path | str, smtp_port: int, main_extra: str = "",
                    master_extra: str = "", maps: tuple[str, ...] = (),
                    addresses: tuple[str, ...] = ("127.0.0.1",),
                    hostname: str = "mail.local.test") -> Iterator[PostfixHandle]:
    """Start a Postfix instance under ``root``; stop it on exit.  ``maps``
    are file names in the config directory to postmap before the start.
    It listens on ``smtp_port`` of each of ``addresses`` (loopback by
    default; a host in a network namespace adds its link's address) and
    greets as ``hostname`` (two instances that relay to each other need
    two names, or each takes the other for itself)."""
    reason = postfix_available()
    if reason:
        raise RuntimeError(reason)
    root = Path(root)
    etc = root / "etc"
    for sub in ("etc", "spool", "data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    boxes = root / "mailboxes"
    boxes.mkdir(exist_ok=True)
    os.chmod(boxes, 0o1777)              # local(8) writes as the recipient
    for path in (root, root / "data"):
        shutil.chown(path, "postfix")
    loopback_only = tuple(addresses) == ("127.0.0.1",)
    (etc / "main.cf").write_text(MAIN_CF.format(
        root=root, hostname=hostname,
        interfaces="loopback-only" if loopback_only else ", ".join(addresses),
        bind="127.0.0.1" if loopback_only else "") + main_extra)
    listeners = "".join(f"{a}:{smtp_port} inet n - n - - smtpd\n" for a in addresses)
    (etc / "master.cf").write_text(MASTER_CF.format(listeners=listeners) + master_extra)
    (etc / "aliases").write_text("postmaster: nobody\nmailer-daemon: nobody\n")
    _run(["/usr/sbin/postalias", "-c", str(etc), f"hash:{etc}/aliases"])
    handle = PostfixHandle(root, etc, smtp_port)
    handle.postmap(*(etc / name for name in maps))
    try:
        proc = subprocess.run([POSTFIX, "-c", str(etc), "start"], capture_output=True, text=True,
                              timeout=START_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"postfix -c {etc} start failed: {proc.stdout}{proc.stderr}\n"
                               f"{handle.log_text()}")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", smtp_port), timeout=2) as s:
                    if s.recv(100).startswith(b"220"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix did not answer on {smtp_port}\n{handle.log_text()}")
            time.sleep(0.2)
        yield handle
    finally:
        _stop(handle)


# -- pits behind Postfix, as docs/mailman.md sets them up -------------------------

PIT_USER = "nobody"            # the pits' own user in tests (production: a dedicated one)
AS_PIT_USER = ["runuser", "-u", PIT_USER, "--"]
REPO = Path(__file__).resolve().parent.parent


def pit_command() -> list[str]:
    """How the pits' user runs ``pit``: the venv's program if that user may
    run it; else this Python's packages under the system's interpreter of
    the same version (a venv made from an interpreter in root's home is
    root's alone).  Raises RuntimeError if neither runs."""
    import sys
    import sysconfig
    venv_pit = [str(Path(sys.executable).with_name("pit"))]
    system_python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    paths = f"PYTHONPATH={REPO}:{sysconfig.get_paths()['purelib']}"
    for command in (venv_pit, ["/usr/bin/env", paths, system_python, "-m", "pit.cli"]):
        ok = subprocess.run(AS_PIT_USER + command + ["--help"], capture_output=True, timeout=60)
        if ok.returncode == 0:
            return command
    raise RuntimeError(f"user {PIT_USER} can run neither {venv_pit[0]} nor {system_python}")


def walkable_base(prefix: str, *unavailable: str) -> Path:
    """Skip the test if a reason in *unavailable* is given or the pits' user
    cannot run ``pit``; else a fresh directory every user may enter (Postfix
    and the pits' user walk to their files; pytest's own temporary
    directories are root's alone), registered for conftest's clean-up of
    the gpg-agents started under it.  The caller removes it."""
    import tempfile

    import pytest
    from conftest import _HOMES
    for reason in unavailable:
        if reason:
            pytest.skip(reason)
    try:
        pit_command()
    except RuntimeError as error:
        pytest.skip(str(error))
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    _HOMES.append(base)
    return base


def chown_tree(path: Path, user: str = PIT_USER) -> None:
    import pwd
    entry = pwd.getpwnam(user)
    for dirpath, _, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in filenames:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


@dataclass
class MailHost:
    """Mailman, Postfix and the notary's server, running for some pits."""
    base: Path
    mailman: object
    postfix: PostfixHandle
    client: object
    notary_port: int
    pit_command: list[str]

    def send(self, raw: bytes, sender: str, rcpt: str) -> None:
        """A mail client: SMTP to the mail host."""
        import smtplib
        with smtplib.SMTP("127.0.0.1", self.postfix.smtp_port, timeout=30) as smtp:
            smtp.sendmail(sender, [rcpt], raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def as_pit_user(self, *words: str, **kw) -> subprocess.CompletedProcess:
        """``pit WORDS`` run as the pits' user (the operator's commands on the pit)."""
        return subprocess.run(AS_PIT_USER + self.pit_command + list(words), capture_output=True,
                              text=True, timeout=300, cwd=self.base, **kw)


def _wait_for_text(path: Path, text: str, count: int, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text(errors="replace").count(text) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{text!r} not seen:\n{path.read_text(errors='replace')}")
        time.sleep(0.1)


@contextlib.contextmanager
def pits_on_postfix(base: Path, pit_dirs: list[Path], domain: str,
                    sink_domains: tuple[str, ...] = (),
                    addresses: tuple[str, ...] = ("127.0.0.1",),
                    filters: str = "pipe") -> Iterator[MailHost]:
    """Mailman (writing Postfix's maps), the pits provisioned on it, a
    Postfix instance configured by ``pit mailman postfix-config``, and
    ``pit mailman serve`` for the pits, all as docs/mailman.md says; the
    pits' files belong to PIT_USER, who runs the notary and the filters.
    ``base`` must be a directory every user may enter.  Mail for
    ``sink_domains`` is relayed to the Mailman harness's sink (where the
    Internet would carry it).  Everything is stopped on exit, also on an
    interrupt.  Postfix listens on ``addresses`` (loopback by default; the
    mail host of tests/test_hosts.py adds its links' addresses).  ``filters``
    is postfix-config's ``--filters``: ``pipe`` (Postfix runs ``pit mailman
    deliver`` for each list copy to a filter's address) or ``daemon`` (a
    ``pit mailman daemon`` process for each filter of each pit, started
    after the notary's server and stopped before it, as
    deploy/systemd/pit-filter@.service runs them)."""
    import signal
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mailman_harness import running_mailman
    from pit.mailhost import free_port
    from pit.mailman import MailmanClient, provision_local_pit
    command = pit_command()
    smtp_port, notary_port = free_port(), free_port()
    while notary_port == smtp_port:
        notary_port = free_port()
    notary, daemons = None, []
    with running_mailman(base / "mailman", smtp_port=smtp_port, postfix=True) as mailman:
        client = MailmanClient(mailman.rest_url, mailman.rest_user, mailman.rest_password)
        for root in pit_dirs:
            provision_local_pit(client, root, domain)
        for root in pit_dirs:
            for home in (root / "gnupg", root / "filters.gnupg", root / "operator.gnupg"):
                from pit.keyring import gpg_home
                subprocess.run(["gpgconf", "--homedir", gpg_home(home), "--kill", "all"],
                               capture_output=True)
            chown_tree(root)
        etc = base / "postfix" / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "pit.cli", "mailman", "postfix-config", *map(str, pit_dirs),
             "--notary", f"127.0.0.1:{notary_port}",
             "--mailman-data", str(mailman.root / "var" / "data"), "--config-dir", str(etc),
             "--user", PIT_USER, "--pit-command", " ".join(command), "--out", str(etc),
             "--filters", filters],
            capture_output=True, text=True, cwd=REPO, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"pit mailman postfix-config: {out.stderr}")
        (etc / "relays").write_text("".join(f"{d} smtp:[127.0.0.1]:{mailman.sink.port}\n"
                                            for d in sink_domains))
        main = (etc / "main.cf.pit").read_text().replace("transport_maps = hash:",
                                                         "pit_transport_maps = hash:", 1)
        main += f"transport_maps = $pit_transport_maps, hash:{etc}/relays\n"
        try:
            with running_postfix(base / "postfix", smtp_port, main_extra=main,
                                 master_extra=(etc / "master.cf.pit").read_text(),
                                 maps=("pit_transport", "pit_domains", "relays"),
                                 addresses=addresses) as postfix:
                log = base / "notary.log"
                with open(log, "wb") as out_file:
                    notary = subprocess.Popen(
                        AS_PIT_USER + command + ["mailman", "serve", *map(str, pit_dirs),
                                                 "--listen", f"127.0.0.1:{notary_port}",
                                                 "--mailman", f"127.0.0.1:{mailman.lmtp_port}",
                                                 "--smtp", f"127.0.0.1:{smtp_port}"],
                        stdout=out_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        cwd=base, start_new_session=True)
                _wait_for_text(log, "notary for", len(pit_dirs), notary)
                if filters == "daemon":
                    from pit.postfix import pit_routes
                    for root in pit_dirs:
                        for kind, args, address in pit_routes(root).filters:
                            daemon_log = base / f"daemon-{address.partition('@')[0]}.log"
                            with open(daemon_log, "wb") as out_file:
                                daemons.append(subprocess.Popen(
                                    AS_PIT_USER + command + [
                                        "--pit", str(root), "mailman", "daemon", kind, *args,
                                        "--lmtp", f"127.0.0.1:{notary_port}"],
                                    stdout=out_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=base, start_new_session=True))
                            _wait_for_text(daemon_log, ": running, posting to", 1, daemons[-1])
                yield MailHost(base, mailman, postfix, client, notary_port, command)
                for proc in daemons + [notary]:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
        finally:
            for proc in daemons:
                if proc.poll() is None:
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            if notary is not None and notary.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(notary.pid, signal.SIGKILL)
                notary.wait()


# -- reading a pit's archive in these tests ------------------------------------------

def seq_of(kit, raw: bytes) -> int | None:
    """The record number of message ``raw`` in ``kit``'s archive, found by
    its Message-ID (Postfix adds Received: lines, so the archived bytes are
    the MTA's, not the client's), or None."""
    from pit import mbox
    mid = b"\nMessage-ID: " + mbox.headers(raw, ["message-id"])["message-id"].encode() + b"\n"
    return next((seq for seq, m in kit.records() if mid in m), None)


def reports_of(kit, name: str) -> list[tuple[int, int, str, list[str]]]:
    """``(From-Seq, To-Seq, signer, trade lines)`` of each archived report of filter ``name``."""
    from pit import mbox
    from pit.filter import signed_text
    out = []
    for _, msg in kit.records():
        st = mbox.stamp(msg)
        if st.get("x-pit-kind") == "report" and st["x-pit-request"].rpartition(" ")[0] == name:
            first, _, last = st["x-pit-request"].rpartition(" ")[2].partition("-")
            out.append((int(first), int(last), st.get("x-pit-signer", ""),
                        [ln for ln in signed_text(msg).split("\n") if ln.startswith("trade ")]))
    return out


def sealed(kit) -> bool:
    """Is the newest record of ``kit``'s archive a seal?"""
    from pit import mbox
    return mbox.stamp(kit.records()[-1][1]).get("x-pit-kind") == "seal"
