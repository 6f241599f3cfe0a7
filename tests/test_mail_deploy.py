"""Deploying a pit on a real mail host, without the mail servers themselves:
gpg homes at any path length, the exit codes of the MTA's delivery
program, provisioning that checks every address before it changes
anything, one notary server for several pits, and the Postfix
configuration ``pit mailman postfix-config`` writes.  The same things
with a real Postfix and Mailman running are in tests/test_postfix.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import _HOMES, _stop_agents
from pit import agents, ops
from pit.keyring import Keyring

REPO = Path(__file__).resolve().parent.parent


# -- gpg homes at any path length ------------------------------------------------

def test_a_pit_at_a_long_path_signs_and_its_agent_is_stopped(tmp_path):
    _HOMES.append(tmp_path)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(deep / "pit" / "gnupg" / "S.gpg-agent.browser")) > 108
    pit = ops.init(deep / "pit", "demo")              # makes and uses the notary's key
    assert ops.operator_request(pit, "Currency", "USD 0.01").accepted
    ring = Keyring(pit.gnupg)
    assert len(ring.gpg_home) < 100 and os.path.realpath(ring.gpg_home) == str(pit.gnupg)
    ring.stop_agent()
    _stop_agents(tmp_path)
    assert not agents.running([tmp_path])


def test_an_agent_starts_for_a_home_of_every_length_around_the_socket_limit():
    """gpg-agent refused a home of 87 characters (its socket path 107, the
    most a Unix socket holds) while gpg_home gave that path itself: a test
    failed once pytest's temporary directories reached pytest-1000.  Each
    length from 80 to 95 gets a real agent."""
    import shutil
    import tempfile
    from pit.keyring import gpg_home
    base = Path(tempfile.mkdtemp(prefix="pit-len-"))
    try:
        for n in range(80, 96):
            home = base / ("h" * (n - len(str(base)) - 1))
            assert len(str(home)) == n
            home.mkdir(mode=0o700)
            run = subprocess.run(["gpg-connect-agent", "--homedir", gpg_home(home), "/bye"],
                                 capture_output=True, text=True)
            subprocess.run(["gpgconf", "--homedir", gpg_home(home), "--kill", "gpg-agent"],
                           capture_output=True)
            assert run.returncode == 0 and "error" not in run.stderr, (n, run.stderr)
    finally:
        agents.stop(agents.running([base]))
        shutil.rmtree(base, ignore_errors=True)


def test_gpg_home_is_the_path_itself_when_it_is_short(tmp_path):
    from pit.keyring import gpg_home
    assert gpg_home(tmp_path / "h") == str(tmp_path / "h")


# -- pit mailman deliver: the MTA retries what is temporary ----------------------

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def open_dir():
    """A directory any user may enter (pytest's own are root's only), removed after."""
    import shutil
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="pit-deploy-"))
    os.chmod(path, 0o755)
    _HOMES.append(path)
    try:
        yield path
    finally:
        _stop_agents(path)
        shutil.rmtree(path, ignore_errors=True)


def _deliver(pit_root, *words, user=(), lmtp="127.0.0.1:9"):
    return subprocess.run([*user, sys.executable, "-m", "pit.cli", "--pit", str(pit_root),
                           "mailman", "deliver", *words, "--lmtp", lmtp],
                          input=b"Subject: a list copy\n\nx\n", capture_output=True,
                          cwd=REPO, timeout=120, env={**os.environ, "HOME": "/nonexistent"})


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run the program as another user")
def test_deliver_as_a_user_who_cannot_read_the_pit_asks_the_mta_to_retry(kit, open_dir):
    import shutil
    root = Path(shutil.copytree(kit.root, open_dir / "demo"))
    ops.filter_key(ops.Pit(root), "specialist ACME")
    os.chmod(root / "pit.conf", 0o600)                    # as provisioning leaves it
    proc = _deliver(root, "specialist", "ACME", user=NOBODY)
    err = proc.stderr.decode()
    assert proc.returncode == 75, err                      # EX_TEMPFAIL, not a bounce
    assert "pit.conf" in err and "Permission denied" in err and "nobody" in err, err
    assert "has no key" not in err


def test_deliver_exit_codes(kit):
    # the notary unreachable: try again later
    ops.filter_key(kit.pit, "specialist ACME")
    [d] = kit.notary().notarize([kit.request("alice", "o1", "Order", "buy 1 ACME at 1.00")])
    assert d.accepted, d.reason
    proc = _deliver(kit.root, "specialist", "ACME")
    assert proc.returncode == 75, proc.stderr
    assert b"cannot post" in proc.stderr
    # the key not made yet: later too (provisioning makes it)
    proc = _deliver(kit.root, "transfers")
    assert proc.returncode == 75 and b"has no key" in proc.stderr
    # no pit (yet) there: later
    proc = _deliver(kit.root / "nothing", "transfers")
    assert proc.returncode == 75, proc.stderr
    # the MTA's entry names a filter that cannot be: bounce
    proc = _deliver(kit.root, "specialist")
    assert proc.returncode == 64, proc.stderr


# -- provisioning checks every address before it changes anything ------------------

def test_provisioning_names_the_member_mailman_would_refuse_and_changes_nothing(kit, tmp_path):
    from pit.mailman import MailmanClient, MailmanError, provision_local_pit, provision_pit
    ring = Keyring(tmp_path / "local-alice")
    fpr = ring.generate("alice", "alice@localhost")
    ring.stop_agent()
    assert ops.add_member(kit.pit, ring.export(fpr), ["alice2"])[1].accepted
    conf = (kit.root / "pit.conf").read_bytes()
    keys = sorted(p.name for p in (kit.root / "filters.gnupg").iterdir())
    nowhere = MailmanClient("http://127.0.0.1:9/3.1", "u", "p")     # never reached
    with pytest.raises(MailmanError) as caught:
        provision_local_pit(nowhere, kit.root, "pits.test")
    text = str(caught.value)
    assert "nothing changed" in text and "member 'alice@localhost'" in text, text
    assert "without a dot" in text and "cannot reach" not in text
    assert (kit.root / "pit.conf").read_bytes() == conf                 # no domain set
    assert sorted(p.name for p in (kit.root / "filters.gnupg").iterdir()) == keys
    # every refused address at once, each with its role
    with pytest.raises(MailmanError) as caught:
        provision_pit(nowhere, "demo", "pits.test", "notary@pits.test", "archive@pits",
                      members=["bob@example.org", "alice@localhost", "carol@-x.org"])
    text = str(caught.value)
    for part in ("archive address 'archive@pits'", "member 'alice@localhost'",
                 "member 'carol@-x.org'"):
        assert part in text, text
    assert "bob@" not in text


# -- one notary server for several pits ---------------------------------------------

def test_one_serve_serves_several_pits_chosen_by_recipient(kit, other_kit, tmp_path):
    import signal
    import time

    from pit.archive import Archive
    from pit.mailhost import free_port, lmtp_send
    for k, name in ((kit, "demo"), (other_kit, "other")):
        k.pit.set(domain="pits.test", mailman_list=f"{name}@pits.test",
                  mailman_secret=f"{name}-secret-0123456789")
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pit.cli", "mailman", "serve",
                             str(kit.root), str(other_kit.root), "--listen", f"127.0.0.1:{port}",
                             "--mailman", "127.0.0.1:9", "--smtp", "127.0.0.1:9", "--judges", "2"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while (tmp_path / "serve.log").read_text().count("notary for") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        before = {k: Archive(k.root).last_seq() for k in (kit, other_kit)}
        demo_order = kit.request("alice", "s1", "Order", "buy 1 ACME at 1.00")
        other_order = other_kit.sign("carol", ops.request_text(other_kit.pit, "carol", "s1", "Transfer",
                                                               "1.00 USD to alice"))
        got = lmtp_send("127.0.0.1", port, demo_order, "alice@pit.test",
                        ["demo@pits.test", "nopit@pits.test"])
        assert got["demo@pits.test"][0] == 250, got      # notarized, spooled: Mailman is down
        assert got["nopit@pits.test"][0] == 550, got
        got = lmtp_send("127.0.0.1", port, other_order, "carol@pit.test", ["other@pits.test"])
        assert got["other@pits.test"][0] == 250, got
        judges = _judges_of(proc.pid)
        assert len(judges) == 4, judges                 # --judges 2, each pit its own
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
    assert not [p for p in judges if Path(f"/proc/{p}").exists()
                and Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()[0] != "Z"]
    for k, address in ((kit, "demo@pits.test"), (other_kit, "other@pits.test")):
        assert Archive(k.root).last_seq() > before[k]            # its own notary, its own archive
        assert list((k.root / "spool" / address).glob("*.eml"))  # its own spool


def test_serve_gives_each_pit_its_list_size_limit(kit):
    """`pit mailman serve` keeps a pit's records over its max_list_message_size
    off the list (tests/test_mailman.py shows a route doing it): by default
    just under Postfix's message_size_limit of 10,240,000 bytes, whose
    refusal of a list copy Mailman counts as a bounce of every member."""
    from pit.daemon import notary_server
    kit.pit.set(domain="pits.test", mailman_list="demo@pits.test",
                mailman_secret="demo-secret-0123456789")
    for setting, wanted in ((None, 10_000_000), ("4000", 4000)):
        if setting:
            kit.pit.set(max_list_message_size=setting)
        server, services = notary_server([kit.root], ("127.0.0.1", 0), ("127.0.0.1", 9), None)
        for service in services.values():
            service.notary.close()
        assert server.routes["demo@pits.test"].max_list_size == wanted


def _judges_of(pid: int) -> list[int]:
    """The judge processes (moderator.judges) whose parent is *pid*."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid and b"moderator.judges" in cmdline:
            found.append(int(entry.name))
    return found


