"""pit member add|import|remove: the pit's members and the accounts they own."""

from __future__ import annotations

import sys
from pathlib import Path

from pit import ops
from pit.commands.common import EXIT, CliError, decision, find_pit, operator


def arguments(cmd) -> None:
    sp = cmd("member", None, "add or remove members")
    cs = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("add", run_add, "make a key a member owning accounts",
            ["pit key export $FPR > alice.asc && pit member add alice.asc --accounts alice"], cs)
    c.add_argument("keyfile"); c.add_argument("--accounts", required=True)
    c = cmd("import", run_import, "make every key of a keyring file a member (moving a membership in)",
            ["gpg --export -a > members.asc && pit member import members.asc --accounts-file owners"], cs)
    c.add_argument("keyfile"); c.add_argument("--accounts-file", required=True,
                                              help="lines FINGERPRINT ACCOUNT[,ACCOUNT...]")
    c.add_argument("--batch", type=int, default=1000, help="member records a notary batch")
    c = cmd("remove", run_remove, "remove a member's key", ["pit member remove $FPR"], cs)
    c.add_argument("fpr")


def run_add(args) -> int:
    pit = find_pit(args.pit)
    try:
        text = Path(args.keyfile).read_text()
    except OSError as e:
        raise CliError(f"cannot read key file {args.keyfile}: {e.strerror}", EXIT["key"]) from None
    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()]
    fpr, d = ops.add_member(pit, text, accounts)
    return decision(d, f"member {fpr} accounts {', '.join(accounts)}")


def run_import(args) -> int:
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
    # what is not a usable certificate comes back as a KeyringError in its
    # place: refused with its reason, the rest of the file goes on
    certs = ops.read_certificates(data)
    members = []
    for armored in certs:
        try:
            fpr = certificate_fingerprint(armored) if isinstance(armored, str) else ""
        except KeyringError:
            fpr = ""
        members.append((armored, owns.get(fpr, [])))
    results = ops.add_members(pit, members, batch=args.batch)
    added = sum(1 for _, d in results if d.accepted)
    for n, (fpr, d) in enumerate(results, 1):
        if not d.accepted:
            reason = " ".join(str(d.reason).split())            # one line
            print(f"refused: {fpr or f'certificate {n} of {args.keyfile}'}: {reason}",
                  file=sys.stderr)
    print(f"{added} members added, {len(results) - added} refused")
    return 0 if added == len(results) else EXIT["refused"]


def run_remove(args) -> int:
    return operator(args, "Member", f"remove {args.fpr}")
