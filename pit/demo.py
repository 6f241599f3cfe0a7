"""python -m pit.demo DIR [--orders N] : a whole local pit session, narrated.

Creates a pit in DIR with three instruments in two currencies, five traders
with real GnuPG keys, funds them, sends a burst of signed orders of every
type plus a handful of bad messages, notarizes, runs the filters, prints
the book, the trades, the balances and the rejections, and ends with the
audit.  The pit stays in DIR for you to explore.

The orders come from a seeded generator, so two runs send the same orders;
the archive differs only by the notary's times and the signatures.
The traders' keys are real GnuPG keys in their own homes; the burst is
signed in process (pit.signer: each trader's secret key exported from gpg
once) because gpg costs a process a message.  The signatures are ordinary
OpenPGP signatures: stock gpg verifies every one (`pit verify SEQ`).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from moderator.notary import deliver
from pit import ops, query
from pit.commands.common import plural
from pit.commands.run import run_all
from pit.keyring import Keyring
from pit.progress import bar

MARKER = ".pit-demo"
TRADERS = ("alice", "bob", "carol", "dave", "erin")
CURRENCIES = (("USD", "0.01"), ("EUR", "0.01"))
# ticker, currency, tick, lot, mid price, lots per order (min, max)
INSTRUMENTS = (("ACME", "USD", "0.01", "1", 1250, (1, 100)),
               ("GLOBEX", "USD", "0.05", "10", 800, (1, 20)),
               ("BTC", "EUR", "0.5", "0.1", 60000, (1, 5)))
FUNDS = {"USD": "2000000.00", "EUR": "2000000.00", "ACME": "20000", "GLOBEX": "50000", "BTC": "100"}
TRADING = {"ACME": ("900000.00 USD", "20000 ACME"), "GLOBEX": ("900000.00 USD", "50000 GLOBEX"),
           "BTC": ("1800000.00 EUR", "100 BTC")}


def say(text: str = "") -> None:
    print(text, flush=True)


def head(text: str) -> None:
    say()
    say(f"== {text}")


class Demo:
    def __init__(self, root: Path, orders: int, seed: int = 7):
        self.root = root
        self.n_orders = orders
        self.rng = random.Random(seed)          # seeded: the same burst every run
        self.traders: dict[str, tuple[Keyring, str]] = {}
        self.signers: dict = {}                   # name -> pit.signer.Signer
        self.t0 = time.monotonic()

    # -- setting up ---------------------------------------------------------------
    def settings(self) -> dict:
        """pit.conf settings of the demo's pit: the burst is a minute's mail
        of a few members, so the rate limit (per member a minute) is raised
        to fit any --orders N."""
        return {"rate_limit": str(max(1000, self.n_orders + 100))}

    def fresh_dir(self) -> None:
        if self.root.exists():
            if (self.root / MARKER).exists():
                shutil.rmtree(self.root)
            elif any(self.root.iterdir()):
                raise SystemExit(f"pit.demo: {self.root} exists and is not a previous demo pit "
                                 f"(no {MARKER} file); give another directory")

    def setup(self) -> None:
        self.fresh_dir()
        head(f"a pit is a directory: pit init {self.root} --name demo")
        self.pit = ops.init(self.root, "demo", **self.settings())
        (self.root / MARKER).write_text("made by python -m pit.demo\n")
        say(f"notary key {self.pit.notary}, operator key {self.pit.operator}")
        head("the operator defines currencies, fees and instruments (signed, notarized records)")
        requests = [("Currency", f"{c} {m}") for c, m in CURRENCIES]
        requests.append(("Fees", "maker 0.1% taker 0.2%"))
        requests += [("Instrument", f"{t} {c} tick {tick} lot {lot}")
                     for t, c, tick, lot, _, _ in INSTRUMENTS]
        self.operator_batch(requests)

        head("five traders make GnuPG keys (in traders/NAME) and become members")
        homes = {n: self.root / "traders" / n for n in TRADERS + ("mallory",)}
        with ThreadPoolExecutor(6) as pool:
            fprs = dict(zip(homes, pool.map(
                lambda n: Keyring(homes[n]).generate(n, f"{n}@example.org"), homes)))
        for name in TRADERS + ("mallory",):
            self.traders[name] = (Keyring(homes[name]), fprs[name])
        for name in TRADERS:
            ring, fpr = self.traders[name]
            _, d = ops.add_member(self.pit, ring.export(fpr), [name])
            say(f"  {name:<6} {fpr}  record {d.seq}")
        say("  mallory also has a key, but is not a member")

        head("the operator deposits funds; the traders move them into trading accounts")
        self.operator_batch([("Deposit", f"{amount} {asset} to {n}")
                             for n in TRADERS for asset, amount in FUNDS.items()])
        moves = []
        for n in TRADERS:
            for ticker, amounts in TRADING.items():
                moves += [(n, f"t-{ticker}-{i}", "Transfer", f"{a} to {n}:{ticker}")
                          for i, a in enumerate(amounts)]
        self.send_all(self.sign_all(moves))
        self.notarize()
        run_all(self.pit, say=lambda l: say("  " + l))

    def operator_batch(self, requests: list[tuple[str, str]]) -> None:
        """Sign operator requests in parallel and notarize them as one batch."""
        ring, fpr = Keyring(ops.operator_home(self.pit)), self.pit.operator
        base = ops.notary(self.pit).seq
        texts = [ops.request_text(self.pit, "operator", f"op-{base}-{i}", k, v)
                 for i, (k, v) in enumerate(requests)]
        sender = f"{self.pit.name}-operator@{self.pit.domain}"
        with ThreadPoolExecutor(8) as pool:
            raws = list(pool.map(lambda t: ops.sign_request(self.pit, t, ring, fpr, sender), texts))
        for (k, v), d in zip(requests, ops.notary(self.pit).notarize(raws)):
            say(f"  {k + ':':<12} {v:<36} " + (f"record {d.seq}" if d.accepted else f"REFUSED {d.reason}"))

    # -- signing and sending ------------------------------------------------------------
    def sign(self, item, mime: bool = False) -> bytes:
        name, ref, key, value = item
        ring, fpr = self.traders[name]
        signer = self.signers.get(name)
        if signer is None:
            from pit.signer import Signer
            signer = self.signers[name] = Signer.from_keyring(ring, fpr)
        text = ops.request_text(self.pit, name, ref, key, value)
        return ops.sign_request(self.pit, text, signer, fpr, f"{name}@example.org", mime=mime)

    def sign_all(self, items: list) -> list[bytes]:
        """Sign in process, in order (a progress bar on a terminal)."""
        out = []
        with bar("signing", total=len(items), unit="order") as b:
            for it in items:
                out.append(self.sign(it[:4], mime=len(it) > 4))
                b.update()
        return out

    def send_all(self, raws: list[bytes]) -> None:
        """Deliver to the incoming maildir in order (names sort as sent)."""
        for raw in raws:
            self._sent = getattr(self, "_sent", 0) + 1
            deliver(self.pit, raw, name=f"{self._sent:09d}.demo")

    def notarize(self, more: list[bytes] = (), burst: list[bytes] = (),
                 mail: list[bytes] = ()) -> list:
        """Deliver *burst* to the incoming maildir and notarize it, a chunk
        at a time (a progress bar on a terminal); then deliver *mail* and
        notarize the maildir; then *more* (sent as they are, without the
        maildir: the same bytes twice).  One line for all."""
        notary = ops.notary(self.pit)
        decisions = []
        with bar("notarizing", total=len(burst), unit="msg") as b:
            for i in range(0, len(burst), 500):
                chunk = burst[i:i + 500]
                self.send_all(chunk)
                decisions += notary.run_maildir()
                b.update(len(chunk))
        self.send_all(mail)
        decisions += notary.run_maildir()
        if more:
            decisions += notary.notarize(list(more))
        ok = [d for d in decisions if d.accepted]
        say(f"  notary: {len(ok)} notarized"
            + (f" (records {ok[0].seq}-{ok[-1].seq})" if ok else "")
            + f", {len(decisions) - len(ok)} refused")
        return decisions

    # -- the burst --------------------------------------------------------------------
    def burst(self) -> list[tuple]:
        """A seeded mix of every order type.  Cancels and modifies name earlier
        resting limit orders of the same trader."""
        rng = self.rng
        items: list[tuple] = []
        resting: dict[str, list[tuple[str, str]]] = {n: [] for n in TRADERS}
        counter = 0
        weights = [("limit", 40), ("market", 6), ("ioc", 8), ("fok", 5), ("stop-loss", 5),
                   ("stop-limit", 5), ("take-profit", 5), ("cancel", 8), ("modify", 8)]
        kinds = [k for k, w in weights for _ in range(w)]
        while len(items) < self.n_orders:
            name = rng.choice(TRADERS)
            ticker, _, tick, lot, mid, (qmin, qmax) = rng.choice(INSTRUMENTS)
            t, l = _dec(tick), _dec(lot)
            kind = rng.choice(kinds)
            side = rng.choice(("buy", "sell"))
            qty = _fmt(rng.randint(qmin, qmax) * l)
            off = rng.randint(1, 12)
            near = _fmt((mid + (-off if side == "buy" else off) // 2 * 1) * t)
            cross = _fmt((mid + (off if side == "buy" else -off)) * t)
            counter += 1
            ref = f"o{counter}"
            if kind in ("cancel", "modify"):
                if not resting[name]:
                    continue
                target, tk = resting[name].pop(rng.randrange(len(resting[name])))
                if kind == "cancel":
                    text = f"cancel {target}"
                else:
                    inst = next(i for i in INSTRUMENTS if i[0] == tk)
                    newq = _fmt(rng.randint(inst[5][0], inst[5][1]) * _dec(inst[3]))
                    newp = _fmt((inst[4] + rng.randint(-10, 10)) * _dec(inst[2]))
                    text = f"modify {target} qty {newq} price {newp}"
            elif kind == "limit":
                price = cross if rng.random() < 0.35 else near
                text = f"{side} {qty} {ticker} at {price}"
                resting[name].append((ref, ticker))
            elif kind == "market":
                text = f"{side} {qty} {ticker} market"
            elif kind in ("ioc", "fok"):
                text = f"{side} {qty} {ticker} {kind} {cross}"
            elif kind == "stop-loss":
                trig = _fmt((mid + (off if side == "buy" else -off)) * t)
                text = f"{side} {qty} {ticker} stop {trig}"
            elif kind == "stop-limit":
                trig = _fmt((mid + (off if side == "buy" else -off)) * t)
                lim = _fmt((mid + (off + 3 if side == "buy" else -off - 3)) * t)
                text = f"{side} {qty} {ticker} stop {trig} limit {lim}"
            else:
                trig = _fmt((mid + (-off if side == "buy" else off)) * t)
                text = f"{side} {qty} {ticker} take-profit {trig}"
            items.append((name, ref, "Order", text) + (("mime",) if counter % 50 == 0 else ()))
        return items

    def bad_ones(self) -> tuple[list[bytes], list[tuple[str, str]]]:
        """A handful of bad messages, each with what it is meant to show."""
        pit = self.pit
        good = self.sign(("alice", "bad-1", "Order", "buy 1 ACME at 12.00"))
        unsigned = (f"From: carol@example.org\nTo: {pit.address}\nSubject: order\n\n"
                    + ops.request_text(pit, "carol", "bad-2", "Order", "buy 5 ACME at 12.00")
                    ).encode()
        forged = self.sign(("bob", "bad-3", "Order", "sell 1 ACME at 99.00")).replace(
            b"sell 1 ACME", b"sell 9 ACME")
        # a relay re-sends alice's signed order with a header of its own:
        # new bytes, same signed ref -> the ref check catches it
        replayed = b"Received: from relay.example.org\n" + good
        malformed = self.sign(("dave", "bad-4", "Order", "buy ten ACME at 12.00"))
        overspend = self.sign(("erin", "bad-5", "Order", "buy 900000 ACME at 99.00"))
        stranger = self.sign(("mallory", "bad-6", "Order", "buy 1 ACME at 12.00"))
        wrong_account = self.sign(("bob", "bad-7", "Order", "buy 1 ACME at 12.00")).replace(
            b"Account: bob", b"Account: alice")
        raws = [good, unsigned, forged, good, replayed, malformed, overspend, stranger]
        what = [("good order", "accepted"), ("unsigned", "no signature"),
                ("forged", "changed after signing"), ("resent", "the same bytes again"),
                ("replayed", "same signed order, new headers"),
                ("malformed", "'buy ten ACME'"), ("overspending", "more than erin holds"),
                ("non-member", "mallory's key")]
        del wrong_account                       # same verdict as forged; kept short
        return raws, what

    # -- the whole session ------------------------------------------------------------
    def run(self) -> int:
        from pit.agents import stopped_after
        with stopped_after([self.root]):       # the pit's and the traders' gpg-agents
            return self._run()

    def _run(self) -> int:
        self.setup()
        head(f"a burst of {self.n_orders} signed orders of every type")
        t = time.monotonic()
        items = self.burst()
        raws = self.sign_all(items)
        say(f"  signed {len(raws)} orders in {time.monotonic() - t:.1f} s")
        bad, what = self.bad_ones()
        head("and a handful of bad messages")
        decisions = self.notarize(bad[3:], burst=raws, mail=bad[:3])
        head("the notary on the bad ones (the rest are in rejects/rejects.mbox)")
        for (label, why), d in zip(what, decisions[-len(bad):]):
            verdict = f"record {d.seq}" if d.accepted else f"refused: {d.reason}"
            say(f"  {label:<13} ({why}): {verdict}")

        head("the filters run: transfers, then one specialist per ticker")
        t = time.monotonic()
        run_all(self.pit, say=lambda l: say("  " + l))
        say(f"  filters took {time.monotonic() - t:.1f} s")
        self.report()
        self.picture()
        return self.audit()

    def report(self) -> None:
        pit = self.pit
        for ticker, *_ in INSTRUMENTS:
            head(f"the book: pit book {ticker}")
            b = query.book_levels(query.specialist_state(pit, ticker), ticker, 3)
            for side in ("asks", "bids"):
                levels = b[side] if side == "bids" else list(reversed(b[side]))
                for lv in levels:
                    say(f"  {side[:-1]:<4} {lv['price']:>10} {b['currency']}  {lv['qty']:>8} "
                        f"({plural(lv['orders'], 'order')})")
            say(f"  last {b['last']}")
        tr = query.trades(pit)
        head(f"the trades: {len(tr)} (pit trades); the last few")
        for x in tr[-5:]:
            say("  " + query.trade_text(x))
        head("the balances (pit positions)")
        rows = query.positions(pit)
        for n in TRADERS[:2]:
            for r in rows:
                if r["account"] == n or r["account"].startswith(n + ":"):
                    say(f"  {r['account']:<14} {r['amount']:>16} {r['asset']}")
        fees = [r for r in rows if r["account"].startswith("fees:")]
        for r in fees:
            say(f"  {r['account']:<14} {r['amount']:>16} {r['asset']}")
        say(f"  ... and {len({r['account'] for r in rows})} accounts in all")
        head("rejections (pit rejects)")
        rej = query.rejections(pit)
        say(f"  by the notary: {len(rej)} in rejects/rejects.mbox")
        for r in rej:
            say(f"    {r['from']:<22} {r['reason']}")
        fr = query.filter_rejections(pit)
        say(f"  by the specialists: {len(fr)} 'rejected' report lines; one of each kind:")
        kinds: dict[str, str] = {}
        for r in fr:
            reason = r["line"].split(" ", 4)[-1]
            kinds.setdefault(re.sub(r"[0-9.]+|\b(" + "|".join(TRADERS) + r")\b", "#", reason), r["line"])
        for line in list(kinds.values())[:6]:
            say(f"    {line}")
        self.rejected = rej
        self.filter_rejected = fr

    def picture(self) -> None:
        from pit import chart
        head("a picture of ACME: pit chart ACME")
        drawn = chart.draw(self.pit, "ACME", self.root / "charts" / "ACME.png")
        say(f"  {_near(Path(drawn['path']))}: price and volume of {drawn['trades']} trades, "
            f"the depth of the book now")

    def audit(self) -> int:
        head("the audit (pit audit)")
        try:
            from pit.audit import audit
        except ImportError:
            say("  pit.audit is not in this installation yet: skipped")
            ok = True
        else:
            result = audit(self.root)
            say("  " + result.summary().replace("\n", "\n  "))
            ok = result.ok
        wall = time.monotonic() - self.t0
        head(f"done in {wall:.1f} s; the pit is in {self.root}.  Try:")
        for line in try_lines(self.root):
            say(f"  {line}")
        return 0 if ok else 1


def try_lines(root: Path) -> list[str]:
    """What the demo suggests next, each line as it is typed in a new
    shell: first what puts `pit` on the PATH when it is not there."""
    lines = []
    bindir = Path(sys.executable).parent
    found = shutil.which("pit")
    if (bindir / "pit").exists() and (found is None or Path(found).parent != bindir):
        activate = bindir / "activate"
        if activate.exists():
            lines.append(f". {_near(activate)}")
        else:
            lines.append(f"export PATH={_near(bindir)}:$PATH")
    lines.append(f"export PIT_DIR={_near(root)}")
    return lines + ["pit book ACME", "pit trades --ticker BTC | tail -3",
                    "pit orders --account alice", "pit verify 42",
                    f"grep -c '^X-Pit-Kind: order' {_near(root)}/archives/*.mbox",
                    f"xdg-open {_near(root)}/charts/ACME.png",
                    f"mutt -f {_near(root)}/archives/000001.mbox",
                    f"less {_near(root)}/rejects/rejects.mbox"]


def _near(path: Path) -> str:
    """*path* relative to the current directory when it is under it."""
    import os
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _dec(text: str):
    from fractions import Fraction
    return Fraction(text)


def _fmt(x) -> str:
    """Exact decimal text of a Fraction with a terminating expansion."""
    from fractions import Fraction
    x = Fraction(x)
    for d in range(0, 7):
        if (x * 10 ** d).denominator == 1:
            n = x * 10 ** d
            s = str(n.numerator).rjust(d + 1, "0")
            return s if d == 0 else f"{s[:-d]}.{s[-d:]}"
    raise ValueError(x)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pit.demo", description=__doc__.split("\n")[0])
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--orders", type=int, default=1200, help="orders in the burst (default 1200)")
    args = p.parse_args(argv)
    from pit.agents import exit_on_sigterm
    exit_on_sigterm()                    # its gpg-agents stopped when it is
    return Demo(Path(args.dir), args.orders).run()


if __name__ == "__main__":
    sys.exit(main())
