"""A real GNU Mailman 3 core in a temporary directory, for tests and benchmarks.

``running_mailman(tmp_dir)`` is a context manager that writes mailman.cfg
(SQLite in the temp dir, free loopback ports, NullMTA, a gunicorn config
with control_socket_disable), starts an SMTP sink (pit.mailhost.MailSink)
as Mailman's outgoing mail host, starts ``mailman start``, waits until the
REST API answers, and yields a ``MailmanHandle``.  On exit it runs
``mailman stop``, waits, and kills whatever is left of the process group
Mailman started, so nothing keeps running.  Every wait has a timeout.

``mailman_server`` is the pytest fixture around it (module scope: Mailman
takes 10 to 16 s to start, so a test module starts it once).  It skips,
with the reason, only when mailman is not importable.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from pit.mailhost import MailSink, free_port, lmtp_send

REST_USER = "pitrest"
REST_PASSWORD = "pit-rest-test-password"
START_TIMEOUT = 60.0      # seconds for the REST API to answer after start
STOP_TIMEOUT = 20.0       # seconds for the master to exit after stop

MAILMAN_CFG = """\
[mailman]
layout: pit
site_owner: postmaster@pit.test

[paths.pit]
var_dir: {var_dir}

[database]
class: mailman.database.sqlite.SQLiteDatabase
url: sqlite:///{var_dir}/data/mailman.db

[webservice]
hostname: 127.0.0.1
port: {rest_port}
admin_user: {rest_user}
admin_pass: {rest_password}
workers: 2
configuration: {gunicorn_cfg}

[mta]
incoming: {incoming}
{mta_configuration}lmtp_host: 127.0.0.1
lmtp_port: {lmtp_port}
smtp_host: 127.0.0.1
smtp_port: {smtp_port}

[archiver.prototype]
enable: no

[archiver.mail_archive]
enable: no

[archiver.mhonarc]
enable: no

{runners}"""

DEPLOYED_CFG = Path(__file__).resolve().parent.parent / "deploy" / "mailman.cfg"


def deployed_runner_sections(path: Path = DEPLOYED_CFG) -> str:
    """The ``[runner.*]`` sections of the shipped deploy/mailman.cfg, as
    text: tests and benchmarks poll Mailman's queues as a production host
    does, so what they measure is what a deployment gets."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(path)
    return "\n".join(f"[{name}]\n" + "".join(f"{k}: {v}\n" for k, v in cfg[name].items())
                     for name in cfg.sections() if name.startswith("runner."))


GUNICORN_CFG = """\
[gunicorn]
graceful_timeout = 5
timeout = 360
control_socket_disable = true
"""


