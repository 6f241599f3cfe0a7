"""Signed order emails in bulk, for the benchmarks and the demo.

    pit = fresh_pit(Path("bench/out/pits/x"), algo="ed25519")
    raws = signed_orders(pit, 10_000, "ed25519")      # list of RFC 5322 messages

``signed_orders`` makes ``traders`` members (trader00, trader01, ...) with
real GnuPG keys of the given kind, each in its own GnuPG home under
``bench/out/keys/`` (generated once, reused afterwards), adds them to the pit
with ``pit.ops.add_member``, funds them (operator deposits) and returns *n*
signed emails: first each trader moves funds into its ACME trading account,
then orders from the seeded stream of ``bench.streams`` (limit, IOC, market,
stop, cancel, modify), one in fifty as PGP/MIME, the rest clearsigned inline.
Messages are signed in process by ``pit.signer`` (gpg would take one process
each).  The same arguments give the same requests; the messages are cached
under ``bench/out/`` keyed by (pit and its notary key, n, algo, seed, traders,
the traders' key fingerprints), so reruns read them back instead of signing again.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from bench.streams import make_stream
from pit import mbox, ops, signed, testkeys
from pit.book import (BUY, CANCEL, IOC, LIMIT, MARKET, MODIFY, NEW, STOP_LIMIT, STOP_LOSS,
                      TAKE_PROFIT)
from pit.keyring import Keyring
from pit.pitdir import Pit
from pit.signer import Signer
from pit.units import Currency, Instrument

__all__ = ["OUT", "fresh_pit", "signed_orders", "trader_keys", "order_texts"]

OUT = Path(__file__).resolve().parent / "out"
TICKER = "ACME"
SETUP = [("Currency", "USD 0.01"), ("Instrument", f"{TICKER} USD tick 0.01 lot 1")]
FUNDS = ("10000000.00 USD", f"1000000 {TICKER}")     # deposited to each trader
TRADING = ("5000000.00 USD", f"500000 {TICKER}")     # moved to trader:ACME by the trader
_ACME = Instrument(TICKER, Currency("USD", "0.01"), tick="0.01", lot="1")
# A fixed base for the Date headers: same arguments, same requests and headers.
_EPOCH = 1_767_225_600          # 2026-01-01T00:00:00Z


def fresh_pit(root: str | Path, name: str = "bench", algo: str = "ed25519", **settings) -> Pit:
    """A new pit at *root* (removed first if it is a pit) with USD and ACME
    defined; no rate limit unless *settings* say otherwise.  O(gpg keygen)."""
    import shutil
    root = Path(root)
    if (root / "pit.conf").exists():
        shutil.rmtree(root)
    settings.setdefault("rate_limit", "0")
    pit = ops.init(root, name, algo=algo, **settings)
    for key, value in SETUP:
        d = ops.operator_request(pit, key, value)
        if not d.accepted:
            raise RuntimeError(f"setting up {root}: {key} {value} refused: {d.reason}")
    return pit


def trader_keys(algo: str, traders: int) -> dict[str, tuple[Keyring, str]]:
    """``{name: (keyring, fpr)}`` of the bench traders with *algo* keys, one
    GnuPG home each under ``bench/out/keys/ALGO/NAME``, generated on first use
    (rsa3072 takes seconds a key) and reused afterwards."""
    out = {}
    for i in range(traders):
        name = f"trader{i:02d}"
        home = OUT / "keys" / algo / name
        if not (home / "pit-testkeys.json").exists():
            testkeys.make_keys(home, [(name, algo)])
            Keyring(home).stop_agent()
        fpr = testkeys._meta(home)[name]["fpr"]
        out[name] = (Keyring(home), fpr)
    return out


def _ensure_members(pit: Pit, keys: dict[str, tuple[Keyring, str]]) -> None:
    """Make each trader a member and fund it, unless the pit already has it."""
    with ops.notary(pit) as notary:
        members = {fpr for _, fpr in keys.values() if fpr in notary.members}
    for name, (ring, fpr) in keys.items():
        if fpr in members:
            continue
        _, d = ops.add_member(pit, ring.export(fpr), [name])
        if not d.accepted:
            raise RuntimeError(f"adding {name} to {pit.root}: {d.reason}")
        for amount in FUNDS:
            d = ops.operator_request(pit, "Deposit", f"{amount} to {name}")
            if not d.accepted:
                raise RuntimeError(f"funding {name}: {d.reason}")


def order_texts(pit_name: str, n: int, traders: int, seed: int = 1) -> list[tuple[str, str]]:
    """``(account, signed request text)`` for *n* messages to the pit whose
    ``Pit:`` line is *pit_name* (:func:`pit.ops.pit_line`): the traders' funding
    transfers first, then the seeded order stream.  Deterministic.  O(n)."""
    names = [f"trader{i:02d}" for i in range(traders)]
    out: list[tuple[str, str]] = []
    for name in names:
        for i, amount in enumerate(TRADING):
            out.append((name, ops.request_text(pit_name, name, f"fund-{i}", "Transfer",
                                               f"{amount} to {name}:{TICKER}")))
    out = out[:n]
    price, qty = _ACME.price_text, _ACME.qty_text
    # streams.OWNERS are trader00..39: fold them onto our traders
    owner = {f"trader{i:02d}": names[i % traders] for i in range(40)}
    for m in make_stream(max(n - len(out), 0), seed, TICKER):
        if m[0] == NEW:
            _, seq, _, own, _, side, kind, lots, ticks, stop, _cap = m
            words = f"{'buy' if side == BUY else 'sell'} {qty(lots)} {TICKER}"
            if kind == LIMIT:
                value = f"{words} at {price(ticks)}"
            elif kind == IOC:
                value = f"{words} ioc {price(ticks)}"
            elif kind == MARKET:
                value = f"{words} market"
            elif kind == STOP_LOSS:
                value = f"{words} stop {price(stop)}"
            elif kind == STOP_LIMIT:
                value = f"{words} stop {price(stop)} limit {price(ticks)}"
            elif kind == TAKE_PROFIT:
                value = f"{words} take-profit {price(stop)}"
            else:
                raise ValueError(f"stream order kind {kind!r} has no text here")
        elif m[0] == CANCEL:
            _, seq, oid, own = m
            value = f"cancel o{oid}"
        elif m[0] == MODIFY:
            _, seq, oid, own, lots, ticks = m
            value = f"modify o{oid} qty {qty(lots)} price {price(ticks)}"
        else:
            raise ValueError(f"stream message {m[0]!r} has no text here")
        account = owner[own]
        out.append((account, ops.request_text(pit_name, account, f"o{seq}", "Order", value)))
    return out


def _cache_path(pit: Pit, n: int, algo: str, seed: int, fprs: list[str]) -> Path:
    keys = hashlib.sha256(" ".join([pit.notary] + fprs).encode()).hexdigest()[:12]
    return OUT / "orders" / f"{pit.name}-{algo}-n{n}-s{seed}-t{len(fprs)}-{keys}.mbox"


def signed_orders(pit: Pit, n: int, algo: str = "ed25519", traders: int = 10,
                  seed: int = 1, cache: bool = True) -> list[bytes]:
    """*n* signed order emails for *pit* from *traders* members with *algo*
    keys (made members and funded here if they are not yet).  Signed in
    process; cached on disk (see the module docstring).  O(n) signatures
    the first time, O(bytes) afterwards."""
    keys = trader_keys(algo, traders)
    _ensure_members(pit, keys)
    path = _cache_path(pit, n, algo, seed, [fpr for _, fpr in keys.values()])
    # The notary refuses signatures older than signature_max_age (three
    # days by default): a cache signed more than a day ago is made again.
    if cache and path.exists() and path.stat().st_mtime > time.time() - 86400:
        raws = list(mbox.iter_file(path))
        if len(raws) == n:
            return raws
    signers = {name: Signer.from_keyring(ring, fpr) for name, (ring, fpr) in keys.items()}
    for ring, _ in keys.values():
        ring.stop_agent()
    created = int(time.time())          # signatures are made now, after the keys
    raws = []
    for i, (account, text) in enumerate(order_texts(ops.pit_line(pit), n, traders, seed)):
        sender = f"{account}@traders.example"
        headers = [("From", sender), ("To", pit.address),
                   ("Subject", text.split("\n")[3][:120]),
                   ("Date", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(_EPOCH + i))),
                   ("Message-ID", f"<{seed}.{i}.{algo}@traders.example>")]
        compose = signed.compose_pgp_mime if i % 50 == 49 else signed.compose_clearsigned
        signer = signers[account]
        raws.append(compose(headers, text, signer, signer.fingerprint, at=created))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for raw in raws:
                f.write(mbox.format_message(raw, "bench@traders.example", _EPOCH))
        tmp.replace(path)
    return raws
