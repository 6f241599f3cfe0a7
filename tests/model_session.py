"""Random sessions against a real pit, checked against tests/pit_model.py.

A session is seeded: members with real keys sign requests of every kind,
good and bad, inline and PGP/MIME; the mail is delivered into the pit's
incoming maildir, then `pit notarize`, `pit run` (and now and then one
filter alone, or `pit replay specialist T | pit-specialist T`) at random
points.  After every run the user-facing commands (`--json`) are compared
with the model: open orders, every book, every trade, every balance, every
refusal and its reason, and the same at a random `--at N`.

    tests/model_session.py --seeds 1-100 --messages 1000 --batch 40   (make model-long)
    tests/model_session.py --seeds 7 --messages 300 --shrink        (a disagreement, shortest)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pit_model import Model  # noqa: E402

from moderator.notary import Notary  # noqa: E402
from pit import kinds, mbox, ops, signed, testkeys  # noqa: E402
from pit.archive import Archive  # noqa: E402
from pit.keyring import Keyring  # noqa: E402
from pit.signer import Signer  # noqa: E402

BIN = Path(sys.executable).parent
PIT = "demo"
TRADERS = ("alice", "bob", "carol")
KEYS = [("alice", "ed25519"), ("bob", "ed25519"), ("carol", "ed25519"), ("mallory", "ed25519")]
SETUP = [("Currency", "USD 0.01"), ("Currency", "EUR 0.01"), ("Fees", "maker 0.1% taker 0.2%"),
         ("Instrument", "ACME USD tick 0.01 lot 1"),
         ("Instrument", "BTC EUR tick 0.5 lot 0.1 maker 0.05% taker 0.1%"),
         ("Instrument", "ZINC USD tick 0.05 lot 10 maker 0% taker 0.3%")]
TICKERS = ("ACME", "BTC", "ZINC")
PRICES = {"ACME": ["9.90", "9.95", "10.00", "10.05", "10.10", "10.20"],
          "BTC": ["99.5", "100.0", "100.5", "101.0"],
          "ZINC": ["2.00", "2.05", "2.10", "2.15"]}
QTYS = {"ACME": ["1", "2", "5", "10", "40"], "BTC": ["0.1", "0.3", "1.0", "2.0"],
        "ZINC": ["10", "20", "50", "100"]}
CURRENCY = {"ACME": "USD", "BTC": "EUR", "ZINC": "USD"}
RATE_LIMIT = 10_000


class Disagreement(AssertionError):
    pass


def make_keyhome(base: Path) -> Path:
    home = base / "signers"
    testkeys.make_keys(home, KEYS)
    return home


class Session:
    def __init__(self, root: Path, keyhome: Path, seed: int, rate_limit: int | None = None):
        if rate_limit is None:          # every third seed: members reach the limit late in a session
            rate_limit = RATE_LIMIT if seed % 3 else 40 + seed % 50
        self.rng = random.Random(seed)
        self.seed = seed
        self.root = root
        self.pit = ops.init(root, PIT, rate_limit=str(rate_limit), rate_interval=str(10 ** 8))
        self.ring = Keyring(keyhome)
        meta = testkeys._meta(keyhome)
        self.fpr = {n: i["fpr"] for n, i in meta.items()}
        self.signers = {n: Signer.from_keyring(self.ring, f) for n, f in self.fpr.items()}
        op_ring, self.op_fpr = ops._operator(self.pit)
        self.signers["operator"] = Signer.from_keyring(op_ring, self.op_fpr)
        self.fpr["operator"] = self.op_fpr
        self.model = Model(PIT, self.op_fpr, rate_limit, rules=kinds.rules.LATEST)   # pit init's
        self.synced = 0                  # archive records the model has been told of
        self.rejects_seen = 0
        self.pending: list[tuple[str, str, dict, bytes]] = []   # (signer, flavour, request, raw)
        self.messages = 0
        self.refn = 0
        self.checks = 0
        self.sync()
        for name in TRADERS:
            self.send("operator", self._req("operator", "Member",
                                            f"add {self.fpr[name]} accounts {name}, {name}2",
                                            with_key=name))
        for key, value in SETUP:
            self.send("operator", self._req("operator", key, value))
        for name in TRADERS:
            for amount in ("20000.00 USD", "5000.00 EUR", "500 ACME", "20.0 BTC", "2000 ZINC"):
                self.send("operator", self._req("operator", "Deposit", f"{amount} to {name}"))
        self.notarize()
        self.pit_run()
        for name in TRADERS:
            for amount, t in (("5000.00 USD", "ACME"), ("200 ACME", "ACME"), ("2000.00 EUR", "BTC"),
                              ("10.0 BTC", "BTC"), ("3000.00 USD", "ZINC"), ("1000 ZINC", "ZINC")):
                self.send(name, self._req(name, "Transfer", f"{amount} to {name}:{t}"))
        self.notarize()
        self.pit_run()

    # -- composing ---------------------------------------------------------------
    def _ref(self) -> str:
        self.refn += 1
        return f"r{self.refn}"

    def _req(self, account, key, value, ref=None, pit=PIT, with_key=None) -> dict:
        return {"pit": pit, "account": account, "ref": ref or self._ref(), "key": key,
                "value": value, "with_key": with_key}

    def send(self, signer: str, req: dict, flavour: str = "good") -> None:
        # this pit's requests name its identity; another pit's name is written bare
        pit = self.pit if req["pit"] == self.pit.name else req["pit"]
        text = ops.request_text(pit, req["account"], req["ref"], req["key"], req["value"])
        if flavour == "syntax":
            text = text.replace(f"{req['key']}:", f"{req['key']}x:")
        if req.get("with_key"):
            text += self.ring.export(self.fpr[req["with_key"]])
        headers = [("From", f"{signer}@{testkeys.DOMAIN}"), ("To", self.pit.address),
                   ("Subject", f"request {req['ref']}"),
                   ("Message-ID", f"<{self.seed}.{self.messages}.{signer}@{testkeys.DOMAIN}>")]
        if flavour == "xpit":
            headers.append(("X-Pit-Seq", "1"))
        if flavour == "unsigned":
            raw = ("".join(f"{k}: {v}\n" for k, v in headers) + "\n" + text).encode()
        else:
            mime = flavour == "mime" or (flavour != "tampered" and self.rng.random() < 0.3)
            compose = signed.compose_pgp_mime if mime else signed.compose_clearsigned
            raw = compose(headers, text, self.signers[signer], self.fpr[signer])
            if flavour == "tampered":
                raw = raw.replace(f"Ref: {req['ref']}".encode(), f"Ref: {req['ref']}x".encode(), 1)
        ops.send_local(self.pit, raw)
        self.pending.append((signer, flavour, req, raw))
        self.messages += 1

    # -- the model's notary -----------------------------------------------------
    def predict(self, signer, flavour, req) -> tuple[bool, str]:
        if flavour == "xpit":
            return False, "the message carries X-Pit- headers"
        if flavour == "unsigned":
            return False, "unsigned"
        if flavour == "tampered":
            return False, "bad signature"
        if signer == "mallory" or self.fpr[signer] not in self.model.members:
            return False, "unknown key"
        if flavour == "syntax":
            return False, "malformed request"
        return self.model.judge(self.fpr[signer], req)

    def notarize(self) -> None:
        code, out = self.pit_cmd("notarize")
        self.sync()

    def sync(self) -> None:
        """Tell the model what the notary did, checking it is what it predicts."""
        new = [(seq, msg) for seq, msg in Archive(self.root).read(self.synced + 1)]
        rejects = []
        p = self.root / "rejects" / "rejects.mbox"
        if p.exists():
            rejects = list(mbox.iter_file(p))[self.rejects_seen:]
            self.rejects_seen += len(rejects)
        by_digest = {}
        for seq, msg in new:
            st = mbox.stamp(msg)
            by_digest[st.get("x-pit-digest")] = seq
        pending, self.pending = self.pending, []
        accepted = {}
        ri = 0
        for signer, flavour, req, raw in pending:
            ok, why = self.predict(signer, flavour, req)
            digest = hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()
            got = by_digest.get(digest)
            if ok:
                if got is None:
                    reason = mbox.headers(rejects[ri], ["x-pit-rejected"])["x-pit-rejected"] \
                        if ri < len(rejects) else "(nothing)"
                    raise Disagreement(f"{req}: the model accepts it, the notary refused: {reason}")
                accepted[got] = (signer, req, why)
            else:
                if got is not None:
                    raise Disagreement(f"{req} ({flavour}): the model refuses ({why}), "
                                       f"the notary accepted it as record {got}")
                h = mbox.headers(rejects[ri], ["x-pit-rejected"])
                ri += 1
                reason = h["x-pit-rejected"]
                exact = not why.startswith(("malformed request", "unknown key", "unsigned",
                                            "bad signature", "rate limited", "the message carries"))
                if (reason != why) if exact else not reason.startswith(why.split(":")[0]):
                    raise Disagreement(f"{req} ({flavour}): refused for {reason!r}, "
                                       f"the model says {why!r}")
            # the model's notary state moves on in delivery order
            if ok:
                self.model.accept(got, self.fpr[signer], req, why)
        for seq, msg in new:
            st = mbox.stamp(msg)
            if seq in accepted:
                continue
            if st.get("x-pit-kind") == "report":
                raise Disagreement(f"record {seq}: a report outside pit run")
            elif st.get("x-pit-kind") in ("order", "transfer", "deposit", "withdrawal", "member",
                                          "currency", "instrument", "fees"):
                raise Disagreement(f"record {seq} ({st.get('x-pit-kind')}) is no message we sent")
            else:
                self.model.other(seq)
        if new:
            self.synced = new[-1][0]

    # -- running ----------------------------------------------------------------
    def pit_cmd(self, *argv, check=True) -> tuple[int, str]:
        p = subprocess.run([str(BIN / "pit"), "--pit", str(self.root), *argv],
                           capture_output=True, text=True, timeout=600)
        if check and p.returncode != 0:
            raise Disagreement(f"pit {' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
        return p.returncode, p.stdout

    def rows(self, *argv) -> list[dict]:
        """A query command's --json lines, run in this process (the `pit`
        program's main(); a process each would cost most of a session)."""
        import contextlib
        import io
        from pit.cli import main as pit_main
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = pit_main(["--pit", str(self.root), *argv, "--json"])
        if code != 0:
            raise Disagreement(f"pit {' '.join(argv)} --json exited {code}: {err.getvalue().strip()}")
        return [json.loads(x) for x in out.getvalue().splitlines()]

    def pit_run(self, only: str | None = None) -> None:
        """`pit run` (or `pit run FILTER...` with *only*).  The model runs the
        same filters in the same order; each one reads the records before
        its own report (or before the next filter's, when it posted none)."""
        jobs = [only] if only else ["transfers"] + [f"specialist {t}" for t in sorted(self.model.instruments)]
        self.sync()
        self.pit_cmd("run", *(only.split() if only else []))
        new = [(seq, mbox.stamp(msg)) for seq, msg in Archive(self.root).read(self.synced + 1)]
        reports = [(seq, st["x-pit-request"].rpartition(" ")[0]) for seq, st in new
                   if st.get("x-pit-kind") == "report"]
        for i, job in enumerate(jobs):
            mine = [seq for seq, n in reports if n == job]
            later = [seq for seq, n in reports if n in jobs[i + 1:]]
            upto = (mine or later or [None])[0]
            has = self.model.run(job, None if upto is None else upto - 1)
            if has != bool(mine):
                raise Disagreement(f"seed {self.seed}, {job}: the model {'has' if has else 'has no'} "
                                   f"report lines, the filter {'posted' if mine else 'posted nothing'}")
            for seq in mine:
                self.model.posted(seq, job)
        for seq, st in new:
            kind = st.get("x-pit-kind")
            if kind == "member":
                # a filter's first run makes its key a member (pit(1), pit run):
                # the operator's record (the rate limit is the members', not the operator's)
                self.model.accept(seq, st["x-pit-signer"],
                                  {"pit": st["x-pit-pit"], "account": st["x-pit-account"],
                                   "ref": st["x-pit-ref"], "key": "Member",
                                   "value": st["x-pit-request"]}, "")
            elif kind != "report":
                self.model.other(seq)
        if new:
            self.synced = new[-1][0]

    # -- comparing ---------------------------------------------------------------
    def compare(self) -> None:
        m = self.model
        self.checks += 1
        for t in sorted(m.instruments):
            self.model.run(f"specialist {t}")    # pit book/orders bring the specialist up to date
        got = sorted(self.rows("orders"), key=lambda r: (r["ticker"], r["seq"]))
        self._same("open orders", got, m.open_orders())
        for t in sorted(m.instruments):
            self._same(f"book {t}", self.rows("book", t, "--depth", "1000")[0], m.book(t, 1000))
        self._same("trades", self.rows("trades"), m.posted_trades())
        self._same("positions", self.rows("positions"), m.position_rows())
        lines = [r["line"] for r in self.rows("rejects") if "line" in r]
        want = [ln for _, kind, w in m.records if kind == "report" for ln in w["lines"]
                if ln.startswith("rejected ")]
        self._same("filter rejections", lines, want)
        if self.rng.random() < 0.5 and self.synced > 2:
            self.compare_at(self.rng.randrange(1, self.synced + 1))
        if self.rng.random() < 0.2:
            self.compare_pipe(self.rng.choice(sorted(m.instruments)))

    def compare_pipe(self, t: str) -> None:
        """`pit replay specialist T --from-start | pit-specialist T`: the real
        programs in a pipe say every trade the model made, in order."""
        p = subprocess.run(f"'{BIN}/pit' --pit '{self.root}' replay specialist {t} --from-start"
                           f" | '{BIN}/pit-specialist' {t}", shell=True, capture_output=True,
                           timeout=600)
        if p.returncode != 0:
            raise Disagreement(f"the pipe for {t} failed: {p.stderr.decode()[-300:]}")
        got = [ln for ln in p.stdout.decode().split("\n") if ln.startswith("trade ")]
        m = self.model
        m.run(f"specialist {t}")
        want = [ln for _, kind, w in m.records if kind == "report" and w["filter"] == f"specialist {t}"
                for ln in w["lines"] if ln.startswith("trade ")]
        want += [ln for ln in m.lines.get(f"specialist {t}", []) if ln.startswith("trade ")]
        self._same(f"trades of the pipe for {t}", got, want)

    def compare_at(self, at: int) -> None:
        """Every --at command at record *at* (pit(1), AS OF A RECORD)."""
        m = self.model
        past = m.as_of(at)
        got = sorted(self.rows("orders", "--at", str(at)), key=lambda r: (r["ticker"], r["seq"]))
        self._same(f"open orders --at {at}", got, past.open_orders())
        for t in sorted(past.instruments):
            self._same(f"book {t} --at {at}", self.rows("book", t, "--depth", "1000", "--at", str(at))[0],
                       past.book(t, 1000))
        self._same(f"trades --at {at}", self.rows("trades", "--at", str(at)), m.posted_trades(at))
        self._same(f"positions --at {at}", self.rows("positions", "--at", str(at)), m.position_rows(at))
        who = self.rng.choice(TRADERS)
        self._same(f"fills --account {who} --at {at}", self.rows("fills", "--account", who, "--at", str(at)),
                   [x for x in m.posted_trades(at) if who in (x["buyer"], x["seller"])])

    def _same(self, what, got, want) -> None:
        if got != want:
            if isinstance(got, list) and isinstance(want, list):
                i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                detail = (f"first difference at {i}: pit {got[i] if i < len(got) else '(none)'}, "
                          f"model {want[i] if i < len(want) else '(none)'}")
            else:
                detail = f"pit {got}, model {want}"
            e = Disagreement(f"seed {self.seed}, {what}: {detail}")
            e.what = what.split(" --at")[0]
            raise e

    # -- generating ----------------------------------------------------------------
    def step(self) -> None:
        """One random message (or a run)."""
        r = self.rng
        x = r.random()
        who = r.choice(TRADERS)
        acct = who if r.random() < 0.85 else f"{who}2"
        t = r.choice(TICKERS)
        mine = [(a, ref) for (a, ref), (seq, tk) in self.model.refs.items()
                if a in (who, f"{who}2") and tk]
        if mine and r.random() < 0.7:            # mostly an order that is open now
            mine = [k for k in self.model.open_refs if k[0] in (who, f"{who}2")] or mine
        if x < 0.50:
            side = r.choice(["buy", "sell"])
            q, p, s = r.choice(QTYS[t]), r.choice(PRICES[t]), r.choice(PRICES[t])
            typ = r.choice(["limit"] * 4 + ["ioc", "fok", "market", "stop-loss", "take-profit",
                                            "stop-limit"])
            clause = {"limit": f"limit {p}", "ioc": f"ioc {p}", "fok": f"fok {p}", "market": "market",
                      "stop-loss": f"stop-loss {s}", "take-profit": f"take-profit {s}",
                      "stop-limit": f"stop-limit {s} limit {p}"}[typ]
            self.send(who, self._req(acct, "Order", f"{side} {q} {t} {clause}"))
        elif x < 0.62 and mine:
            a, ref = r.choice(mine)
            self.send(who, self._req(a, "Order", f"cancel {ref}"))
        elif x < 0.72 and mine:
            a, ref = r.choice(mine)
            tk = self.model.refs[a, ref][1]
            what = r.choice([["qty"], ["price"], ["stop"], ["qty", "price"]])
            words = []
            for w in what:
                words += [w, r.choice(QTYS[tk]) if w == "qty" else r.choice(PRICES[tk])]
            self.send(who, self._req(a, "Order", "modify " + ref + " " + " ".join(words)))
        elif x < 0.84:
            cur = CURRENCY[t]
            asset = r.choice([cur, cur, t])
            amount = r.choice(["100.00", "1000.00", "5000.00"]) if asset == cur else r.choice(QTYS[t])
            src, dst = r.choice([(acct, f"{acct}:{t}"), (acct, f"{acct}:{t}"), (f"{acct}:{t}", acct),
                                 (f"{acct}:{t}", f"{r.choice(TRADERS)}:{t}"),
                                 (acct, r.choice(TRADERS)), (f"{acct}:{t}", f"{acct}:{r.choice(TICKERS)}")])
            if src != dst:
                self.send(who, self._req(src, "Transfer", f"{amount} {asset} to {dst}"))
        elif x < 0.885:
            # the operator removes a member, or brings one back
            if self.fpr[who] in self.model.members:
                self.send("operator", self._req("operator", "Member", f"remove {self.fpr[who]}"))
            else:
                self.send("operator", self._req("operator", "Member",
                                                f"add {self.fpr[who]} accounts {who}, {who}2",
                                                with_key=who))
        elif x < 0.89:
            kind = r.choice(["Deposit", "Withdrawal"])
            asset = r.choice(["USD", "EUR", "USD"])
            amount = r.choice(["10.00", "500.00", "30000.00"])
            to = r.choice(TRADERS + ("nobody",))
            self.send("operator", self._req("operator", kind,
                                            f"{amount} {asset} {'to' if kind == 'Deposit' else 'from'} {to}"))
        else:
            self.bad(who, acct, t)

    def bad(self, who, acct, t) -> None:
        r = self.rng
        kind = r.choice(["replay", "unknown-ref", "not-owner", "operator-kind", "wrong-pit",
                         "mallory", "tampered", "unsigned", "syntax", "xpit", "unknown-ticker",
                         "off-tick"])
        order = f"buy 1 {t} limit {PRICES[t][0]}"
        if kind == "replay" and self.model.refs:
            a, ref = r.choice(sorted(k for k in self.model.refs if k[0].partition(":")[0] == who
                                     or k[0] == f"{who}2") or [(acct, "none")])
            self.send(who, self._req(a, "Order", order, ref=ref))
        elif kind == "unknown-ref":
            self.send(who, self._req(acct, "Order", f"cancel nosuch{r.randrange(9)}"))
        elif kind == "not-owner":
            other = r.choice([x for x in TRADERS if x != who])
            self.send(who, self._req(other, "Order", order))
        elif kind == "operator-kind":
            self.send(who, self._req(acct, "Deposit", f"1.00 USD to {who}"))
        elif kind == "wrong-pit":
            self.send(who, self._req(acct, "Order", order, pit="other"))
        elif kind == "mallory":
            self.send("mallory", self._req("mallory", "Order", order))
        elif kind in ("tampered", "unsigned", "syntax", "xpit"):
            self.send(who, self._req(acct, "Order", order), flavour=kind)
        elif kind == "unknown-ticker":
            self.send(who, self._req(acct, "Order", "buy 1 ZZZ limit 1.00"))
        else:
            self.send(who, self._req(acct, "Order", f"buy 1 {t} limit {PRICES[t][0]}3"))

    def play(self, messages: int, batch: int = 12) -> None:
        """Send *messages*, notarizing about every *batch* of them, and run
        the filters (then compare) about every other time."""
        r = self.rng
        while self.messages < messages:
            self.step()
            if r.random() < 1 / batch:
                self.notarize()
                if r.random() < 0.5:
                    self.pit_run(r.choice([None, None, "transfers"] + [f"specialist {t}" for t in TICKERS]))
                    self.compare()
        self.notarize()
        self.pit_run()
        self.compare()