# -- the shipped deployment files agree with pit -----------------------------------

def _exec_start(unit: Path) -> list[str]:
    import shlex
    text = unit.read_text().replace("\\\n", " ")
    line = next(l for l in text.splitlines() if l.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart="):])


def test_the_service_units_run_pit_commands_that_parse():
    from pit.commands import build_parser
    parser = build_parser()
    notary = _exec_start(REPO / "deploy" / "systemd" / "pit-notary.service")
    assert notary[0].endswith("/pit")
    args = parser.parse_args(notary[1:])
    assert args.command == "mailman" and args.action == "serve" and args.pits
    filter_words = _exec_start(REPO / "deploy" / "systemd" / "pit-filter@.service")
    words = []
    for w in filter_words[1:]:       # systemd splits $FILTER into words, not ${LMTP}
        words += ["specialist", "ACME"] if w == "$FILTER" else [w.replace("${LMTP}", "127.0.0.1:8025")]
    args = parser.parse_args(words)
    assert args.action == "daemon"
    # the ports the units name are the ones mailman.cfg gives Mailman
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "deploy" / "mailman.cfg")
    mta = cfg["mta"]
    serve = parser.parse_args(notary[1:])
    assert serve.mailman == f"{mta['lmtp_host']}:{mta['lmtp_port']}"
    assert serve.smtp == f"{mta['smtp_host']}:{mta['smtp_port']}"
    assert mta["incoming"] == "mailman.mta.postfix.LMTP"


