"""pit key new|export: the trader's signing key."""

from __future__ import annotations

import sys

from pit.commands.common import gnupghome


def arguments(cmd) -> None:
    sp = cmd("key", None, "make and export your signing key")
    ks = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = cmd("new", run_new, "make a signing key; prints its fingerprint",
            ["pit key new alice alice@example.org --gnupghome ~/.pit-keys"], ks)
    c.add_argument("name"); c.add_argument("email")
    c.add_argument("--algo", choices=["ed25519", "rsa3072"], default="ed25519")
    c.add_argument("--gnupghome", metavar="DIR")
    c = cmd("export", run_export, "print a public key (to give the operator)",
            ["pit key export $FPR > alice.asc"], ks)
    c.add_argument("fpr"); c.add_argument("--gnupghome", metavar="DIR")


def run_new(args) -> int:
    from pit.keyring import Keyring
    home = gnupghome(args.gnupghome)
    print(Keyring(home).generate(args.name, args.email, algo=args.algo))
    return 0


def run_export(args) -> int:
    from pit.keyring import Keyring
    sys.stdout.write(Keyring(gnupghome(args.gnupghome)).export(args.fpr))
    return 0