def run_session(base: Path, keyhome: Path, seed: int, messages: int, batch: int = 12) -> Session:
    """One session; its pit is removed when it agrees, kept when it does not."""
    import shutil
    base.mkdir(parents=True, exist_ok=True)
    root = base / f"pit-{seed}"
    s = None
    try:
        s = Session(root, keyhome, seed)
        s.play(messages, batch)
    except Disagreement as e:
        e.messages = s.messages if s else 0      # sent before the first disagreement
        raise
    finally:
        testkeys.stop_agents(root)
    shutil.rmtree(root, ignore_errors=True)
    return s


def shrink(base: Path, keyhome: Path, seed: int, messages: int, batch: int,
           what: str | None = None) -> int:
    """The fewest messages of session *seed* that still disagree (about
    *what*, when given: the same comparison).  A session
    of k messages is the first k of the longer one (the same draws in the
    same order) ending in a notary run, `pit run` and a comparison, so a
    binary search over k finds the shortest; O(log messages) sessions."""
    lo, hi = 1, messages
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            run_session(base / f"shrink-{mid}", keyhome, seed, mid, batch)
            lo = mid + 1
        except Disagreement as e:
            if what is not None and getattr(e, "what", None) != what:
                lo = mid + 1            # another disagreement: not the one being shrunk
            else:
                hi = mid
    return hi