def test_the_deployed_mailman_looks_at_a_list_copys_queues_as_the_tests_do():
    """A list copy crosses Mailman's in, pipeline and out queues (a notice
    the virgin one), and an idle runner looks at its queue every
    sleep_time.  deploy/mailman.cfg left Mailman's default of 1 s: up to
    3 s on every copy a member gets, while the tests and benchmarks ran
    Mailman looking every 50 ms from a copy of their own, so no figure
    showed it.  Now the shipped file sets it and the harness takes its
    runner sections from there."""
    import configparser
    from mailman_harness import MAILMAN_CFG, deployed_runner_sections
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "deploy" / "mailman.cfg")
    for runner in ("in", "pipeline", "out", "virgin"):
        value = cfg[f"runner.{runner}"]["sleep_time"]
        assert value.endswith("s") and float(value[:-1]) <= 0.1, (runner, value)
    assert "[runner." not in MAILMAN_CFG and "{runners}" in MAILMAN_CFG
    assert deployed_runner_sections().count("sleep_time: 0.05s") == 4


def test_postfix_config_with_filters_as_daemons_routes_their_list_copies_nowhere():
    """--filters daemon: no pipe service, each filter's address discarded
    (its daemon wakes on the archive's commits, not on the list), and the
    daemons' commands, named in master.cf.pit, parse."""
    import shlex
    from pit.commands import build_parser
    from pit.postfix import PitMailRoutes, PostfixError, postfix_config
    routes = PitMailRoutes(Path("/srv/pits/demo"), "demo", "pits.example", "demo@pits.example",
                           "demo-archive@pits.example", "demo-notary@pits.example",
                           (("transfers", (), "demo-transfers@pits.example"),
                            ("specialist", ("ACME",), "demo-specialist-acme@pits.example")))
    piped = postfix_config([routes])
    assert "demo-specialist-acme@pits.example pit-demo-specialist-acme:" in piped["pit_transport"]
    assert "unix - n n - - pipe" in piped["master.cf.pit"]
    files = postfix_config([routes], filters="daemon")
    assert "demo-transfers@pits.example discard:" in files["pit_transport"]
    assert "demo-specialist-acme@pits.example discard:" in files["pit_transport"]
    assert "unix - n n - - pipe" not in files["master.cf.pit"]
    assert all(line.startswith("#") for line in files["master.cf.pit"].splitlines())
    commands = [line.partition(": as pit: ")[2] for line in files["master.cf.pit"].splitlines()
                if ": as pit: " in line]
    assert len(commands) == 2
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "/usr/local/bin/pit"
        args = build_parser().parse_args(words[1:])
        assert args.action == "daemon" and args.pit == "/srv/pits/demo" and args.lmtp
    with pytest.raises(PostfixError):
        postfix_config([routes], filters="cron")
