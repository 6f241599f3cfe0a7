"""pit mailman provision|serve|postfix-config|daemon|deliver: a pit on GNU Mailman 3."""

from __future__ import annotations

import os
import sys
import time

from pit.commands.common import EXIT, FILTER_HELP, CliError, find_pit, hostport, known_filter
from pit.pitdir import PitError


def arguments(cmd) -> None:
    sp = cmd("mailman", None, "a pit on GNU Mailman 3: provisioning, the notary's server, filter daemons")
    ms = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("provision", run_provision,
            "create or repair the pit's list; subscribe members, the archive and the filters",
            ["pit mailman provision --rest http://127.0.0.1:8001/3.1 --user restadmin "
             "--password $PW --domain pits.example"], ms)
    c.add_argument("--rest", required=True, metavar="URL", help="Mailman's REST API")
    c.add_argument("--user", required=True); c.add_argument("--password", required=True)
    c.add_argument("--domain", required=True, help="the mail domain of the pit's list")
    c = cmd("serve", run_serve,
            "the notary's LMTP server for the pits' addresses (foreground)",
            ["pit mailman serve --listen 127.0.0.1:8025 --mailman 127.0.0.1:8024 "
             "--smtp 127.0.0.1:25",
             "pit mailman serve /srv/pits/demo /srv/pits/metals"], ms)
    c.add_argument("pits", nargs="*", metavar="PIT_DIR",
                   help="the pits to serve, chosen by recipient (default: the pit)")
    c.add_argument("--listen", default="127.0.0.1:8025", metavar="HOST:PORT")
    c.add_argument("--mailman", default="127.0.0.1:8024", metavar="HOST:PORT",
                   help="Mailman's LMTP runner")
    c.add_argument("--smtp", default="127.0.0.1:25", metavar="HOST:PORT",
                   help="where rejection notices are mailed")
    c.add_argument("--judges", type=int, metavar="N",
                   help="judge processes a pit (signature check and parse beside the "
                        "notary; default: 2 on a machine of more than two cores, else 0)")
    c.add_argument("--spool", metavar="DIR", help="notarized mail waiting for Mailman, "
                   "DIR/<pit address>/ (default PIT/spool/<pit address>/)")
    c = cmd("postfix-config", run_postfix_config,
            "Postfix transport and relay maps, main.cf and master.cf lines for the pits",
            ["pit mailman postfix-config /srv/pits/demo /srv/pits/metals --out /etc/postfix/pit",
             "pit mailman postfix-config --user pit --pit-command /usr/local/bin/pit"], ms)
    c.add_argument("pits", nargs="*", metavar="PIT_DIR", help="default: the pit")
    c.add_argument("--notary", default="127.0.0.1:8025", metavar="HOST:PORT",
                   help="where 'pit mailman serve' listens")
    c.add_argument("--mailman-data", default="/var/lib/mailman3/data", metavar="DIR",
                   help="Mailman's data directory (its postfix_lmtp, postfix_domains)")
    c.add_argument("--config-dir", default="/etc/postfix", metavar="DIR",
                   help="where pit_transport and pit_domains will be")
    c.add_argument("--user", default="pit", help="the pits' system user (pipe refuses root)")
    c.add_argument("--pit-command", default="/usr/local/bin/pit", metavar="PATH")
    c.add_argument("--out", metavar="DIR", help="write the four files there (default: print)")
    c.add_argument("--filters", choices=("pipe", "daemon"), default="pipe",
                   help="how the filters run: Postfix's pipe for each list copy to the "
                        "filter's address, or 'pit mailman daemon' woken by the archive's "
                        "commits (list copies discarded)")
    for name, func, text in (
            ("daemon", run_daemon, "run a filter whenever the archive grows, "
             "posting its output through the notary (foreground)"),
            ("deliver", run_deliver, "the MTA's delivery program for a filter's "
             "address: one run (exit 75: try again later)")):
        c = cmd(name, func, text, [f"pit mailman {name} specialist ACME --lmtp 127.0.0.1:8025"], ms)
        c.add_argument("filter", metavar="FILTER", help=FILTER_HELP)
        c.add_argument("args", nargs="*")
        c.add_argument("--lmtp", default="127.0.0.1:8025", metavar="HOST:PORT",
                       help="the notary's LMTP server")
        if name == "deliver":
            c.usage_exit = 64          # EX_USAGE: the MTA bounces (pit(1): exit 64)
        if name == "daemon":
            c.add_argument("--poll", type=float, default=0.5, metavar="SECONDS",
                           help="how often to look at the archive")
            c.add_argument("--mirror", metavar="SRC", help="on a replica: bring it up to "
                           "date from SRC (pit mirror) before each look")
            c.add_argument("--smtp", metavar="HOST:PORT", help="post through this mail host "
                           "to the pit's address, like any member (instead of --lmtp)")
            c.add_argument("--to", metavar="ADDRESS", help="the pit's address (default: the pit's)")
            c.add_argument("--from", dest="sender", metavar="ADDRESS",
                           help="the filter's own address (default: <pit>-<filter>@<domain>)")
            c.add_argument("--gnupghome", metavar="DIR",
                           help="the filter's own GnuPG home (default PIT/filters.gnupg)")
            c.add_argument("--key", metavar="FPR", help="the filter's key (default: pit.conf's)")
            c.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                           help="how long to wait for a post to reach the archive")