def main(argv=None) -> int:
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1-3", help="A-B or a comma list")
    ap.add_argument("--messages", type=int, default=300, help="messages a session")
    ap.add_argument("--batch", type=int, default=12,
                    help="messages between notary runs, on average")
    ap.add_argument("--shrink", action="store_true",
                    help="on a disagreement, find the shortest session that still disagrees")
    args = ap.parse_args(argv)
    seeds = []
    for part in args.seeds.split(","):
        a, _, b = part.partition("-")
        seeds += list(range(int(a), int(b or a) + 1))
    total, bad, t0 = 0, [], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pit-model-") as tmp:
        base = Path(tmp)
        keyhome = make_keyhome(base)
        try:
            for seed in seeds:
                try:
                    s = run_session(base, keyhome, seed, args.messages, args.batch)
                    total += s.messages
                    print(f"seed {seed}: {s.messages} messages, {s.checks} comparisons, agree",
                          flush=True)
                except Disagreement as e:
                    bad.append(seed)
                    total += getattr(e, "messages", 0)
                    print(f"seed {seed}: DISAGREE: {e}", flush=True)
                    if args.shrink:
                        k = shrink(base, keyhome, seed, getattr(e, "messages", 0) or args.messages,
                                   args.batch, getattr(e, "what", None))
                        print(f"seed {seed}: the shortest session that disagrees has {k} messages: "
                              f"tests/model_session.py --seeds {seed} --messages {k} --batch {args.batch}",
                              flush=True)
        finally:
            testkeys.stop_agents(base)
    print(f"{len(seeds)} sessions, {total} messages, {len(bad)} disagreements"
          f"{' (seeds ' + ','.join(map(str, bad)) + ')' if bad else ''}, "
          f"{time.monotonic() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
