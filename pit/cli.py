"""The ``pit`` command: one subcommand a job, composable in pipes.

Every subcommand goes through pit.ops (and the modules it names); this file
only reads arguments, finds the pit, prints, and turns errors into one line
and an exit status (see docs/pit.1.md):

    0  ok
    1  failure: the audit failed, a check did not pass, a filter rejected
    2  usage error: bad arguments, a malformed order, an unknown ticker
    3  pit not found, or not a pit
    4  key problem: no such key, no secret key, gpg refused
    5  refused by the notary (the reason is printed)
   64  pit mailman deliver: its command line is wrong (EX_USAGE: the MTA bounces)
   75  pit mailman deliver: try again later (EX_TEMPFAIL: the MTA retries)

The pit is ``--pit DIR``, else ``$PIT_DIR``, else the current directory.
Queries print one line a row, or one JSON object a line with ``--json``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pit import mbox, message, ops
from pit.archive import Archive, ArchiveError, record_hash
from pit.pitdir import Pit, PitError
from pit.units import UnitError

# gpg (pit.keyring), subprocess, signal and tempfile are imported by the
# commands that use them, argparse by build_parser: `pit replay` starts
# without them, and without typing (~1.5 ms: for type checkers only).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from pit.keyring import Keyring

__all__ = ["main", "CliError", "find_pit", "registry", "specialist_state", "trades",
           "positions", "open_orders", "book_levels", "rejections", "EXIT"]

EXIT = {"ok": 0, "failure": 1, "usage": 2, "no-pit": 3, "key": 4, "refused": 5}


class CliError(Exception):
    """A user-facing failure: one line and an exit status."""

    def __init__(self, text: str, code: int = 1):
        super().__init__(text)
        self.code = code


# -- finding things ------------------------------------------------------------

def find_pit(path: str | None) -> Pit:
    """The pit at *path*, ``$PIT_DIR`` or the current directory."""
    root = path or os.environ.get("PIT_DIR") or "."
    if not Path(root).is_dir():
        raise CliError(f"pit directory {root} does not exist (give --pit DIR or set PIT_DIR)",
                       EXIT["no-pit"])
    try:
        return Pit(root)
    except PitError as e:
        raise CliError(f"{e} (give --pit DIR or set PIT_DIR)", EXIT["no-pit"]) from None


def gnupghome(arg: str | None) -> Path:
    return Path(arg or os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")


def secret_keys(home: Path) -> list[str]:
    """Fingerprints of the secret keys in GnuPG home *home* (one gpg run)."""
    import subprocess
    from pit.keyring import gpg_home
    proc = subprocess.run(["gpg", "--homedir", gpg_home(home), "--batch", "--with-colons",
                           "--list-secret-keys"], capture_output=True, text=True)
    fprs, want = [], False
    for line in proc.stdout.splitlines():
        f = line.split(":")
        if f[0] == "sec":
            want = True
        elif f[0] == "fpr" and want:
            fprs.append(f[9])
            want = False
    return fprs


def signing_key(home: Path, fpr: str | None) -> str:
    if not home.is_dir():
        raise CliError(f"GnuPG home {home} does not exist (give --gnupghome DIR or make a key "
                       "with 'pit key new')", EXIT["key"])
    keys = secret_keys(home)
    if fpr:
        want = fpr.replace(" ", "").upper()
        match = [k for k in keys if k == want or k.endswith(want)]
        if len(match) != 1:
            raise CliError(f"no secret key {fpr} in {home} (see 'gpg --homedir {home} -K')",
                           EXIT["key"])
        return match[0]
    if not keys:
        raise CliError(f"no secret key in {home} (make one with 'pit key new NAME EMAIL "
                       f"--gnupghome {home}', or give --gnupghome DIR)", EXIT["key"])
    if len(keys) != 1:
        raise CliError(f"{home} holds {len(keys)} secret keys: choose one with --key FPR",
                       EXIT["key"])
    return keys[0]


_BARS: list = []


def progress(what: str, unit: str = "record") -> "callable":
    """A progress callback ``show(done, total=None)`` drawing a bar with the
    rate on stderr when it is a terminal, nothing otherwise (pit.progress);
    :func:`_end_progress` takes the bar away."""
    from pit.progress import Quiet, bar
    b = bar(what, unit=unit)
    if type(b) is Quiet:
        return lambda *a, **k: None
    _BARS.append(b)
    return b.goto


def _end_progress() -> None:
    while _BARS:
        _BARS.pop().close()


# -- queries (also used by pit.demo) --------------------------------------------

def _records(pit: Pit, to_seq: int | None = None, from_seq: int = 1) -> Iterator[tuple[int, dict, bytes]]:
    for seq, msg in Archive(pit.root).read(from_seq, to_seq):
        yield seq, mbox.stamp(msg), msg


def registry(pit: Pit, at: int | None = None):
    """The pit's currencies and instruments from its operator records.  O(archive)."""
    from filters.common import Registry
    reg = Registry()
    for _, st, _ in _records(pit, at):
        if st.get("x-pit-kind") in ("currency", "instrument", "fees"):
            try:
                reg.apply(st["x-pit-kind"], st.get("x-pit-request", ""))
            except (message.MessageError, UnitError):
                pass        # the filters refuse such a definition too: it defines nothing
    return reg


def unknown(kind: str, name: str, known: Iterable[str], verb: str = "has") -> CliError:
    """The one error for a name the pit does not know, wherever it is given:
    ``unknown ticker NOPE (this pit trades ACME, BTC)``, exit 2."""
    names = sorted(known)
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return CliError(f"unknown {kind} {name} (this pit {verb} {shown or 'none yet'})",
                    EXIT["usage"])


def _ticker(pit: Pit, ticker: str):
    t = ticker.upper()
    reg = registry(pit)
    if t not in reg.instruments:
        raise unknown("ticker", ticker, reg.instruments, "trades")
    return t, reg


def member_accounts(pit: Pit) -> set[str]:
    """Every account a member of the pit has been made owner of.  O(archive)."""
    from filters.common import instruction
    owned = set()
    for _, st, _ in _records(pit):
        if st.get("x-pit-kind") == "member":
            try:
                ins = instruction("member", st.get("x-pit-request", ""))
            except (message.MessageError, UnitError):
                continue
            owned.update(getattr(ins, "accounts", None) or ())
    return owned


def _account(pit: Pit, account: str) -> str:
    """*account* when the pit knows it: a member's account, its trading
    account of a ticker (``alice:ACME``), or a fee account (``fees:ACME``)."""
    base, _, ticker = account.partition(":")
    owned = member_accounts(pit)
    if (base in owned or base == "fees") and (not ticker or ticker in registry(pit).instruments):
        return account
    raise unknown("account", account, owned)


def _asset(pit: Pit, asset: str) -> str:
    """*asset* (upper case) when it is a currency or a ticker of the pit."""
    a = asset.upper()
    reg = registry(pit)
    if a not in reg.currencies and a not in reg.instruments:
        raise unknown("asset", asset, set(reg.currencies) | set(reg.instruments))
    return a


def _filter_kind(kind: str) -> str:
    if kind not in ops.FILTERS:
        raise unknown("filter", kind, ops.FILTERS)
    return kind


AT_HELP = ("as of record SEQ: what records 1 to SEQ caused, whenever the filters "
           "reported it (pit(1), --at)")


def specialist_state(pit: Pit, ticker: str, at: int | None = None):
    """The specialist of *ticker* brought up to date without posting; with
    *at*, replayed from record 1 up to record *at*.  O(new records), or
    O(at) with *at*."""
    from filters.specialist import Specialist
    from pit.filter import run
    if at is None:
        flt, _ = ops.run_filter(pit, "specialist", [ticker], post_output=False)
        return flt
    flt = Specialist([ticker])
    run(flt, (m for _, m in Archive(pit.root).read(1, at)))
    return flt


def book_levels(flt, ticker: str, depth: int) -> dict:
    """Best bids and offers of *ticker* as decimal text."""
    inst = flt.registry.instruments[ticker]
    eng = flt.engine
    side = lambda s: [{"price": inst.price_text(p), "qty": inst.qty_text(q), "orders": n}
                      for p, q, n in eng.depth(ticker, s, depth)]
    last = eng.last_price(ticker)
    return {"ticker": ticker, "currency": inst.currency.code, "bids": side("buy"),
            "asks": side("sell"), "last": inst.price_text(last) if last else None}


