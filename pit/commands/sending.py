"""What the trader's commands (pit order, pit transfer) share: their options, and signing and sending a request."""

from __future__ import annotations

import sys
import time

from pit import message, ops
from pit.commands.common import EXIT, CliError, daemon_pid, decision, gnupghome, signing_key
from pit.pitdir import Pit


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


def new_ref() -> str:
    """A ref unique per account without asking anyone: the time in microseconds."""
    return f"r{time.time_ns() // 1000}"


def send(args, pit: Pit, key: str, value: str) -> int:
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
        return decision(d, f"ref {ref}")
    else:
        ops.send_local(pit, raw)
    if args.send != "local":
        print(f"ref {ref} sent ({args.send})")
    elif daemon_pid(pit):
        print(f"ref {ref} sent (local); the daemon (pid {daemon_pid(pit)}) notarizes it")
    else:
        print(f"ref {ref} sent (local); run pit notarize, or pit start")
    return 0