@dataclass
class MailmanHandle:
    """What a test needs to talk to the running Mailman."""
    root: Path
    config_path: Path
    rest_url: str
    rest_user: str
    rest_password: str
    lmtp_host: str
    lmtp_port: int
    sink: MailSink

    def post_lmtp(self, msg_bytes: bytes, rcpt: str, mail_from: str = "") -> tuple[int, str]:
        """Hand one message straight to Mailman's LMTP runner; return its reply for ``rcpt``."""
        sender = mail_from or _header_address(msg_bytes, b"from") or "nobody@pit.test"
        return lmtp_send(self.lmtp_host, self.lmtp_port, msg_bytes, sender, [rcpt])[rcpt]

    def wait_for(self, recipient: str, n: int, timeout: float = 30.0) -> list[bytes]:
        """Messages delivered to ``recipient`` once there are ``n``; MailError after ``timeout``."""
        return self.sink.wait_for(recipient, n, timeout)

    def log_text(self) -> str:
        """Mailman's logs and start output, for failure messages."""
        parts = []
        for path in sorted((self.root / "var" / "logs").glob("*.log")) + [self.root / "start.out"]:
            if path.exists():
                parts.append(f"== {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def wait_until(what: str, predicate, timeout: float = 120.0, detail=lambda: ""):
    """Poll *predicate* until it returns something true, and return that;
    after *timeout* seconds fail naming *what*, followed by ``detail()``."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            more = detail()
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f"\n{more}" if more else ""))
        time.sleep(0.05)

@contextlib.contextmanager
def paused_runner(handle: MailmanHandle, name: str) -> Iterator[list[int]]:
    """Stop Mailman's ``name`` runner processes (SIGSTOP) for the block, and
    let them go on after it (SIGCONT), also on failure: with ``out`` paused,
    Mailman takes posts but delivers nothing.  Yields their pids."""
    marker = f"--runner={name}:".encode()
    pids = [pid for pid in _pids_using(handle.config_path)
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes()]
    if not pids:
        raise RuntimeError(f"no Mailman runner {name!r} is running")
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)


def _header_address(msg_bytes: bytes, name: bytes) -> str:
    from email.utils import parseaddr
    for line in msg_bytes.split(b"\n"):
        if not line.strip():
            break
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return parseaddr(value.decode("utf-8", "replace"))[1]
    return ""


def mailman_available() -> str:
    """'' if Mailman 3 can run here, else the reason it cannot."""
    try:
        import mailman  # noqa: F401
        import aiosmtpd  # noqa: F401
    except ImportError as error:
        return f"GNU Mailman 3 is not installed ({error}); pip install -e '.[mailman]'"
    return ""


def _mailman_command() -> list[str]:
    executable = Path(sys.executable).with_name("mailman")
    if executable.exists():
        return [str(executable)]
    return [sys.executable, "-c", "from mailman.bin.mailman import main; main()"]


def _rest_ready(url: str) -> bool:
    request = urllib.request.Request(url + "/system/versions")
    token = b64encode(f"{REST_USER}:{REST_PASSWORD}".encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            json.load(response)
            return response.status == 200
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _pids_using(config_path: Path) -> list[int]:
    """Processes (of this machine) whose command line names our config file."""
    marker = str(config_path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _stop_mailman(command: list[str], config_path: Path, var_dir: Path, out) -> None:
    pid_file = var_dir / "master.pid"
    master = None
    with contextlib.suppress(OSError, ValueError):
        master = int(pid_file.read_text().strip())
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(command + ["--run-as-root", "-C", str(config_path), "stop"],
                       stdout=out, stderr=subprocess.STDOUT, timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _pids_using(config_path):
        time.sleep(0.2)
    # Whatever did not exit: the master's process group first, then any
    # process still running with our config (only ours: the path is unique).
    if master is not None:
        with contextlib.suppress(OSError):
            os.killpg(master, signal.SIGKILL)
    for pid in _pids_using(config_path):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# With a real Postfix in front: Mailman writes postfix_lmtp and
# postfix_domains (hash maps, postmap run) under its data directory.
POSTFIX_MTA_CFG = """\
[postfix]
postmap_command: /usr/sbin/postmap
transport_file_type: hash
"""


@contextlib.contextmanager
def running_mailman(root: Path | str | None = None, smtp_port: int | None = None,
                    postfix: bool = False) -> Iterator[MailmanHandle]:
    """Start Mailman 3 under ``root`` (a fresh temp dir if None); stop it on exit.

    By default Mailman hands outgoing mail to the handle's sink and has no
    incoming MTA (NullMTA).  With ``smtp_port`` it hands it to that port on
    loopback instead (a real MTA; the sink still runs, for the MTA to relay
    to), and with ``postfix`` it writes Postfix's maps as an operator's
    Mailman would (``mailman.mta.postfix.LMTP``)."""
    reason = mailman_available()
    if reason:
        raise RuntimeError(reason)
    with contextlib.ExitStack() as stack:
        if root is None:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="pit-mailman-"))
        root = Path(root)
        var_dir = root / "var"
        (var_dir / "data").mkdir(parents=True, exist_ok=True)
        sink = stack.enter_context(MailSink(root / "mail"))
        rest_port, lmtp_port = free_port(), free_port()
        while lmtp_port in (rest_port, sink.port):
            lmtp_port = free_port()
        gunicorn_cfg = root / "gunicorn.cfg"
        gunicorn_cfg.write_text(GUNICORN_CFG)
        config_path = root / "mailman.cfg"
        mta_configuration = ""
        if postfix:
            (root / "postfix-mta.cfg").write_text(POSTFIX_MTA_CFG)
            mta_configuration = f"configuration: {root / 'postfix-mta.cfg'}\n"
        config_path.write_text(MAILMAN_CFG.format(
            var_dir=var_dir, rest_port=rest_port, rest_user=REST_USER,
            rest_password=REST_PASSWORD, gunicorn_cfg=gunicorn_cfg,
            lmtp_port=lmtp_port, smtp_port=smtp_port or sink.port,
            incoming="mailman.mta.postfix.LMTP" if postfix else "mailman.mta.null.NullMTA",
            mta_configuration=mta_configuration, runners=deployed_runner_sections()))
        command = _mailman_command()
        # Mailman's daemons keep the stdout they inherit: give them a file,
        # never a pipe we would have to drain.
        out = stack.enter_context(open(root / "start.out", "ab"))
        stack.callback(_stop_mailman, command, config_path, var_dir, out)
        subprocess.run(command + ["--run-as-root", "-C", str(config_path), "start"],
                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       timeout=START_TIMEOUT, check=False)
        handle = MailmanHandle(
            root=root, config_path=config_path,
            rest_url=f"http://127.0.0.1:{rest_port}/3.1",
            rest_user=REST_USER, rest_password=REST_PASSWORD,
            lmtp_host="127.0.0.1", lmtp_port=lmtp_port, sink=sink)
        deadline = time.monotonic() + START_TIMEOUT
        while not _rest_ready(handle.rest_url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Mailman's REST API did not answer within "
                                   f"{START_TIMEOUT:.0f} s\n{handle.log_text()}")
            time.sleep(0.25)
        _wait_for_lmtp(handle, deadline)
        yield handle


def _wait_for_lmtp(handle: MailmanHandle, deadline: float) -> None:
    import socket
    while True:
        try:
            with socket.create_connection((handle.lmtp_host, handle.lmtp_port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Mailman's LMTP runner did not listen\n{handle.log_text()}")
            time.sleep(0.25)


@pytest.fixture(scope="module")
def mailman_server(tmp_path_factory) -> Iterator[MailmanHandle]:
    """A running Mailman 3 core for the test module (see running_mailman)."""
    reason = mailman_available()
    if reason:
        pytest.skip(reason)
    with running_mailman(tmp_path_factory.mktemp("mailman")) as handle:
        yield handle
