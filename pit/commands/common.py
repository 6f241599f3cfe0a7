"""What the ``pit`` commands share: the error that becomes one line and an
exit status, finding the pit and the trader's key, checking the names a
command is given against the pit, progress bars, and output helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from pit import mbox, ops, query
from pit.pitdir import Pit, PitError

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


BARS: list = []


def progress(what: str, unit: str = "record") -> "callable":
    """A progress callback ``show(done, total=None)`` drawing a bar with the
    rate on stderr when it is a terminal, nothing otherwise (pit.progress);
    :func:`end_progress` takes the bar away."""
    from pit.progress import Quiet, bar
    b = bar(what, unit=unit)
    if type(b) is Quiet:
        return lambda *a, **k: None
    BARS.append(b)
    return b.goto


def end_progress() -> None:
    while BARS:
        BARS.pop().close()


# -- the names a command is given ----------------------------------------------

def unknown(kind: str, name: str, known: Iterable[str], verb: str = "has") -> CliError:
    """The one error for a name the pit does not know, wherever it is given:
    ``unknown ticker NOPE (this pit trades ACME, BTC)``, exit 2."""
    names = sorted(known)
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return CliError(f"unknown {kind} {name} (this pit {verb} {shown or 'none yet'})",
                    EXIT["usage"])


def known_ticker(pit: Pit, ticker: str):
    t = ticker.upper()
    reg = query.registry(pit)
    if t not in reg.instruments:
        raise unknown("ticker", ticker, reg.instruments, "trades")
    return t, reg


def known_account(pit: Pit, account: str) -> str:
    """*account* when the pit knows it: a member's account, its trading
    account of a ticker (``alice:ACME``), or a fee account (``fees:ACME``)."""
    base, _, ticker = account.partition(":")
    owned = query.member_accounts(pit)
    if (base in owned or base == "fees") and (not ticker or ticker in query.registry(pit).instruments):
        return account
    raise unknown("account", account, owned)


def known_asset(pit: Pit, asset: str) -> str:
    """*asset* (upper case) when it is a currency or a ticker of the pit."""
    a = asset.upper()
    reg = query.registry(pit)
    if a not in reg.currencies and a not in reg.instruments:
        raise unknown("asset", asset, set(reg.currencies) | set(reg.instruments))
    return a


def known_filter(kind: str) -> str:
    if kind not in ops.FILTERS:
        raise unknown("filter", kind, ops.FILTERS)
    return kind


def known_filter_names(pit: Pit, kind: str, words: list[str]) -> None:
    """A filter's kind, and a specialist's tickers, when the pit knows them."""
    known_filter(kind)
    if kind == "specialist":
        from pit.tickerset import TickerSet, TickerSetError
        names = [w for w in words if not w.startswith("-")]
        try:
            TickerSet(names)
        except TickerSetError as e:
            raise CliError(f"specialist {' '.join(names)}: {e}", EXIT["usage"]) from None
        for t in names:
            # (a range may hold tickers defined later; the archive is read
            # only up to a ticker's definition, whole only to name the others)
            if "-" not in t and t.upper() not in query.registry(pit, until=t.upper()).instruments:
                known_ticker(pit, t)


def fingerprint(text: str) -> str:
    fpr = text.replace(" ", "").upper()
    if len(fpr) != 40 or any(c not in "0123456789ABCDEF" for c in fpr):
        raise CliError(f"--notary {text!r}: give the notary key's full fingerprint "
                       "(40 hex digits)", EXIT["usage"])
    return fpr


def hostport(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"{what} {text!r}: give HOST:PORT", EXIT["usage"])
    return host, int(port)


AT_HELP = ("as of record SEQ: what records 1 to SEQ caused, whenever the filters "
           "reported it (pit(1), --at)")


def at_record(pit: Pit, at: int | None) -> int | None:
    """``--at SEQ`` checked against the archive: a record it holds (as
    ``pit show`` and ``pit verify`` check theirs), not a silent 'now'
    past its end nor an empty pit before record 1."""
    if at is not None:
        from pit.archive import Archive
        last = Archive(pit.root).last_seq()
        if not 1 <= at <= last:
            raise CliError(f"no record {at} (the archive ends at {last})", EXIT["usage"])
    return at


def one_or_more(text: str) -> int:
    """An argparse type: a whole number, 1 or more (--depth)."""
    import argparse
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: 1 or more")
    return n


FILTER_HELP = f"one of {', '.join(sorted(ops.FILTERS))}"


# -- output helpers ------------------------------------------------------------

def plural(n: int, word: str) -> str:
    """'1 order', '2 orders'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def emit(args, rows: Iterable[dict], text) -> None:
    """Rows as JSON lines with --json, else each through *text*."""
    for row in rows:
        if args.json:
            import json         # only for --json
            print(json.dumps(row, sort_keys=True))
        else:
            print(text(row))


def print_json(obj) -> None:
    import json         # only for --json
    print(json.dumps(obj, sort_keys=True))


def write_mbox(out, seq: int, msg: bytes) -> None:
    mbox.write_message(out, msg, "notary", mbox.stamp(msg).get("x-pit-time", ""))


RECORD_FIELDS = ("seq", "time", "kind", "account", "ref", "ticker", "request", "signer")


def record_row(seq: int, st: dict) -> dict:
    """A record as a row: the fields of RECORD_FIELDS from its stamp (what
    export's CSV columns, show --json, export --json and search --json give)."""
    row = {f: st.get(f"x-pit-{f}", "") for f in RECORD_FIELDS}
    row["seq"] = seq
    return row


def decision(d, what: str) -> int:
    if d.accepted:
        print(f"{what}: record {d.seq}")
        return 0
    raise CliError(f"refused by the notary: {d.reason}", EXIT["refused"])


def operator(args, key: str, value: str, extra: str = "") -> int:
    pit = find_pit(args.pit)
    return decision(ops.operator_request(pit, key, value, extra), f"{key.lower()} {value}")


# -- the embedded daemon's pid file ---------------------------------------------

def pid_file(pit: Pit) -> Path:
    return pit.root / "pit.pid"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def is_daemon(pid: int, pit: Pit) -> bool:
    """Whether *pid* is the pit's embedded daemon as ``pit start`` runs it:
    not a process that has ended (or a zombie), nor another program that
    got its pid since (pit.pid left from before a reboot).  Where there is
    no /proc to tell, any live process counts."""
    if not alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not os.path.isdir("/proc/self"):
        return True
    try:
        for _ in range(50):
            if proc.joinpath("stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return False                 # ended, not yet reaped
            argv = proc.joinpath("cmdline").read_bytes().split(b"\0")
            if argv != [b""]:
                break
            time.sleep(0.02)                 # empty a moment, while pit start's exec runs
    except OSError:
        return False
    return b"daemon" in argv and os.fsencode(str(pit.root.resolve())) in argv


def daemon_pid(pit: Pit) -> int | None:
    """The pid of the pit's running embedded daemon, or None."""
    try:
        pid = int(pid_file(pit).read_text())
    except (OSError, ValueError):
        return None
    return pid if is_daemon(pid, pit) else None