def run_provision(args) -> int:
    from pit.mailman import MailmanClient, MailmanError, provision_local_pit
    pit = find_pit(args.pit)
    try:
        listed = provision_local_pit(MailmanClient(args.rest, args.user, args.password),
                                     pit.root, args.domain)
    except MailmanError as e:
        raise CliError(str(e).replace("\n", ";")) from None
    print(f"{listed.address}: provisioned (archive {listed.archive_address}, "
          f"notary {listed.notary_address}); secret stored in {pit.conf_path}")
    return 0


def run_serve(args) -> int:
    """The notary's LMTP server for one or more pits, in the foreground, until SIGTERM/SIGINT."""
    import signal
    from pit.daemon import DaemonError, notary_server
    dirs = [find_pit(d).root for d in args.pits] or [find_pit(args.pit).root]
    if args.judges is not None and args.judges < 0:
        raise CliError(f"--judges {args.judges}: a number of processes, 0 or more", 2)
    try:
        server, services = notary_server(dirs, hostport(args.listen, "--listen"),
                                         hostport(args.mailman, "--mailman"),
                                         hostport(args.smtp, "--smtp"), args.spool,
                                         judges=args.judges)
    except DaemonError as e:
        raise CliError(str(e)) from None
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    with server:
        for address, service in sorted(services.items()):
            service.attach(server, address)
            service.start()
            print(f"notary for {address} on {server.host}:{server.port}", flush=True)
        try:
            while not stop:
                time.sleep(0.2)
                if not stop:
                    server.flush_spool()
        except KeyboardInterrupt:
            pass
        finally:
            for service in services.values():
                service.stop()
    return 0


def run_postfix_config(args) -> int:
    """The Postfix maps and main.cf/master.cf lines for the pits (pit.postfix)."""
    from pit import postfix
    dirs = [find_pit(d).root for d in args.pits] or [find_pit(args.pit).root]
    try:
        files = postfix.postfix_config(
            [postfix.pit_routes(d) for d in dirs], hostport(args.notary, "--notary"),
            args.mailman_data, args.config_dir, args.user, args.pit_command, args.filters)
    except postfix.PostfixError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.out:
        for path in postfix.write_config(files, args.out):
            print(path)
    else:
        for name, text in sorted(files.items()):
            print(f"==> {name} <==\n{text}")
    return 0


def _filter_daemon(args):
    from pit.daemon import DaemonError, FilterDaemon
    pit = find_pit(args.pit)
    # the kind only: a daemon or the MTA's delivery reads no archive to start
    # (a replica may be mid-copy; the filter itself says what it lacks)
    known_filter(args.filter)
    smtp = hostport(args.smtp, "--smtp") if args.smtp else None
    sync = None
    if args.mirror:
        from pit import mirror
        source, root = args.mirror, pit.root
        sync = lambda: mirror.mirror(source, root)     # noqa: E731
    try:
        return FilterDaemon(pit, args.filter, args.args,
                            None if smtp else hostport(args.lmtp, "--lmtp"),
                            address=args.to, sync=sync, smtp=smtp, sender=args.sender,
                            gnupghome=args.gnupghome, fpr=args.key, wait_seconds=args.wait)
    except (DaemonError, PitError) as e:
        raise CliError(str(e), EXIT["usage"]) from None


def run_daemon(args) -> int:
    """A filter daemon in the foreground: catch up, then run when the archive grows."""
    import signal
    daemon = _filter_daemon(args)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    # On the notary's host (a local pit, not a copy kept by --mirror) it
    # wakes on the archive's own commits: an order becomes a trade without
    # waiting for the list to deliver it.
    daemon.start(poll=args.poll, wake_on_append=not args.mirror and not daemon.pit.is_replica)
    print(f"{daemon.name}: running, posting to {daemon.address}", flush=True)
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    daemon.stop()
    return 0


def run_deliver(args) -> int:
    """The MTA's delivery program for a filter's address: one run now (or ask
    the run in progress for one more).  Exit codes: pit.daemon.deliver."""
    from pit.daemon import deliver
    try:
        lmtp = hostport(args.lmtp, "--lmtp")
    except CliError as e:
        raise CliError(str(e), 64) from None         # EX_USAGE: the MTA's entry is wrong
    code, text = deliver(args.pit or os.environ.get("PIT_DIR") or ".", args.filter, args.args,
                         lmtp, sys.stdin.buffer)
    if code:
        raise CliError(text, code)
    return 0