def trades(pit: Pit, ticker: str | None = None, at: int | None = None,
           account: str | None = None) -> list[dict]:
    """Every trade reported by the specialists in the archive.  O(archive)."""
    from pit.filter import signed_text
    out = []
    for _, st, msg in _records(pit):
        acct = st.get("x-pit-account", "")
        if st.get("x-pit-kind") != "report" or not acct.startswith("specialist:"):
            continue
        for line in signed_text(msg).split("\n"):
            if not line.startswith("trade "):
                continue
            w = line.split(" ")
            # trade SEQ TICKER QTY at PRICE CUR buyer A REF seller B REF maker SIDE fees F F
            t = {"seq": int(w[1]), "ticker": w[2], "qty": w[3], "price": w[5], "currency": w[6],
                 "buyer": w[8], "buyer_ref": w[9], "seller": w[11], "seller_ref": w[12],
                 "maker": w[14], "buyer_fee": w[16], "seller_fee": w[17]}
            if ticker and t["ticker"] != ticker:
                continue
            if at is not None and t["seq"] > at:
                continue
            if account and account not in (t["buyer"], t["seller"]):
                continue
            out.append(t)
    out.sort(key=lambda t: t["seq"])
    return out


def positions(pit: Pit, account: str | None = None, at: int | None = None) -> list[dict]:
    """Balances of every account (or of *account* and its trading accounts)."""
    from filters.positions import Positions
    from pit.filter import run
    if at is None:
        flt, _ = ops.run_filter(pit, "positions", [], post_output=False)
    else:
        # every report, also those posted after record *at*: a line counts
        # when the record that caused it is at or below *at* (pit(1), --at)
        flt = Positions(["--at", str(at)])
        run(flt, (m for _, m in Archive(pit.root).read()))
    rows = []
    for acct, asset, amount in flt.table():
        if account and acct != account and not acct.startswith(account + ":"):
            continue
        rows.append({"account": acct, "asset": asset, "amount": amount})
    return rows


def open_orders(pit: Pit, account: str | None = None, at: int | None = None) -> list[dict]:
    """Open orders (resting or waiting on a trigger) of *account*, by
    specialist state (as of record *at*).  O(instruments x new records)."""
    rows = []
    for t in sorted(registry(pit).instruments):
        flt = specialist_state(pit, t, at)
        if t not in flt.engine.tickers():
            continue                    # not yet defined at record *at*
        inst = flt.registry.instruments[t]
        orders = flt.open_orders()
        for oid in sorted(orders):
            od = orders[oid]
            if account and od.account != account:
                continue
            live = flt.engine.order(oid)
            if live is None:
                continue
            _, side, kind, _, rem, price, stop = live
            rows.append({"seq": oid, "account": od.account, "ref": od.ref, "ticker": t,
                         "side": side, "type": kind, "remaining": inst.qty_text(rem),
                         "price": inst.price_text(price) if price else None,
                         "stop": inst.price_text(stop) if stop else None})
    return rows


def rejections(pit: Pit) -> list[dict]:
    """The notary's reject record: what was refused and why."""
    path = pit.rejects / "rejects.mbox"
    out = []
    if path.exists():
        for msg in mbox.iter_file(path):
            h = mbox.headers(msg, ["x-pit-rejected", "x-pit-time", "from", "subject"])
            out.append({"time": h.get("x-pit-time", ""), "from": h.get("from", ""),
                        "subject": h.get("subject", ""), "reason": h.get("x-pit-rejected", "")})
    return out


def filter_rejections(pit: Pit) -> list[dict]:
    """``rejected`` lines of the filters' reports in the archive."""
    from pit.filter import signed_text
    out = []
    for seq, st, msg in _records(pit):
        if st.get("x-pit-kind") == "report":
            for line in signed_text(msg).split("\n"):
                if line.startswith("rejected "):
                    out.append({"report": seq, "filter": st.get("x-pit-account", ""), "line": line})
    return out


# -- output helpers ------------------------------------------------------------

def plural(n: int, word: str) -> str:
    """'1 order', '2 orders'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def emit(args, rows: Iterable[dict], text) -> None:
    """Rows as JSON lines with --json, else each through *text*."""
    for row in rows:
        if args.json:
            import json         # only for --json: not on every command's start-up path
            print(json.dumps(row, sort_keys=True))
        else:
            print(text(row))


def _write_mbox(out, seq: int, msg: bytes) -> None:
    mbox.write_message(out, msg, "notary", mbox.stamp(msg).get("x-pit-time", ""))


def _decision(d, what: str) -> int:
    if d.accepted:
        print(f"{what}: record {d.seq}")
        return 0
    raise CliError(f"refused by the notary: {d.reason}", EXIT["refused"])


# -- operator ------------------------------------------------------------------

def cmd_init(args) -> int:
    root = Path(args.dir)
    if (root / "pit.conf").exists():
        raise CliError(f"{root}: a pit already exists here", EXIT["usage"])
    try:
        pit = ops.init(root, args.name, algo=args.algo)
    except PitError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    print(f"pit {pit.name} created in {root}")
    print(f"notary key   {pit.notary}")
    print(f"operator key {pit.operator}")
    return 0


def _operator(args, key: str, value: str, extra: str = "") -> int:
    pit = find_pit(args.pit)
    return _decision(ops.operator_request(pit, key, value, extra), f"{key.lower()} {value}")


def cmd_currency(args) -> int:
    return _operator(args, "Currency", f"{args.code} {args.minor}")


def cmd_instrument(args) -> int:
    reg = registry(find_pit(args.pit))
    if args.currency.upper() not in reg.currencies:
        known = ", ".join(sorted(reg.currencies)) or "none yet: pit currency add CODE MINOR"
        raise CliError(f"unknown currency {args.currency} (this pit has {known})", EXIT["usage"])
    value = f"{args.ticker} {args.currency} tick {args.tick} lot {args.lot}"
    if args.maker or args.taker:
        if not (args.maker and args.taker):
            raise CliError("give both --maker and --taker", EXIT["usage"])
        value += f" maker {args.maker} taker {args.taker}"
    return _operator(args, "Instrument", value)


def cmd_fees(args) -> int:
    return _operator(args, "Fees", f"maker {args.maker} taker {args.taker}")


def cmd_member_add(args) -> int:
    pit = find_pit(args.pit)
    try:
        text = Path(args.keyfile).read_text()
    except OSError as e:
        raise CliError(f"cannot read key file {args.keyfile}: {e.strerror}", EXIT["key"]) from None
    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()]
    fpr, d = ops.add_member(pit, text, accounts)
    return _decision(d, f"member {fpr} accounts {', '.join(accounts)}")


def cmd_member_import(args) -> int:
    pit = find_pit(args.pit)
    try:
        data = Path(args.keyfile).read_bytes()
        lines = Path(args.accounts_file).read_text().splitlines()
    except OSError as e:
        raise CliError(f"cannot read {e.filename}: {e.strerror}", EXIT["key"]) from None
    owns: dict[str, list[str]] = {}
    for n, line in enumerate(lines, 1):
        words = line.split("#")[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise CliError(f"{args.accounts_file} line {n}: expected FINGERPRINT ACCOUNT[,ACCOUNT...]",
                           EXIT["usage"])
        owns[words[0].upper()] = [a for a in words[1].split(",") if a]
    from pit.keyring import KeyringError, certificate_fingerprint
    try:
        certs = ops.read_certificates(data)
    except ValueError as e:
        raise CliError(f"{args.keyfile}: not a keyring file: {e}", EXIT["key"]) from None
    members = []
    for armored in certs:
        try:
            fpr = certificate_fingerprint(armored)
        except KeyringError:
            fpr = ""
        members.append((armored, owns.get(fpr, [])))
    results = ops.add_members(pit, members, batch=args.batch)
    added = sum(1 for _, d in results if d.accepted)
    for fpr, d in results:
        if not d.accepted:
            print(f"refused: {fpr or '(unreadable key)'}: {d.reason}", file=sys.stderr)
    print(f"{added} members added, {len(results) - added} refused")
    return 0 if added == len(results) else EXIT["refused"]


def cmd_member_remove(args) -> int:
    return _operator(args, "Member", f"remove {args.fpr}")


def _funds_names(args) -> None:
    pit = find_pit(args.pit)
    args.asset = _asset(pit, args.asset)
    _account(pit, args.account)


def cmd_deposit(args) -> int:
    _funds_names(args)
    return _operator(args, "Deposit", f"{args.amount} {args.asset} to {args.account}")


def cmd_withdraw(args) -> int:
    _funds_names(args)
    return _operator(args, "Withdrawal", f"{args.amount} {args.asset} from {args.account}")


def cmd_notarize(args) -> int:
    pit = find_pit(args.pit)
    decisions = ops.notary(pit).run_maildir()
    ok = [d for d in decisions if d.accepted]
    for d in decisions:
        if not d.accepted:
            print(f"refused: {d.reason}" + (f" ({d.sender})" if d.sender else ""))
    print(f"{len(ok)} notarized, {len(decisions) - len(ok)} refused"
          + (f" (records {ok[0].seq}-{ok[-1].seq})" if ok else ""))
    return 0


def run_all(pit: Pit, only: list[str] | None = None, say=print) -> list:
    """Run transfers, then a specialist per instrument, posting their output.
    With *only* (``["specialist", "ACME"]``), run that filter alone."""
    jobs = [only] if only else [["transfers"]] + [["specialist", t]
                                                  for t in sorted(registry(pit).instruments)]
    out = []
    for job in jobs:
        flt, decisions = ops.run_filter(pit, job[0], job[1:])
        seqs = [d.seq for d in decisions if d.accepted]
        bad = [d.reason for d in decisions if not d.accepted]
        say(f"{flt.name}: {plural(len(flt.lines), 'report line')}"
            + (f", posted as records {seqs[0]}-{seqs[-1]}" if seqs else ", nothing new"))
        for reason in bad:
            say(f"{flt.name}: the notary refused its output: {reason}")
        out.append((flt, decisions))
    return out


def cmd_run(args) -> int:
    pit = find_pit(args.pit)
    if args.filter:
        _filter_names(pit, args.filter, args.args)
    try:
        run_all(pit, [args.filter] + args.args if args.filter else None)
    except ValueError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    return 0


def _filter_names(pit: Pit, kind: str, words: list[str]) -> None:
    """A filter's kind, and a specialist's tickers, when the pit knows them."""
    _filter_kind(kind)
    if kind == "specialist":
        for t in words:
            if not t.startswith("-"):
                _ticker(pit, t)


def _pidfile(pit: Pit) -> Path:
    return pit.root / "pit.pid"


def cmd_daemon(args) -> int:
    """The embedded daemon in the foreground (what 'pit start' runs)."""
    import signal
    pit = find_pit(args.pit)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    new = pit.incoming / "new"
    while not stop:
        if any(new.iterdir()):
            decisions = ops.notary(pit).run_maildir()
            if any(d.accepted for d in decisions):
                run_all(pit, say=lambda line: print(line, flush=True))
        for _ in range(int(args.interval * 10)):
            if stop:
                break
            time.sleep(0.1)
    return 0


def cmd_start(args) -> int:
    import subprocess
    pit = find_pit(args.pit)
    pidfile = _pidfile(pit)
    if pidfile.exists() and _alive(int(pidfile.read_text())):
        raise CliError(f"the daemon is already running (pid {pidfile.read_text().strip()})")
    log = open(pit.root / "daemon.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pit.cli", "--pit", str(pit.root.resolve()),
                             "daemon", "--interval", str(args.interval)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    print(f"daemon started: pid {proc.pid}, log {pit.root / 'daemon.log'}")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def cmd_stop(args) -> int:
    import signal
    pit = find_pit(args.pit)
    pidfile = _pidfile(pit)
    if not pidfile.exists():
        raise CliError("the daemon is not running (no pit.pid)")
    pid = int(pidfile.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:                                   # reap it if it is our child
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            if not _alive(pid):
                break
            time.sleep(0.1)
    pidfile.unlink()
    print(f"daemon stopped (pid {pid})")
    return 0


# -- trader ----------------------------------------------------------------------

def cmd_key_new(args) -> int:
    from pit.keyring import Keyring
    home = gnupghome(args.gnupghome)
    print(Keyring(home).generate(args.name, args.email, algo=args.algo))
    return 0


def cmd_key_export(args) -> int:
    from pit.keyring import Keyring
    sys.stdout.write(Keyring(gnupghome(args.gnupghome)).export(args.fpr))
    return 0


def new_ref() -> str:
    """A ref unique per account without asking anyone: the time in microseconds."""
    return f"r{time.time_ns() // 1000}"


def _send(args, pit: Pit, key: str, value: str) -> int:
    home = gnupghome(args.gnupghome)
    fpr = signing_key(home, args.key)
    ref = args.ref or new_ref()
    if not message.REF_RE.fullmatch(ref):
        raise CliError(f"bad ref {ref!r}: 1-40 letters, digits, '.', '_' or '-'", EXIT["usage"])
    if not message.ACCOUNT_RE.fullmatch(args.account or ""):
        raise CliError(f"bad account {args.account!r}: give --account NAME (lower case)",
                       EXIT["usage"])
    text = ops.request_text(pit, args.account, ref, key, value)
    sender = args.sender or f"{args.account}@{pit.domain}"
    from pit.keyring import Keyring
    raw = ops.sign_request(pit, text, Keyring(home), fpr, sender, mime=args.mime)
    if args.send == "stdout":
        sys.stdout.buffer.write(raw)
        return 0
    if args.send == "sendmail":
        import subprocess
        proc = subprocess.run(["sendmail", "-t", "-oi"], input=raw)
        if proc.returncode:
            raise CliError(f"sendmail exited with status {proc.returncode}")
    elif args.send == "smtp":
        import smtplib
        host, _, port = (args.smtp or "localhost:25").partition(":")
        try:
            with smtplib.SMTP(host, int(port or 25)) as s:
                s.sendmail(sender, [pit.address], raw)
        except (OSError, smtplib.SMTPException) as e:
            raise CliError(f"SMTP to {host}:{port or 25} failed: {e}") from None
    elif args.notarize:
        # notarized here and now, so not also delivered to incoming/ (where
        # the next run would refuse it as a replay of itself)
        d = ops.notary(pit).notarize([raw])[0]
        return _decision(d, f"ref {ref}")
    else:
        ops.send_local(pit, raw)
    if args.send != "local":
        print(f"ref {ref} sent ({args.send})")
    elif _daemon_pid(pit):
        print(f"ref {ref} sent (local); the daemon (pid {_daemon_pid(pit)}) notarizes it")
    else:
        print(f"ref {ref} sent (local); run pit notarize, or pit start")
    return 0


def _daemon_pid(pit: Pit) -> int | None:
    """The pid of the pit's running embedded daemon, or None."""
    try:
        pid = int(_pidfile(pit).read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def cmd_order(args) -> int:
    pit = find_pit(args.pit)
    words = " ".join(args.words)
    try:
        o = message.parse_order(words)
    except message.MessageError as e:
        raise CliError(f"bad order {words!r}: {e.reason}", EXIT["usage"]) from None
    if isinstance(o, message.Order):
        _, reg = _ticker(pit, o.ticker)
        req = message.Request(pit.name, args.account or "x", "x", o)
        try:
            o = message.resolve(req, reg.instruments, reg.currencies).instruction
        except message.MessageError as e:
            raise CliError(f"bad order {words!r}: {e.reason}", EXIT["usage"]) from None
    return _send(args, pit, "Order", message.instruction_text(o))


def cmd_transfer(args) -> int:
    pit = find_pit(args.pit)
    asset = _asset(pit, args.asset)
    _account(pit, args.to)
    return _send(args, pit, "Transfer", f"{args.amount} {asset} to {args.to}")


def cmd_orders(args) -> int:
    pit = find_pit(args.pit)
    if args.account:
        _account(pit, args.account)
    emit(args, open_orders(pit, args.account, args.at),
         lambda r: f"{r['seq']:>7} {r['account']} {r['ref']} {r['side']} {r['remaining']} "
                   f"{r['ticker']} {r['type']}"
                   + (f" at {r['price']}" if r['price'] else "")
                   + (f" stop {r['stop']}" if r['stop'] else ""))
    return 0


def _trade_text(t: dict) -> str:
    return (f"{t['seq']:>7} {t['ticker']} {t['qty']} at {t['price']} {t['currency']} "
            f"buyer {t['buyer']} seller {t['seller']} fees {t['buyer_fee']} {t['seller_fee']}")


def cmd_fills(args) -> int:
    pit = find_pit(args.pit)
    _account(pit, args.account)
    emit(args, trades(pit, account=args.account, at=args.at), _trade_text)
    return 0


def cmd_balances(args) -> int:
    pit = find_pit(args.pit)
    if args.account:
        _account(pit, args.account)
    emit(args, positions(pit, args.account, args.at),
         lambda r: f"{r['account']:<20} {r['amount']:>18} {r['asset']}")
    return 0


# -- auditor ---------------------------------------------------------------------

def cmd_audit(args) -> int:
    try:
        from pit.audit import audit
    except ImportError:
        raise CliError("this installation has no pit.audit module yet") from None
    root = args.path or (args.pit or os.environ.get("PIT_DIR") or ".")
    if not Path(root).exists():
        raise CliError(f"{root} does not exist", EXIT["no-pit"])
    if not any((Path(root) / p).exists() for p in ("pit.conf", "replica.conf", "archives", "index")):
        raise CliError(f"{root}: not a pit (no pit.conf, replica.conf, archives/ or index: give "
                       "a pit, a replica or a copy of its archives/)", EXIT["no-pit"])
    notary = _fingerprint(args.notary) if args.notary else None
    try:
        result = audit(root, progress=progress("audit"), notary=notary, remember=True)
    except ValueError as e:            # a damaged [verified] state: the message says what to do
        raise CliError(str(e)) from None
    _end_progress()
    if args.json:
        _print_json(audit_row(result))
    else:
        print(result.summary())
    return 0 if result.ok else 1


AUDIT_FIELDS = ("ok", "path", "pit", "notary", "records", "first_time", "last_time", "head",
                "tree_root", "seals", "heads", "signatures", "kinds", "filters", "reports",
                "checkpoints", "consistency", "problem", "seconds")


VERIFY_FIELDS = ("record", "record_hash", "leaf_index", "leaf_hash", "tree_size", "root",
                 "head_seal", "head_time", "path", "head", "checks", "verified")


def audit_row(result) -> dict:
    """An audit's result as one JSON object (pit audit --json)."""
    row = {f: getattr(result, f, None) for f in AUDIT_FIELDS}
    row["seconds"] = round(row["seconds"] or 0.0, 3)
    return row


def _fingerprint(text: str) -> str:
    fpr = text.replace(" ", "").upper()
    if len(fpr) != 40 or any(c not in "0123456789ABCDEF" for c in fpr):
        raise CliError(f"--notary {text!r}: give the notary key's full fingerprint "
                       "(40 hex digits)", EXIT["usage"])
    return fpr


def _record(pit: Pit, seq: int) -> bytes:
    for _, msg in Archive(pit.root).read(seq, seq):
        return msg
    raise CliError(f"no record {seq} in {pit.root} (the archive ends at "
                   f"{Archive(pit.root).last_seq()})", EXIT["usage"])


def _gpg_verify(home: Path, files: list[Path]) -> tuple[bool, str]:
    import subprocess
    proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--trust-model", "always",
                           "--status-fd", "1", "--verify", *map(str, files)],
                          capture_output=True, text=True)
    good = [l.split(" ", 3)[2:] for l in proc.stdout.splitlines() if l.startswith("[GNUPG:] GOODSIG")]
    return proc.returncode == 0 and bool(good), (" ".join(good[0]) if good else proc.stderr.strip().splitlines()[-1:] and proc.stderr.strip().splitlines()[-1])


def cmd_verify(args) -> int:
    """Check one record on its own, each step with stock tools, and its
    inclusion in the log under a signed tree head (RFC 9162)."""
    import hashlib
    import tempfile
    from pit import signed
    from pit.filter import signed_text
    pit = find_pit(args.pit)
    seq = args.seq
    msg = _record(pit, seq)
    try:
        st = mbox.stamp(msg)
    except mbox.MboxError as e:
        raise CliError(f"record {seq}: the stamp cannot be read ({e}): run pit audit") from None
    stamp_bytes, original = mbox.split_stamp(msg)
    ok = True
    lines: list[str] = []

    def step(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        lines.append(f"{'ok  ' if good else 'FAIL'} {text}")

    h = record_hash(msg)
    lines.append(f"record {seq}: {st.get('x-pit-kind')} {st.get('x-pit-account', '')} "
                 f"{st.get('x-pit-request', '')}")
    lines.append(f"     record hash {h}")
    digest = hashlib.sha256(original).hexdigest()
    step(digest == st.get("x-pit-digest"), f"X-Pit-Digest is the SHA-256 of the original message")
    if seq > 1:
        prev = record_hash(_record(pit, seq - 1))
        step(prev == st.get("x-pit-prev"), f"X-Pit-Prev is the record hash of record {seq - 1}")
    seal_seq = None
    if st.get("x-pit-kind") == "seal":
        seal_seq = seq                 # a seal vouches for itself: its own signature
    for s, sst, smsg in ([] if seal_seq else _records(pit, from_seq=seq)):
        if sst.get("x-pit-kind") != "seal":
            continue
        first, _, last = sst.get("x-pit-request", "0-0").partition("-")
        if int(first) <= seq <= int(last):
            seal = message.parse_seal(signed_text(smsg))
            seal_seq = s
            step(seal.hashes[seq - seal.first] == h,
                 f"seal record {s} has the line '{seq} {seal.hashes[seq - seal.first][:16]}...'")
            break
    if seal_seq is None:
        step(False, f"no seal covers record {seq} yet")
    head = _tree_head(pit, seq, args.head)
    proof = None
    with tempfile.TemporaryDirectory() as tmp, _public_home(pit) as home:
        if seal_seq is not None:
            block = signed.extract(mbox.split_stamp(_record(pit, seal_seq))[1]).gpg_input
            p = Path(tmp, "seal.asc")
            p.write_bytes(block)
            good, who = _gpg_verify(home, [p])
            step(good, f"gpg --verify of seal {seal_seq}: {who}")
        if head is None:
            lines.append(f"     no signed tree head covers record {seq} yet (seals made "
                         "before the log had tree heads carry none)")
        else:
            proof = _inclusion(pit, seq, h, head)
            step(proof["verified"], f"inclusion proof of {len(proof['path'])} hashes "
                 f"(RFC 9162) gives the Root of the signed tree head in seal record "
                 f"{head[0]} ({head[1].tree_size} records)")
            if head[0] != seal_seq:
                p = Path(tmp, "head.asc")
                p.write_bytes(head[2].encode())
                good, who = _gpg_verify(home, [p])
                step(good, f"gpg --verify of the signed tree head in seal {head[0]}: {who}")
        try:
            sig = signed.extract(original)
        except signed.SignedError as e:
            step(False, f"signed content: {e}")
        else:
            if sig.kind == "clearsigned":
                p = Path(tmp, "msg.asc")
                p.write_bytes(sig.gpg_input)
                files = [p]
            else:
                sp, d = Path(tmp, "sig.asc"), Path(tmp, "part")
                sp.write_bytes(sig.gpg_input)
                d.write_bytes(sig.signed_bytes)
                files = [sp, d]
            good, who = _gpg_verify(home, files)
            step(good, f"gpg --verify of the signer's {sig.kind} signature: {who}")
            signer = st.get("x-pit-signer", "")
            step(bool(signer) and signer in who.replace(" ", "") or _key_owns(home, signer, who),
                 f"the signature is by X-Pit-Signer {signer[:16]}...")
    if args.json:
        import json
        # the same fields whether or not a signed tree head covers the record yet
        out = {**dict.fromkeys(VERIFY_FIELDS), **(proof or {}), "record": seq,
               "record_hash": h, "checks": lines[2:], "verified": ok}
        print(json.dumps(out, sort_keys=True))
    elif args.proof:
        if proof is None:
            raise CliError(f"no signed tree head covers record {seq} (yet): nothing to prove "
                           "against", EXIT["failure"])
        print(_proof_text(pit, proof), end="")
    else:
        print("\n".join(lines))
        print("verified" if ok else "NOT verified")
    return 0 if ok else 1


def _tree_head(pit: Pit, seq: int, want: int | None):
    """``(seal seq, Seal, clearsigned text)`` of the signed tree head to
    prove record *seq* against: the seal record *want*, else the newest
    seal that carries a head covering *seq*; None when there is none."""
    from pit import signed
    arch = Archive(pit.root)
    if want is not None:
        found = list(arch.read(want, want))
        if not found or mbox.stamp(found[0][1]).get("x-pit-kind") != "seal":
            raise CliError(f"--head {want}: record {want} is not a seal", EXIT["usage"])
        seals = [found[0]]
    else:
        seals = list(arch.records_of_kind(seq + 1, ("seal",)))[-1:]
    for s, msg in seals:
        sg = signed.extract(mbox.split_stamp(msg)[1])
        seal = message.parse_seal(sg.text)
        if not seal.tree_size:
            if want is not None:
                raise CliError(f"--head {want}: seal {want} carries no tree head (it was made "
                               "before the log had them)", EXIT["usage"])
            return None
        if seal.tree_size < seq:
            raise CliError(f"--head {s}: its tree holds records 1-{seal.tree_size}, not "
                           f"{seq}", EXIT["usage"])
        return s, seal, sg.gpg_input.decode("utf-8")
    return None


def _inclusion(pit: Pit, seq: int, h: str, head) -> dict:
    """The inclusion proof of record *seq* (record hash *h*) in the tree
    of *head*, computed from the archive and checked.  O(tree size)."""
    from pit import merkle
    s, seal, text = head
    leaves = [merkle.leaf_hash(bytes.fromhex(record_hash(m)))
              for _, m in Archive(pit.root).read(1, seal.tree_size)]
    path = merkle.inclusion_proof(leaves, seq - 1, seal.tree_size)
    sides = merkle.inclusion_steps(seq - 1, seal.tree_size, path)
    leaf = merkle.leaf_hash(bytes.fromhex(h))
    good = merkle.verify_inclusion(seq - 1, seal.tree_size, leaf, path, bytes.fromhex(seal.root))
    return {"record": seq, "record_hash": h, "leaf_index": seq - 1, "leaf_hash": leaf.hex(),
            "tree_size": seal.tree_size, "root": seal.root, "head_seal": s,
            "head_time": seal.time, "path": [{"side": side, "hash": p.hex()}
                                             for side, p in zip(sides, path)],
            "head": text, "verified": good}


def _proof_text(pit: Pit, proof: dict) -> str:
    """The proof as a person reads and checks it (docs/verifying.md)."""
    out = [f"# inclusion proof (RFC 9162) of record {proof['record']} of pit {pit.name} "
           f"in the signed tree head of seal record {proof['head_seal']}",
           f"record: {proof['record']}",
           f"record-hash: {proof['record_hash']}   # sha256sum of the record",
           f"leaf-index: {proof['leaf_index']}",
           f"leaf-hash: {proof['leaf_hash']}   # SHA-256 of 00 and the record hash",
           f"tree-size: {proof['tree_size']}",
           f"path: {len(proof['path'])}   # from the leaf up: left H = SHA-256(01 H running), "
           f"right H = SHA-256(01 running H)"]
    out += [f"{p['side']} {p['hash']}" for p in proof["path"]]
    out += [f"root: {proof['root']}   # must be the Root: of the signed tree head below",
            f"head-seal: {proof['head_seal']}", "", proof["head"].rstrip("\n"), ""]
    return "\n".join(out)


class _public_home:
    """A GnuPG home holding the pit's public keys: the pit's own, or for a
    replica (which holds no keyring) one made from the keys its archive
    publishes (genesis and member records), removed afterwards."""

    def __init__(self, pit: Pit):
        self.pit, self.keys = pit, None

    def __enter__(self) -> Path:
        if self.pit.gnupg.is_dir():
            return self.pit.gnupg
        from pit import signed
        from pit.audit import _Keys
        self.keys = _Keys()
        for _, msg in Archive(self.pit.root).records_of_kind(1, ("genesis", "member")):
            try:
                self.keys.add(signed.extract(mbox.split_stamp(msg)[1]).text)
            except Exception:          # noqa: BLE001 - gpg --verify then names the key it lacks
                pass
        return Path(self.keys.dir)

    def __exit__(self, *exc) -> None:
        if self.keys is not None:
            self.keys.close()


def _key_owns(home: Path, primary: str, gpg_line: str) -> bool:
    """GOODSIG names the signing (sub)key id; accept it when it belongs to *primary*."""
    from pit.keyring import Keyring
    keyid = gpg_line.split(" ")[0].upper()
    for k in Keyring(home).keys():
        if k.fingerprint == primary and (k.fingerprint.endswith(keyid) or any(
                s.fingerprint.endswith(keyid) for s in k.subkeys)):
            return True
    return False


def _range(text: str) -> tuple[int, int]:
    a, _, b = text.partition("-")
    try:
        first, last = int(a), int(b or a)
    except ValueError:
        raise CliError(f"bad record range {text!r}: expected SEQ or SEQ-SEQ", EXIT["usage"]) from None
    if first < 1 or last < first:
        raise CliError(f"bad record range {text!r}", EXIT["usage"])
    return first, last


def cmd_show(args) -> int:
    pit = find_pit(args.pit)
    first, last = _range(args.range)
    out = sys.stdout.buffer
    n = 0
    for seq, msg in Archive(pit.root).read(first, last):
        if args.json:
            _print_json(record_row(seq, mbox.stamp(msg)))
        else:
            _write_mbox(out, seq, msg)
        n += 1
    if not n:
        raise CliError(f"no records {args.range} (the archive ends at {Archive(pit.root).last_seq()})",
                       EXIT["usage"])
    return 0


RECORD_FIELDS = ("seq", "time", "kind", "account", "ref", "ticker", "request", "signer")


def record_row(seq: int, st: dict) -> dict:
    """A record as a row: the fields of RECORD_FIELDS from its stamp (what
    export's CSV columns, show --json, export --json and search --json give)."""
    row = {f: st.get(f"x-pit-{f}", "") for f in RECORD_FIELDS}
    row["seq"] = seq
    return row


def _print_json(obj) -> None:
    import json         # only for --json: not on every command's start-up path
    print(json.dumps(obj, sort_keys=True))


def _matches(st: dict, ticker: str | None, account: str | None) -> bool:
    if ticker and st.get("x-pit-ticker") != ticker and st.get("x-pit-account") != f"specialist:{ticker}":
        return False
    if account:
        a = st.get("x-pit-account", "")
        if a != account and not a.startswith(account + ":"):
            return False
    return True


def cmd_export(args) -> int:
    pit = find_pit(args.pit)
    ticker = _ticker(pit, args.ticker)[0] if args.ticker else None
    if args.account:
        _account(pit, args.account)
    out = sys.stdout
    if args.format == "csv":
        import csv              # only for --format csv
        writer = csv.writer(out, lineterminator="\n")
    else:
        writer = None
    if writer:
        writer.writerow(RECORD_FIELDS)
    fmt = "json" if args.json else args.format
    for seq, st, msg in _records(pit, args.to, args.frm):
        if not _matches(st, ticker, args.account):
            continue
        if fmt == "json":
            _print_json(record_row(seq, st))
            continue
        row = list(record_row(seq, st).values())
        if fmt == "mbox":
            out.flush()
            _write_mbox(sys.stdout.buffer, seq, msg)
        elif writer:
            writer.writerow(row)
        else:
            print(" ".join(str(x) for x in row[:5]) + "  " + row[6])
    out.flush()
    return 0


# -- member ------------------------------------------------------------------------

def cmd_replay(args) -> int:
    pit = find_pit(args.pit)
    _filter_kind(args.filter)
    try:
        cls = ops.filter_class(args.filter)
        flt = cls(args.args)
    except (PitError, ValueError) as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.filter == "specialist" and (args.from_start or not _has_checkpoint(pit, flt.name)):
        _filter_names(pit, args.filter, args.args)  # a ticker run before is known: no archive scan
    out = mbox.stdout_writer()
    mbox.widen_pipe(out)
    show = progress("replay")
    total = Archive(pit.root).last_seq() if _BARS else None    # on a terminal only
    if total:
        show(0, total)
    n = 0
    try:
        for entry, _ in ops.replay_entries(pit, flt, from_start=args.from_start):
            out.write(entry)
            n += 1
            if total and n % 100 == 0:          # how far into the archive: its stamp's Seq
                seq = entry.find(b"\nX-Pit-Seq: ", 0, 400)
                if seq >= 0:
                    show(int(entry[seq + 12:entry.index(b"\n", seq + 12)]), total)
        out.flush()
    except BrokenPipeError:
        mbox.drop_stdout()
    _end_progress()
    return 0


def _has_checkpoint(pit: Pit, name: str) -> bool:
    """Whether ``checkpoints/index`` names filter *name* (read, not the archive)."""
    try:
        text = (pit.checkpoints / "index").read_text()
    except OSError:
        return False
    slug = ops.slug(name)
    return any(line.split(" ", 1)[0] == slug for line in text.splitlines())


def cmd_book(args) -> int:
    pit = find_pit(args.pit)
    ticker, _ = _ticker(pit, args.ticker)
    flt = specialist_state(pit, ticker, args.at)
    if ticker not in flt.engine.tickers():
        raise CliError(f"{ticker} is not yet defined at record {args.at}", EXIT["usage"])
    b = book_levels(flt, ticker, args.depth)
    if args.json:
        import json
        print(json.dumps(b, sort_keys=True))
        return 0
    print(f"{ticker} ({b['currency']})  last {b['last'] or '-'}")
    print(f"{'orders':>6} {'bid qty':>12} {'bid':>12} | {'ask':<12} {'ask qty':<12} {'orders':<6}")
    for i in range(max(len(b["bids"]), len(b["asks"]), 1)):
        bid = b["bids"][i] if i < len(b["bids"]) else None
        ask = b["asks"][i] if i < len(b["asks"]) else None
        print(f"{bid['orders'] if bid else '':>6} {bid['qty'] if bid else '':>12} "
              f"{bid['price'] if bid else '':>12} | {ask['price'] if ask else '':<12} "
              f"{ask['qty'] if ask else '':<12} {ask['orders'] if ask else '':<6}".rstrip())
    return 0


def cmd_chart(args) -> int:
    from pit import chart
    pit = find_pit(args.pit)
    ticker, _ = _ticker(pit, args.ticker)
    if args.at is not None and ticker not in specialist_state(pit, ticker, args.at).engine.tickers():
        raise CliError(f"{ticker} is not yet defined at record {args.at}", EXIT["usage"])
    out = args.output or f"{ticker}.{args.format}"
    try:
        drawn = chart.draw(pit, ticker, out, at=args.at, depth=args.depth)
    except ValueError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.json:
        import json
        print(json.dumps(drawn, sort_keys=True))
    else:
        print(f"{drawn['path']}: {ticker} price and volume ({plural(drawn['trades'], 'trade')}), "
              f"depth ({plural(drawn['bids'], 'bid level')}, {plural(drawn['asks'], 'ask level')})")
    return 0


def cmd_trades(args) -> int:
    pit = find_pit(args.pit)
    ticker = _ticker(pit, args.ticker)[0] if args.ticker else None
    emit(args, trades(pit, ticker, args.at), _trade_text)
    return 0


def cmd_positions(args) -> int:
    return cmd_balances(args)


def cmd_rejects(args) -> int:
    pit = find_pit(args.pit)
    emit(args, ({"kind": "notary", **r} for r in rejections(pit)),
         lambda r: f"{r['time']} {r['from']}: {r['reason']}")
    emit(args, ({"kind": "filter", **r} for r in filter_rejections(pit)),
         lambda r: f"report {r['report']} {r['filter']}: {r['line']}")
    return 0


def cmd_search(args) -> int:
    from pit import search
    pit = find_pit(args.pit)
    if args.ticker:
        _ticker(pit, args.ticker)
    if args.account:
        _account(pit, args.account)
    try:
        exprs = search.terms(args.ticker and args.ticker.upper(), args.account, args.ref,
                             args.sender, args.date, args.expressions)
        show = progress("indexing", unit="B")
        found = search.search(pit.root, exprs, progress=show if _BARS else None)
        _end_progress()
    except search.SearchError as e:
        raise CliError(str(e), EXIT["usage"]) from None
    if args.json:
        for msg in found:
            st = mbox.stamp(msg)
            seq = st.get("x-pit-seq", "")
            _print_json(record_row(int(seq) if seq.isdigit() else 0, st))
    elif args.format == "mbox":
        for msg in found:
            _write_mbox(sys.stdout.buffer, 0, msg)
        sys.stdout.flush()
    else:
        for msg in found:
            st = mbox.stamp(msg)
            print(f"{st.get('x-pit-seq', '-'):>7} {st.get('x-pit-kind', '')} "
                  f"{st.get('x-pit-account', '')} {st.get('x-pit-ref', '')}  "
                  f"{st.get('x-pit-request', '')}")
    if not found:
        raise CliError("no record matches")
    return 0


def cmd_mirror(args) -> int:
    """Copy the archive (and nothing else), compare it with the source, and
    check the copy's log against the newest head this replica verified."""
    from pit import mirror, replica
    from pit.audit import audit
    show = progress("mirror")
    dst = Path(args.dst)
    if (dst / "pit.conf").exists():
        raise CliError(f"{dst} is a pit, not a replica: give another directory", EXIT["usage"])
    notary = _fingerprint(args.notary) if args.notary else None
    snap = None
    try:
        try:
            remembered = replica.load_state(dst).size
        except ValueError as e:
            raise CliError(str(e)) from None
        if remembered:
            snap = mirror.keep_verified(dst)
        changed = mirror.mirror(args.src, dst)
        show(len(changed))
        _end_progress()
        diffs = mirror.compare(args.src, dst)
    except mirror.MirrorError as e:
        raise CliError(str(e)) from None
    print(f"{len(changed)} files brought over; replica {dst} "
          + ("is identical to the source (rsync --checksum)" if not diffs
             else "DIFFERS from the source: " + "; ".join(diffs)))
    stray = mirror.strays(dst)
    if stray:
        print(f"warning: {dst}/archives holds files that are not the archive (an older pit "
              f"mirror copied them; remove them): {', '.join(stray)}")
    try:
        first = next(Archive(dst).read(1, 1), None)
        st = mbox.stamp(first[1]) if first else {}
    except (ArchiveError, mbox.MboxError):
        st = {}                        # the log check below says what is wrong
    words = st.get("x-pit-request", "").split(" ")
    if st.get("x-pit-kind") == "genesis" and len(words) == 4:
        # the genesis' notary key is pinned on the first mirror unless --notary says
        replica.write_replica_conf(dst, args.src, st.get("x-pit-pit", ""), words[1], words[3])
    result = audit(dst, progress=progress("log check"), notary=notary, remember=True,
                   log_only=True)
    _end_progress()
    if result.ok:
        head = result.newest_head
        print(f"log of {result.records} records checked: chain, digests, "
              f"{result.seals} seals and {result.heads} signed tree heads by notary "
              f"{result.notary}" + (f"; newest head: {head[1]} records, root {head[2]}" if head else "")
              + (f"; it {result.consistency}" if result.consistency else
                 "; remembered as this replica's first verified head" if head else
                 "; no signed tree head to remember yet (its seals predate them)"))
    elif snap is not None:
        try:
            where = mirror.first_difference(snap, dst)
        except (ArchiveError, mbox.MboxError, OSError) as e:
            where = f"the new copy cannot be read record by record: {e}"
        refused = mirror.put_back(dst, snap)
        print(f"log check FAILED: the replica keeps the copy it verified; what the source "
              f"holds now is in {refused} for you to inspect ({where}):")
        print(result.problem)
    else:
        print("log check FAILED:")
        print(result.problem)
    if snap is not None and snap.exists():
        import shutil
        shutil.rmtree(snap)
    return 0 if not diffs and result.ok else 1


# -- the parser --------------------------------------------------------------------

# -- mailman ---------------------------------------------------------------------

def _hostport(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"{what} {text!r}: give HOST:PORT", EXIT["usage"])
    return host, int(port)


def cmd_mailman_provision(args) -> int:
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


def cmd_mailman_serve(args) -> int:
    """The notary's LMTP server for one or more pits, in the foreground, until SIGTERM/SIGINT."""
    import signal
    from pit.daemon import DaemonError, notary_server
    dirs = [find_pit(d).root for d in args.pits] or [find_pit(args.pit).root]
    try:
        server, services = notary_server(dirs, _hostport(args.listen, "--listen"),
                                         _hostport(args.mailman, "--mailman"),
                                         _hostport(args.smtp, "--smtp"), args.spool)
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


def cmd_mailman_postfix_config(args) -> int:
    """The Postfix maps and main.cf/master.cf lines for the pits (pit.postfix)."""
    from pit import postfix
    dirs = [find_pit(d).root for d in args.pits] or [find_pit(args.pit).root]
    try:
        files = postfix.postfix_config(
            [postfix.pit_routes(d) for d in dirs], _hostport(args.notary, "--notary"),
            args.mailman_data, args.config_dir, args.user, args.pit_command)
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
    _filter_kind(args.filter)
    smtp = _hostport(args.smtp, "--smtp") if args.smtp else None
    sync = None
    if args.mirror:
        from pit import mirror
        source, root = args.mirror, pit.root
        sync = lambda: mirror.mirror(source, root)     # noqa: E731
    try:
        return FilterDaemon(pit, args.filter, args.args,
                            None if smtp else _hostport(args.lmtp, "--lmtp"),
                            address=args.to, sync=sync, smtp=smtp, sender=args.sender,
                            gnupghome=args.gnupghome, fpr=args.key, wait_seconds=args.wait)
    except (DaemonError, PitError) as e:
        raise CliError(str(e), EXIT["usage"]) from None


def cmd_mailman_daemon(args) -> int:
    """A filter daemon in the foreground: catch up, then run when the archive grows."""
    import signal
    daemon = _filter_daemon(args)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    daemon.start(poll=args.poll)
    print(f"{daemon.name}: running, posting to {daemon.address}", flush=True)
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    daemon.stop()
    return 0


def cmd_mailman_deliver(args) -> int:
    """The MTA's delivery program for a filter's address: one run now (or ask
    the run in progress for one more).  Exit codes: pit.daemon.deliver."""
    from pit.daemon import deliver
    try:
        lmtp = _hostport(args.lmtp, "--lmtp")
    except CliError as e:
        raise CliError(str(e), 64) from None         # EX_USAGE: the MTA's entry is wrong
    code, text = deliver(args.pit or os.environ.get("PIT_DIR") or ".", args.filter, args.args,
                         lmtp, sys.stdin.buffer)
    if code:
        raise CliError(text, code)
    return 0


_FILTER_HELP = f"one of {', '.join(sorted(ops.FILTERS))}"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join("  " + l for l in lines)


class _Unbuilt:
    """Stands in for the parser of a command that is not being run: every
    call on it does nothing (see :func:`build_parser`)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


_UNBUILT = _Unbuilt()


def _command_named(argv: list[str]) -> str | None:
    """The command word of *argv* when it is plain to see: the first
    argument, or the one after ``--pit DIR`` or ``--pit=DIR``; None when
    anything else comes first (an option, ``--help``, an abbreviation)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--pit":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            i += 2
        elif word.startswith("--pit="):
            i += 1
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """pit(1) errors are one line: no usage line before the error."""

        def error(self, message):
            self.exit(EXIT["usage"], f"{self.prog}: {message} (see {self.prog} --help)\n")

    return Parser


def build_parser(only: str | None = None) -> "argparse.ArgumentParser":
    """The ``pit`` command's parser.  With *only*, the name of a command,
    the other commands' parsers are not built (a few milliseconds of 40
    parsers a run): parsing a command line that names *only* gives the
    same result, the same usage and help text and the same errors.
    Without it, or if no command is called *only*, every one is built."""
    import argparse
    built = []
    p = _parser_class()(
        prog="pit", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A trading pit whose record is a mailing list archive.",
        epilog=_examples("pit init demo-pit --name demo", "export PIT_DIR=demo-pit",
                         "pit order buy 100 ACME at 12.50 --account alice --notarize",
                         "pit book ACME", "pit audit") +
        "\n\nexit status: 0 ok, 1 failure, 2 usage error, 3 pit not found, 4 key problem, "
        "5 refused by the notary\nsee pit(1): docs/pit.1.md")
    p.add_argument("--pit", metavar="DIR", help="the pit directory (default $PIT_DIR or .)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name, func, help, examples=(), parent=sub, json_flag=False):
        if parent is _UNBUILT or (only is not None and parent is sub and name != only):
            return _UNBUILT
        if parent is sub:
            built.append(name)
        sp = parent.add_parser(name, help=help, description=help,
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               epilog=_examples(*examples) if examples else None)
        sp.set_defaults(func=func)
        sp.add_argument("--pit", metavar="DIR", default=argparse.SUPPRESS,
                        help="the pit directory (default $PIT_DIR or .)")
        if json_flag:
            sp.add_argument("--json", action="store_true", help="one JSON object a line")
        return sp

    def trader_opts(sp):
        sp.add_argument("--account", required=True, help="the account the order is for")
        sp.add_argument("--key", metavar="FPR", help="signing key (default: the only one)")
        sp.add_argument("--gnupghome", metavar="DIR", help="default $GNUPGHOME or ~/.gnupg")
        sp.add_argument("--ref", help="your name for it, unique per account (default: time based)")
        sp.add_argument("--mime", action="store_true", help="PGP/MIME instead of inline clearsigned")
        sp.add_argument("--send", choices=["local", "smtp", "sendmail", "stdout"], default="local",
                        help="local: the pit's incoming maildir (default); stdout: print it")
        sp.add_argument("--smtp", metavar="HOST:PORT", help="with --send smtp (default localhost:25)")
        sp.add_argument("--from", dest="sender", metavar="ADDRESS", help="the From address")
        sp.add_argument("--notarize", action="store_true",
                        help="with --send local: notarize at once and print the record number")

    # operator
    sp = cmd("init", cmd_init, "create a pit: directories, notary and operator keys, genesis record",
             ["pit init demo-pit --name demo", "pit init /srv/pits/fx --name fx --algo rsa3072"])
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--name", required=True, help="the pit's name (lower case)")
    sp.add_argument("--algo", choices=["ed25519", "rsa3072"], default="ed25519")

    sp = cmd("currency", None, "define currencies")
    cs = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("add", cmd_currency, "define a currency and its minor unit", ["pit currency add USD 0.01"], cs)
    c.add_argument("code"); c.add_argument("minor")

    sp = cmd("instrument", None, "define instruments")
    cs = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("add", cmd_instrument, "define an instrument: ticker, currency, tick and lot",
            ["pit instrument add ACME USD --tick 0.01 --lot 1",
             "pit instrument add BTC EUR --tick 0.5 --lot 0.1 --maker 0.05% --taker 0.1%"], cs)
    c.add_argument("ticker"); c.add_argument("currency")
    c.add_argument("--tick", required=True); c.add_argument("--lot", required=True)
    c.add_argument("--maker"); c.add_argument("--taker")

    sp = cmd("fees", cmd_fees, "set the pit's default maker and taker fee rates",
             ["pit fees --maker 0.1% --taker 0.2%"])
    sp.add_argument("--maker", required=True); sp.add_argument("--taker", required=True)

    sp = cmd("member", None, "add or remove members")
    cs = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("add", cmd_member_add, "make a key a member owning accounts",
            ["pit key export $FPR > alice.asc && pit member add alice.asc --accounts alice"], cs)
    c.add_argument("keyfile"); c.add_argument("--accounts", required=True)
    c = cmd("import", cmd_member_import, "make every key of a keyring file a member (moving a membership in)",
            ["gpg --export -a > members.asc && pit member import members.asc --accounts-file owners"], cs)
    c.add_argument("keyfile"); c.add_argument("--accounts-file", required=True,
                                              help="lines FINGERPRINT ACCOUNT[,ACCOUNT...]")
    c.add_argument("--batch", type=int, default=1000, help="member records a notary batch")
    c = cmd("remove", cmd_member_remove, "remove a member's key", ["pit member remove $FPR"], cs)
    c.add_argument("fpr")

    for name, func, word in (("deposit", cmd_deposit, "to"), ("withdraw", cmd_withdraw, "from")):
        sp = cmd(name, func, f"record a {name} (executed by the transfers filter)",
                 [f"pit {name} 1000.00 USD alice", f"pit {name} 50 ACME bob"])
        sp.add_argument("amount"); sp.add_argument("asset", type=str.upper); sp.add_argument("account")

    cmd("notarize", cmd_notarize, "notarize the mail waiting in the pit's incoming maildir",
        ["pit notarize"])
    sp = cmd("run", cmd_run, "run transfers and every specialist, posting their output",
             ["pit run", "pit run specialist ACME", "pit run transfers"])
    sp.add_argument("filter", nargs="?", metavar="FILTER", help=_FILTER_HELP)
    sp.add_argument("args", nargs="*")
    for name, func, text in (("start", cmd_start, "start the embedded daemon (notarize + run, in a loop)"),
                             ("daemon", cmd_daemon, "the embedded daemon, in the foreground")):
        sp = cmd(name, func, text, [f"pit {name}"])
        sp.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    cmd("stop", cmd_stop, "stop the embedded daemon", ["pit stop"])

    # trader
    sp = cmd("key", None, "make and export your signing key")
    ks = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("new", cmd_key_new, "make a signing key; prints its fingerprint",
            ["pit key new alice alice@example.org --gnupghome ~/.pit-keys"], ks)
    c.add_argument("name"); c.add_argument("email")
    c.add_argument("--algo", choices=["ed25519", "rsa3072"], default="ed25519")
    c.add_argument("--gnupghome", metavar="DIR")
    c = cmd("export", cmd_key_export, "print a public key (to give the operator)",
            ["pit key export $FPR > alice.asc"], ks)
    c.add_argument("fpr"); c.add_argument("--gnupghome", metavar="DIR")

    sp = cmd("order", cmd_order, "sign and send an order",
             ["pit order buy 100 ACME at 12.50 --account alice",
              "pit order sell 10 ACME market --account bob",
              "pit order sell 10 ACME stop 11.00 --account bob",
              "pit order sell 10 ACME stop 11 limit 10.9 --account bob",
              "pit order sell 5 ACME take-profit 14 --account bob",
              "pit order buy 10 ACME ioc 12.50 --account alice --ref 7",
              "pit order cancel 7 --account alice",
              "pit order modify 7 qty 90 price 12.45 --account alice",
              "pit order buy 1 ACME at 12.5 --account alice --send stdout | less"])
    sp.add_argument("words", nargs="+", help="the order, e.g. buy 100 ACME at 12.50")
    trader_opts(sp)

    sp = cmd("transfer", cmd_transfer, "sign and send a transfer between your accounts",
             ["pit transfer 100.00 USD alice:ACME --account alice",
              "pit transfer 50.00 USD alice --account alice:ACME"])
    sp.add_argument("amount"); sp.add_argument("asset"); sp.add_argument("to")
    trader_opts(sp)

    sp = cmd("orders", cmd_orders, "open orders (resting or waiting on a trigger)",
             ["pit orders --account alice", "pit orders --json | jq .ref"], json_flag=True)
    sp.add_argument("--account")
    sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)
    sp = cmd("fills", cmd_fills, "trades an account took part in",
             ["pit fills --account alice"], json_flag=True)
    sp.add_argument("--account", required=True)
    sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)
    for name in ("balances", "positions"):
        sp = cmd(name, cmd_balances, "balances of every asset, per account",
                 [f"pit {name} --account alice", f"pit {name} --at 500 --json"], json_flag=True)
        sp.add_argument("--account", required=(name == "balances"))
        sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)

    # auditor
    sp = cmd("audit", cmd_audit, "re-verify every record and replay every filter",
             ["pit audit", "pit mirror pit-host:/srv/pits/demo copy && pit audit copy",
              "pit audit copy --notary 9647B5B8FCC30BFBE8C790B08F9B3AE9A036F739",
              "pit audit --json | jq .ok"], json_flag=True)
    sp.add_argument("path", nargs="?", help="a pit, a replica or a copy of its archive "
                    "(default the pit)")
    sp.add_argument("--notary", metavar="FPR", help="the notary key the genesis record must "
                    "name (pinned in the copy's state from then on)")
    sp = cmd("verify", cmd_verify, "check one record on its own with stock gpg, and its "
             "inclusion in the log", ["pit verify 42", "pit verify 42 --proof",
                                      "pit verify 42 --json --head 131"], json_flag=True)
    sp.add_argument("seq", type=int)
    sp.add_argument("--proof", action="store_true", help="print the inclusion proof and the "
                    "signed tree head, to check with sha256sum, xxd and gpg (docs/verifying.md)")
    sp.add_argument("--head", type=int, metavar="SEAL", help="the seal record whose signed "
                    "tree head to prove against (default the newest)")
    sp = cmd("show", cmd_show, "print records as mbox (--json: one summary a record)",
             ["pit show 42", "pit show 40-50 | grep X-Pit-Request", "pit show 1-10 --json"],
             json_flag=True)
    sp.add_argument("range", metavar="SEQ[-SEQ]")
    sp = cmd("export", cmd_export, "records as mbox, text, CSV or JSON lines",
             ["pit export --format csv --ticker ACME > acme.csv", "pit export --json --to 10",
              "pit export --account alice --format text", "pit export --from 100 --to 200 > part.mbox"])
    sp.add_argument("--from", dest="frm", type=int, default=1, metavar="SEQ")
    sp.add_argument("--to", type=int, metavar="SEQ")
    sp.add_argument("--ticker"); sp.add_argument("--account")
    sp.add_argument("--format", choices=["mbox", "text", "csv", "json"], default="mbox")
    sp.add_argument("--json", action="store_true", help="the same as --format json")
    cmd("rejects", cmd_rejects, "what the notary and the filters refused, and why",
        ["pit rejects", "pit rejects --json"], json_flag=True)

    # member
    sp = cmd("replay", cmd_replay, "a filter's input as mbox: its checkpoint, then newer records",
             ["pit replay specialist ACME --from-start | pit-specialist ACME | grep ^trade",
              "pit replay transfers --from-start | pit-transfers > out.mbox"])
    sp.add_argument("filter"); sp.add_argument("args", nargs="*")
    sp.add_argument("--from-start", action="store_true", help="ignore checkpoints")
    sp = cmd("book", cmd_book, "best bids and offers of a ticker",
             ["pit book ACME", "pit book ACME --depth 10 --at 300", "pit book ACME --json"],
             json_flag=True)
    sp.add_argument("ticker"); sp.add_argument("--depth", type=int, default=5)
    sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)
    sp = cmd("chart", cmd_chart, "draw a ticker's price, volume and depth chart (PNG or SVG)",
             ["pit chart ACME", "pit chart ACME --at 300 -o acme-300.svg",
              "pit chart BTC --format svg --depth 100"], json_flag=True)
    sp.add_argument("ticker"); sp.add_argument("--at", type=int, metavar="SEQ",
                                               help="as of record SEQ (the book replayed to it)")
    sp.add_argument("-o", "--output", metavar="FILE", help="default TICKER.png (or .svg)")
    sp.add_argument("--format", choices=["png", "svg"], default="png",
                    help="without -o: the file's kind")
    sp.add_argument("--depth", type=int, default=50, help="price levels a side in the depth chart")
    sp = cmd("trades", cmd_trades, "trades reported by the specialists",
             ["pit trades --ticker ACME", "pit trades --json | tail -1"], json_flag=True)
    sp.add_argument("--ticker"); sp.add_argument("--at", type=int, metavar="SEQ", help=AT_HELP)
    sp = cmd("search", cmd_search, "search the archive with mairix (exit 1: nothing found)",
             ["pit search --ticker ACME --account alice", "pit search --ref 17 --account alice",
              "pit search --sender bob@example.org --format mbox | mutt -f /dev/stdin",
              "pit search s:seal", "pit search --ticker ACME --json"], json_flag=True)
    sp.add_argument("expressions", nargs="*", help="more mairix expressions (all must match)")
    sp.add_argument("--ticker"); sp.add_argument("--account"); sp.add_argument("--ref")
    sp.add_argument("--sender"); sp.add_argument("--date", metavar="YYYYMMDD[-YYYYMMDD]")
    sp.add_argument("--format", choices=["text", "mbox"], default="text")
    sp = cmd("mirror", cmd_mirror, "replicate a pit's archive (public material only) with "
             "rsync, compare, and check its log",
             ["pit mirror pit-host:/srv/pits/demo ~/mirrors/demo && pit audit ~/mirrors/demo",
              "pit mirror rsync://pit-host/pits/demo ~/mirrors/demo",
              "pit mirror demo-pit /backup/demo"])
    sp.add_argument("src"); sp.add_argument("dst")
    sp.add_argument("--notary", metavar="FPR", help="the notary key the replica must expect "
                    "(default: the genesis record's, pinned on the first mirror)")
    sp = cmd("mailman", None, "a pit on GNU Mailman 3: provisioning, the notary's server, filter daemons")
    ms = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("provision", cmd_mailman_provision,
            "create or repair the pit's list; subscribe members, the archive and the filters",
            ["pit mailman provision --rest http://127.0.0.1:8001/3.1 --user restadmin "
             "--password $PW --domain pits.example"], ms)
    c.add_argument("--rest", required=True, metavar="URL", help="Mailman's REST API")
    c.add_argument("--user", required=True); c.add_argument("--password", required=True)
    c.add_argument("--domain", required=True, help="the mail domain of the pit's list")
    c = cmd("serve", cmd_mailman_serve,
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
    c.add_argument("--spool", metavar="DIR", help="notarized mail waiting for Mailman, "
                   "DIR/<pit address>/ (default PIT/spool/<pit address>/)")
    c = cmd("postfix-config", cmd_mailman_postfix_config,
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
    for name, func, text in (
            ("daemon", cmd_mailman_daemon, "run a filter whenever the archive grows, "
             "posting its output through the notary (foreground)"),
            ("deliver", cmd_mailman_deliver, "the MTA's delivery program for a filter's "
             "address: one run (exit 75: try again later)")):
        c = cmd(name, func, text, [f"pit mailman {name} specialist ACME --lmtp 127.0.0.1:8025"], ms)
        c.add_argument("filter", metavar="FILTER", help=_FILTER_HELP)
        c.add_argument("args", nargs="*")
        c.add_argument("--lmtp", default="127.0.0.1:8025", metavar="HOST:PORT",
                       help="the notary's LMTP server")
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
    if only is not None and not built:
        return build_parser()
    return p


def _plain_replay(argv: list[str]):
    """What the parser makes of a plain ``pit [--pit DIR] replay FILTER
    [ARG...]`` (no option after the command, nothing starting with "-"),
    without importing argparse or building a parser (~4 ms of a replay
    that a filter daemon runs on every delivery); None for any other
    command line, which goes to the parser."""
    words = list(argv)
    pit = None
    if words[:1] == ["--pit"] and len(words) > 1:
        pit, words = words[1], words[2:]
    elif words[:1] and words[0].startswith("--pit="):
        pit, words = words[0][len("--pit="):], words[1:]
    if words[:1] != ["replay"] or len(words) < 2 or any(w.startswith("-") for w in words) \
            or (pit is not None and pit.startswith("-")):
        return None
    from types import SimpleNamespace
    return SimpleNamespace(pit=pit, command="replay", func=cmd_replay, filter=words[1],
                           args=words[2:], from_start=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _plain_replay(argv)
    if args is None:
        parser = build_parser(_command_named(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return int(e.code or 0)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT["usage"]
    if not hasattr(args, "pit"):
        args.pit = None
    if args.command in _NO_GPG:
        return _run(args)
    from pit.agents import stopped_after
    with stopped_after(_gpg_homes(args)):
        return _run(args)


# Commands that never run gpg: no look for gpg-agents to stop after them
# (`pit replay` is on a filter daemon's every delivery; `pit start` leaves
# the daemon it starts to stop its own).
_NO_GPG = {"replay", "start", "stop", "show", "export", "trades", "search", "mirror"}


def _gpg_homes(args) -> list:
    """The GnuPG homes a command may start gpg-agents in: the pit's (its
    notary's, operator's, filters' homes are under it), a new pit's, an
    audited copy's, and the trader's home."""
    homes = [args.pit or os.environ.get("PIT_DIR") or ".",
             getattr(args, "dir", None), getattr(args, "path", None)]
    if hasattr(args, "gnupghome") or args.command in ("order", "transfer"):
        homes.append(gnupghome(getattr(args, "gnupghome", None)))
    return [h for h in homes if h]


def _run(args) -> int:
    """Run the command; errors become one line on stderr and an exit status."""
    try:
        return args.func(args)
    except CliError as e:
        print(f"pit {args.command}: {e}", file=sys.stderr)
        return e.code
    except (message.MessageError, UnitError) as e:
        print(f"pit {args.command}: {e}", file=sys.stderr)
        return EXIT["usage"]
    except PitError as e:
        print(f"pit {args.command}: {e}", file=sys.stderr)
        return EXIT["no-pit"]
    except ArchiveError as e:
        print(f"pit {args.command}: archive: {e}", file=sys.stderr)
        return EXIT["failure"]
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except RuntimeError as e:
        keyring = sys.modules.get("pit.keyring")     # imported by the commands that use gpg
        if keyring is None or not isinstance(e, keyring.KeyringError):
            raise
        print(f"pit {args.command}: key problem: {e}", file=sys.stderr)
        return EXIT["key"]


if __name__ == "__main__":
    sys.exit(main())
