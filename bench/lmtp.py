"""The mail path on the notary's host: LMTP in, durable records out.

    python -m bench.lmtp [--n 3000] [--connections 32] [--runs 3]
                         [--rate 100] [--seconds 20] [--skip-latency]
                         [--no-postfix] [--trace FILE]

1. Throughput.  A fresh pit (bench/fixtures.py: ten ed25519 traders,
   signed in process) behind the real notary (``pit.daemon.NotaryService``
   in ``pit.mailhost.NotaryLMTPServer``), a plain LMTP sink in Mailman's
   place.  ``--connections`` clients, one kept LMTP connection each, send
   ``--n`` signed orders (new orders only: a cancel racing its order on
   another connection would be refused) as fast as the server answers.
   Every 250 means the record is on disk (fsync'd); the run checks that
   the archive holds every acknowledged message.  Rate = accepted orders
   over the wall time from the first send to the last reply.  Target:
   >= 1,000 signed orders/s from 32 connections.

   The same through a real Postfix in front (unless ``--no-postfix``;
   needs root and the postfix package, else skipped): the clients hand
   the orders to a Postfix instance of the bench's own by SMTP
   (tests/postfix_harness.py), which delivers the pit's domain to the
   notary's LMTP server with up to ``--connections`` LMTP connections;
   rate = orders over the time from the first send until the last one is
   in the archive.  Reported beside the LMTP target.

2. Order -> trade on one host.  A pit with ticker LAT; the notary's
   server in a process of its own (as ``pit mailman serve``), the
   specialist's daemon as users run it (``pit mailman daemon``: it wakes on
   the archive's commit, not on list delivery) posting to that server,
   the traders in the bench's process.  Crossing pairs (sell, then buy,
   one lot) are sent on schedule at ``--rate`` orders/s for ``--seconds``
   from four connections (traders do not wait for each other's replies);
   the latency of a pair is from sending its second order to the
   specialist's report holding its trade being in the archive.  Targets:
   p50 <= 50 ms, p99 <= 200 ms at 100 orders/s.

   With ``--trace FILE`` each run is traced (pit.trace) to FILE.N and the
   time of each hop is printed (p50/p90/p99 over the pairs): the order's
   group commit, the daemon's wake, the wait for the run in progress, the
   replay, the signature, the report's group commit.

Each figure is printed with min and median over ``--runs`` runs and the
load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.fixtures import fresh_pit, signed_orders
from pit import mbox, ops, testkeys, trace
from pit.archive import Archive
from pit.daemon import NotaryService
from pit.mailhost import (LMTPClient, NotaryLMTPServer, PitRoute, _LMTPController,
                          default_judges, free_port)

TARGET_RATE = 1_000
TARGET_P50, TARGET_P99 = 0.050, 0.200


def _load() -> str:
    return ("load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
            + f" on {os.cpu_count()} CPUs")


class _CountingSink:
    """A plain LMTP server in Mailman's place: takes every post, counts it."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.count += 1
        return "\r\n".join("250 2.0.0 OK" for _ in envelope.rcpt_tos)


def _sink_process(port: int, ready, stop) -> None:
    """Mailman's LMTP runner is a process of its own: so is its stand-in."""
    ctl = _LMTPController(_CountingSink(), hostname="127.0.0.1", port=port, ready_timeout=10)
    ctl.start()
    ready.set()
    stop.wait()
    ctl.stop()


class Bench:
    """A pit behind the real notary's LMTP server, with a sink for Mailman."""

    def __init__(self, pit, judges: int | None = None):
        import multiprocessing
        self.pit = pit
        port = free_port()
        ctx = multiprocessing.get_context("spawn")
        ready, self._sink_stop = ctx.Event(), ctx.Event()
        self._sink = ctx.Process(target=_sink_process, args=(port, ready, self._sink_stop))
        self._sink.start()
        if not ready.wait(30):
            self._sink.kill()
            raise SystemExit("bench.lmtp: the LMTP sink did not start")
        self.service = NotaryService(pit, smtp=None, seal_seconds=1.0)
        # a spool, as 'pit mailman serve' gives every pit (pit.daemon.notary_server)
        route = PitRoute(pit.address, pit.notary_address, self.service, "bench-secret",
                         pit.root / "spool" / pit.address)
        self.server = NotaryLMTPServer({pit.address: route}, ("127.0.0.1", port), judges=judges)

    def __enter__(self) -> "Bench":
        self.server.start()
        self.service.attach(self.server)
        self.service.start()
        if self.service._judges is not None:      # started, not timed
            self.service._judges.wait_ready(60)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.service.stop()
        finally:
            self.server.stop()
            self._sink_stop.set()
            self._sink.join(10)
            if self._sink.is_alive():
                self._sink.kill()


def _thread_cpu(server: NotaryLMTPServer) -> dict[str, float]:
    """CPU seconds so far of the server's threads: its event loop (pit.lmtpserver:
    the LMTP dialogue), the pits' committers (judge, stamp, append) and
    injectors (posting to the list), from /proc (Linux)."""
    threads = {"event loop": [server._controller.thread],
               "committer": [q.thread for q in server._queues.values()],
               "injector": [q.thread for q in server._injecting.values()]}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for role, members in threads.items():
        out[role] = 0.0
        for t in members:
            try:
                with open(f"/proc/self/task/{t.native_id}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except (OSError, AttributeError):
                continue
            out[role] += (int(fields[11]) + int(fields[12])) / tick
    out["judges"] = sum(_judge_cpu(server).values())
    return out


_judges_seen: dict[int, float] = {}      # judge pid -> its CPU when last read (a judge may end)


def _judge_cpu(server: NotaryLMTPServer) -> dict[int, float]:
    """CPU seconds so far of the judge processes (moderator.judges) of the
    server's pits, those that ended since included."""
    tick = os.sysconf("SC_CLK_TCK")
    for route in server.routes.values():
        judges = getattr(route.notarize, "_judges", None)
        for pid in judges.pids() if judges is not None else ():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            _judges_seen[pid] = (int(fields[11]) + int(fields[12])) / tick
    return _judges_seen


def _cpu_split(before: dict[str, float], after: dict[str, float], orders: int) -> dict:
    return {role: (after[role] - before[role]) / orders * 1000 for role in after}


def _sender(raw: bytes) -> str:
    value = mbox.headers(raw, ["from"])["from"]
    return value[value.find("<") + 1:value.rfind(">")] if "<" in value else value.strip()


def _new_orders_only(raws: list[bytes]) -> list[bytes]:
    return [r for r in raws if b"Order: cancel" not in r and b"Order: modify" not in r]


class _SMTPClient:
    """LMTPClient's send for an SMTP server (Postfix): one kept connection."""

    def __init__(self, host: str, port: int):
        import smtplib
        self.smtp = smtplib.SMTP(host, port, timeout=600)

    def __enter__(self) -> "_SMTPClient":
        return self

    def __exit__(self, *exc) -> None:
        self.smtp.quit()

    def send(self, raw: bytes, sender: str, rcpts: list[str]) -> dict[str, tuple[int, str]]:
        refused = self.smtp.sendmail(sender, rcpts, raw.replace(b"\n", b"\r\n"))
        return {r: refused.get(r, (250, "queued")) for r in rcpts}


def _clients(host: str, port: int, rcpt: str, raws: list[bytes], connections: int,
             smtp: bool = False):
    """Send *raws* over *connections* kept LMTP (with *smtp*: SMTP)
    connections at once; return ([(code, text)], time of the first send,
    time of the last reply)."""
    acked: list[tuple[int, str]] = []
    lock = threading.Lock()
    todo = iter(raws)
    started: list[float] = []
    barrier = threading.Barrier(connections, action=lambda: started.append(time.time()))

    def client() -> None:
        mine = []
        with (_SMTPClient if smtp else LMTPClient)(host, port) as c:
            barrier.wait()
            for raw in todo:            # a shared iterator: next() holds the GIL
                mine.append(c.send(raw, _sender(raw), [rcpt])[rcpt])
        with lock:
            acked.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked, started[0], time.time()


def throughput_run(root: Path, n: int, connections: int, judges: int | None = None) -> dict:
    pit = fresh_pit(root)
    raws = _new_orders_only(signed_orders(pit, n, "ed25519", cache=False))
    funding, orders = raws[:20], raws[20:]
    with Bench(pit, judges) as b:
        with LMTPClient(b.server.host, b.server.port) as c:      # the traders' transfers first
            for raw in funding:
                assert c.send(raw, _sender(raw), [pit.address])[pit.address][0] == 250
        # The clients run in processes of their own (two, half the
        # connections each), so the server is measured, not their GIL.
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        procs = 2
        shares = [orders[k::procs] for k in range(procs)]
        with ctx.Pool(procs) as pool:
            # the rest of the machine's work: the clients and Mailman's stand-in
            others = {"clients": [p.pid for p in pool._pool], "sink": [b._sink.pid]}
            cpu, threads = time.process_time(), _thread_cpu(b.server)
            before = {k: sum(map(_process_cpu, v)) for k, v in others.items()}
            results = pool.starmap(_clients, [(b.server.host, b.server.port, pit.address, share,
                                               connections // procs) for share in shares])
            after = _thread_cpu(b.server)
            rest = {k: (sum(map(_process_cpu, v)) - before[k]) / len(orders) * 1000
                    for k, v in others.items()}
            # the server's threads (this process) and its judge processes
            cpu = time.process_time() - cpu + after["judges"] - threads["judges"]
            split = _cpu_split(threads, after, len(orders))
        wall = max(r[2] for r in results) - min(r[1] for r in results)
        acked = [a for r in results for a in r[0]]
    bad = [a for a in acked if a[0] != 250]
    archived = {st.get("x-pit-digest") for _, st in
                ((s, mbox.stamp(m)) for s, m in Archive(pit.root).read())}
    import hashlib
    missing = [r for r in orders if hashlib.sha256(r.replace(b"\r\n", b"\n")).hexdigest()
               not in archived]
    if bad or missing or len(acked) != len(orders):
        raise SystemExit(f"bench.lmtp: {len(bad)} not acknowledged (first {bad[:1]}), "
                         f"{len(missing)} acknowledged but not archived")
    testkeys.stop_agents(root)
    return {"rate": len(orders) / wall, "orders": len(orders), "wall": wall, "cpu": cpu,
            "split": split, "rest": rest}


def _process_cpu(pid: int) -> float:
    """CPU seconds so far of process *pid* (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Postfix in front: the pit's domain goes to the notary's LMTP server, with
# as many LMTP connections as the clients have SMTP ones.
POSTFIX_MAIN = """\
transport_maps = hash:{etc}/transport
lmtp_destination_concurrency_limit = {connections}
default_destination_concurrency_limit = {connections}
"""


def postfix_run(root: Path, n: int, connections: int, judges: int | None = None) -> dict:
    """The throughput run with a real Postfix in front: the clients hand
    the orders to Postfix by SMTP (its 250: queued, fsync'd by Postfix),
    Postfix delivers them to the notary by LMTP.  Rate = orders over the
    time from the first SMTP send until the last order is in the archive."""
    import multiprocessing
    import shutil
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from postfix_harness import running_postfix
    pit = fresh_pit(root)
    raws = _new_orders_only(signed_orders(pit, n, "ed25519", cache=False))
    funding, orders = raws[:20], raws[20:]
    # Postfix adds its Received: header, so the orders are known by Message-ID
    wanted = {mbox.headers(r, ["message-id"])["message-id"] for r in orders}
    postfix_dir = Path(tempfile.mkdtemp(prefix="pit-bench-lmtp-postfix-"))
    os.chmod(postfix_dir, 0o755)               # Postfix's own user walks to its queue
    try:
        with Bench(pit, judges) as b:
            with LMTPClient(b.server.host, b.server.port) as c:
                for raw in funding:
                    assert c.send(raw, _sender(raw), [pit.address])[pit.address][0] == 250
            (postfix_dir / "etc").mkdir()
            (postfix_dir / "etc" / "transport").write_text(
                f"{pit.domain} lmtp:inet:{b.server.host}:{b.server.port}\n")
            port = free_port()
            archive = Archive(pit.root)
            seen = archive.last_seq()
            with running_postfix(postfix_dir, port, maps=("transport",),
                                 main_extra=POSTFIX_MAIN.format(etc=postfix_dir / "etc",
                                                                connections=connections)) as pf:
                ctx = multiprocessing.get_context("spawn")
                procs = 2
                shares = [orders[k::procs] for k in range(procs)]
                with ctx.Pool(procs) as pool:
                    cpu, threads = time.process_time(), _thread_cpu(b.server)
                    pending = pool.starmap_async(_clients, [
                        ("127.0.0.1", port, pit.address, share, connections // procs, True)
                        for share in shares])
                    deadline = time.time() + 120 + len(orders) / 10
                    while wanted:
                        if time.time() > deadline:
                            raise SystemExit(f"bench.lmtp: {len(wanted)} orders not archived "
                                             f"through Postfix\n{pf.log_text()}")
                        time.sleep(0.05)
                        for seq, msg in archive.read(seen + 1):
                            seen = seq
                            wanted.discard(mbox.headers(msg, ["message-id"]).get("message-id"))
                    done = time.time()
                    after = _thread_cpu(b.server)
                    cpu = time.process_time() - cpu + after["judges"] - threads["judges"]
                    split = _cpu_split(threads, after, len(orders))
                    results = pending.get()
        acked = [a for r in results for a in r[0]]
        if any(a[0] != 250 for a in acked) or len(acked) != len(orders):
            raise SystemExit(f"bench.lmtp: Postfix refused {sum(a[0] != 250 for a in acked)}")
    finally:
        shutil.rmtree(postfix_dir, ignore_errors=True)
        testkeys.stop_agents(root)
    wall = done - min(r[1] for r in results)
    return {"rate": len(orders) / wall, "orders": len(orders), "wall": wall, "cpu": cpu,
            "split": split}


def throughput(n: int, connections: int, runs: int, postfix: bool = False,
               judges: tuple[int, ...] | None = None) -> bool:
    """The throughput runs; with *postfix*, through a real Postfix (its
    figure is reported beside the target, which is for LMTP).  Each run
    is made once with each number of judge processes in *judges*, in
    turn (an A/B in one command: ``--judges 0,2``); the verdict is the
    last setting's."""
    if postfix:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from postfix_harness import postfix_available
        reason = postfix_available()
        if reason:
            print(f"lmtp throughput through Postfix: skipped: {reason}")
            return True
    path = "Postfix (SMTP) -> LMTP" if postfix else "LMTP"
    print(f"lmtp throughput: {connections} connections, {path}, real notary, LMTP sink for "
          f"Mailman ({_load()})")
    judges = judges or (default_judges(),)
    rates: dict[int, list[float]] = {j: [] for j in judges}
    cpus: dict[int, list[float]] = {j: [] for j in judges}
    with tempfile.TemporaryDirectory(prefix="pit-bench-lmtp-") as tmp:
        for r in range(runs):
            for j in judges:
                res = (postfix_run if postfix else throughput_run)(
                    Path(tmp) / f"pit{r}-{j}", n, connections, j)
                rates[j].append(res["rate"])
                cpus[j].append(res["cpu"] / res["orders"] * 1000)
                durable = ("each in the archive before the run ends" if postfix
                           else "every one durable before its 250")
                print(f"  run {r + 1}, {j} judges: {res['orders']} orders in {res['wall']:.2f} s: "
                      f"{res['rate']:,.0f} accepted/s, {durable}; server CPU (judges "
                      f"included) {cpus[j][-1]:.2f} ms an order ({1000 / cpus[j][-1]:,.0f}/s of CPU; "
                      + ", ".join(f"{k} {v:.2f}" for k, v in res["split"].items())
                      + ")" + ("; beside it, ms an order: " + ", ".join(
                          f"{k} {v:.2f}" for k, v in res["rest"].items()) if "rest" in res else "")
                      + f" ({_load()})", flush=True)
    for j in judges:
        ok = min(rates[j]) >= TARGET_RATE or statistics.median(rates[j]) >= TARGET_RATE
        verdict = f"[target >= {TARGET_RATE:,}/s: {'ok' if ok else 'MISSED'}]"
        if postfix:
            verdict = f"[reported; the target >= {TARGET_RATE:,}/s is for LMTP]"
            ok = True
        print(f"  signed orders/s over {path}, {connections} connections, {j} judges: min "
              f"{min(rates[j]):,.0f}, median {statistics.median(rates[j]):,.0f}; server CPU "
              f"median {statistics.median(cpus[j]):.2f} ms an order  {verdict}  ({_load()})")
    return ok


def _latency_pit(root: Path):
    """A pit with ticker LAT, trader00 holding USD and trader01 LAT in their
    LAT accounts (as bench/mailman.py sets it up), and the LAT specialist's key."""
    from bench.fixtures import trader_keys
    pit = fresh_pit(root)
    signed_orders(pit, 20, "ed25519", traders=2, cache=False)     # members, funded
    for key, value in (("Instrument", "LAT USD tick 0.01 lot 1"),
                       ("Deposit", "1000000 LAT to trader01")):
        d = ops.operator_request(pit, key, value)
        assert d.accepted, d.reason
    keys = trader_keys("ed25519", 2)
    notary = ops.notary(pit)
    for name, value in (("trader00", "5000000.00 USD to trader00:LAT"),
                        ("trader01", "1000000 LAT to trader01:LAT")):
        ring, fpr = keys[name]
        raw = ops.sign_request(pit, ops.request_text(pit, name, "lat-fund", "Transfer", value),
                               ring, fpr, f"{name}@traders.example")
        d = notary.notarize([raw])[0]
        assert d.accepted, d.reason
    ops.run_filter(pit, "transfers", [])
    ops.filter_key(pit, "specialist LAT")
    signers = {}
    from pit.signer import Signer
    for name, (ring, fpr) in keys.items():
        signers[name] = (Signer.from_keyring(ring, fpr), fpr)
        ring.stop_agent()
    return pit, signers


def _lat_order(pit, signers, who: str, ref: str, side: str) -> bytes:
    from pit import signed
    signer, fpr = signers[who]
    text = ops.request_text(pit, who, ref, "Order", f"{side} 1 LAT at 10.00")
    headers = [("From", f"{who}@traders.example"), ("To", pit.address),
               ("Subject", f"{side} 1 LAT at 10.00"),
               ("Message-ID", f"<lat.{ref}.{who}.{time.time_ns()}@traders.example>")]
    return signed.compose_clearsigned(headers, text, signer, fpr)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process *pid* has used so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _serve(root: str, address, ready, stop) -> None:
    """The notary's server in a process of its own, as ``pit mailman serve`` runs."""
    from pit.pitdir import Pit
    with Bench(Pit(root)) as b:
        address.put((b.server.host, b.server.port))
        ready.set()
        stop.wait()


def _sender_threads(host: str, port: int, rcpt: str, due: list[tuple[float, bytes, str, int]],
                    connections: int, sent: dict) -> None:
    """Send each ``(time due, message, sender, pair)`` at its time from
    *connections* kept LMTP connections (the k-th message on connection
    k mod *connections*): traders do not wait for one another's replies.
    ``sent[pair]`` is the latest send time of the pair's messages."""
    errors: list[str] = []

    def client(mine) -> None:
        with LMTPClient(host, port) as c:
            for when, raw, who, pair in mine:
                time.sleep(max(0.0, when - time.perf_counter()))
                now = time.perf_counter()
                sent[pair] = max(sent.get(pair, 0.0), now)
                trace.mark("bench.send", pair=pair)
                code, text = c.send(raw, who, [rcpt])[rcpt]
                if code != 250:
                    errors.append(f"{code} {text}")
    threads = [threading.Thread(target=client, args=(due[n::connections],))
               for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"bench.lmtp: {len(errors)} orders not accepted (first: {errors[0]})")


def latency_run(root: Path, rate: float, seconds: float, connections: int = 4):
    """:func:`_latency_run`, whose pit's gpg agents are stopped however it ends."""
    try:
        return _latency_run(root, rate, seconds, connections)
    finally:
        testkeys.stop_agents(root)


def _latency_run(root: Path, rate: float, seconds: float, connections: int):
    """Crossing pairs at *rate* orders/s for *seconds*, the notary's server,
    the specialist's daemon (``pit mailman daemon``) and the traders each in
    processes of their own: each pair's time from sending its second order
    to its trade's report being in the archive, the pit, and the CPU
    seconds a pair took in the server, the daemon and the traders' process
    (with the bench's watch on the archive)."""
    import multiprocessing
    import subprocess
    import sys
    from pit.daemon import FilterDaemon
    from pit.watch import AppendWatch
    pit, signers = _latency_pit(root)
    pairs = int(rate * seconds / 2)
    orders = [(_lat_order(pit, signers, "trader01", f"p{k}", "sell"),
               _lat_order(pit, signers, "trader00", f"p{k}", "buy")) for k in range(pairs)]
    sent: dict[int, float] = {}
    traded: dict[int, float] = {}
    done = threading.Event()
    archive = Archive(pit.root)

    def detector(watch) -> None:
        import re
        seen = archive.last_seq()
        trade = re.compile(rb"buyer trader00 p(\d+) seller trader01 p\d+ ")
        while not done.is_set():
            if not watch.wait(0.2):
                continue
            now = time.perf_counter()
            for seq, msg in archive.read(seen + 1):
                seen = seq
                if b"\nX-Pit-Kind: report\n" in msg[:2000]:
                    for m in trade.finditer(msg):
                        if traded.setdefault(int(m.group(1)), now) == now:
                            trace.mark("bench.seen", pair=int(m.group(1)))
            if len(traded) >= pairs:
                done.set()

    ctx = multiprocessing.get_context("spawn")
    where, ready, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    server = ctx.Process(target=_serve, args=(str(pit.root), where, ready, stop))
    server.start()
    daemon = None
    try:
        if not ready.wait(60):
            raise SystemExit("bench.lmtp: the notary's server did not start")
        host, port = where.get()
        # catch up first (not timed), then the daemon as users run it
        FilterDaemon(pit, "specialist", ["LAT"], (host, port)).kick()
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("pit")), "--pit", str(pit.root), "mailman",
             "daemon", "--lmtp", f"{host}:{port}", "specialist", "LAT"],
            stdout=subprocess.PIPE, text=True)
        if "running" not in (daemon.stdout.readline() or ""):
            raise SystemExit("bench.lmtp: the specialist's daemon did not start")
        time.sleep(1.0)                 # its first run (nothing new) is over
        watch = AppendWatch(archive.dir)
        t = threading.Thread(target=detector, args=(watch,))
        t.start()
        try:
            gap, start = 1.0 / rate, time.perf_counter() + 0.1
            due = [(start + (2 * k + i) * gap, raw, f"{who}@traders.example", k)
                   for k, (sell, buy) in enumerate(orders)
                   for i, (raw, who) in enumerate(((sell, "trader01"), (buy, "trader00")))]
            cpu0 = (_cpu(server.pid), _cpu(daemon.pid), time.process_time())
            _sender_threads(host, port, pit.address, due, connections, sent)
            if not done.wait(30 + seconds):
                raise SystemExit(f"bench.lmtp: {len(traded)} of {pairs} trades seen")
            cpu = [(b - a) / pairs for a, b in zip(cpu0, (_cpu(server.pid), _cpu(daemon.pid),
                                                          time.process_time()))]
        finally:
            done.set()
            t.join()
            watch.close()
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        stop.set()
        server.join(60)
        if server.is_alive():
            server.kill()
    return [traded[k] - sent[k] for k in range(pairs)], pit, cpu


def breakdown(trace_path: Path, pit, pairs: int) -> list[tuple[str, list[float]]]:
    """Where each pair's time went, hop by hop, from a trace (pit.trace) of
    one latency run: ``[(hop, seconds for each pair)]``.  The pair's later
    order's record and the report that traded it are found in the archive;
    each hop is the first trace line that covers that record."""
    import bisect
    events = trace.read(trace_path)
    by: dict[str, list] = {}
    for ns, _pid, thread, event, fields in events:
        by.setdefault(event, []).append((ns / 1e9, thread, fields))
    buys: dict[int, int] = {}
    reports: list[tuple[int, int, int]] = []
    for seq, msg in Archive(pit.root).read():
        st = mbox.stamp(msg)
        kind = st.get("x-pit-kind")
        if kind == "order" and st.get("x-pit-ref", "").startswith("p"):
            buys[int(st["x-pit-ref"][1:])] = seq        # the pair's later order
        elif kind == "report":
            span = st.get("x-pit-request", "").rpartition(" ")[2]
            a, _, b = span.partition("-")
            reports.append((int(a), int(b or a), seq))

    def first(event, test, after=0.0):
        for t, thread, f in by.get(event, []):
            if t >= after and test(f):
                return t, thread
        return None, None

    committed = [t for t, _, _ in by.get("append.committed", [])]

    def durable(seq):
        """When record *seq* became visible: its append's index rename."""
        end = first("group.durable", lambda f: int(f["first"]) <= seq <= int(f["last"]))[0]
        return None if end is None else committed[bisect.bisect_right(committed, end) - 1]

    sends = {int(f["pair"]): t for t, _, f in by.get("bench.send", [])}
    seens = {int(f["pair"]): t for t, _, f in by.get("bench.seen", [])}
    starts = by.get("run.start", [])
    start_times = [t for t, _, _ in starts]
    hops = ["second order sent -> its group taken", "group taken -> committed (judge, fsyncs, rename)",
            "committed -> daemon's watch woke", "woke -> run that covers it starts",
            "run start -> report made (position, replay, filter)",
            "report made -> signed", "signed -> report committed (post, group)",
            "report committed -> bench saw it", "total"]
    out = {h: [] for h in hops}
    for k in range(pairs):
        s = buys.get(k)
        r = next((seq for a, b, seq in reports if a <= s <= b), None) if s else None
        if s is None or r is None or k not in sends or k not in seens:
            continue
        t_dur, t_rdur = durable(s), durable(r)
        t_take = None
        for t, _, f in by.get("group.take", []):
            if t <= t_dur:
                t_take = t
        t_woke = first("watch.woke", lambda f: int(f["seen"]) >= s)[0]
        t_made, thread = first("run.replayed", lambda f: int(f["covered"]) >= s)
        i = bisect.bisect_right(start_times, t_made) - 1
        t_run = start_times[i]
        t_signed = first("post.signed", lambda f: True, t_made)[0]
        if None in (t_dur, t_rdur, t_take, t_woke, t_made, t_signed):
            continue
        for hop, v in zip(hops, [t_take - sends[k], t_dur - t_take, t_woke - t_dur,
                                 t_run - t_woke, t_made - t_run, t_signed - t_made,
                                 t_rdur - t_signed, seens[k] - t_rdur, seens[k] - sends[k]]):
            out[hop].append(v)
    return [(h, out[h]) for h in hops]


def print_breakdown(rows) -> None:
    print("  where the time goes (ms; a negative wait: the run was under way already):")
    for hop, values in rows:
        if values:
            print(f"    {hop:<55} p50 {_pct(values, 0.5) * 1000:7.1f}  "
                  f"p90 {_pct(values, 0.9) * 1000:7.1f}  p99 {_pct(values, 0.99) * 1000:7.1f}")


def fsync_ab(n: int, runs: int) -> None:
    """One-record appends (a group of one: the mail path's smallest commit)
    with the new index fsync'd beside the volume's data
    (``archive.OVERLAP_FSYNCS``) and after it, interleaved run by run."""
    from pit import archive as archive_mod
    import hashlib
    print(f"one-record durable appends, {n} a run, index fsync beside / after the data "
          f"({_load()})")
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="pit-bench-fsync-") as tmp:
        for r in range(runs):
            for overlap in (True, False):
                archive_mod.OVERLAP_FSYNCS = overlap
                arch = Archive(Path(tmp) / f"{r}-{overlap}")
                prev, each = archive_mod.ZERO_HASH, []
                for seq in range(1, n + 1):
                    body = b"From: t@example.org\n\nbench\n"
                    rec = (f"X-Pit-Seq: {seq}\nX-Pit-Time: 2026-12-07T00:00:00Z\n"
                           f"X-Pit-Prev: {prev}\nX-Pit-Digest: "
                           f"{hashlib.sha256(body).hexdigest()}\n").encode() + body
                    t = time.perf_counter()
                    arch.append([(rec, "notary", "2026-12-07T00:00:00Z")])
                    each.append(time.perf_counter() - t)
                    prev = archive_mod.record_hash(rec)
                times[overlap].append(statistics.median(each))
    archive_mod.OVERLAP_FSYNCS = True
    for overlap, label in ((True, "beside"), (False, "after ")):
        ms = [t * 1000 for t in times[overlap]]
        print(f"  index fsync {label}: median append {min(ms):.2f} ms min over runs, "
              f"{statistics.median(ms):.2f} ms median  ({_load()})")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def latency(rate: float, seconds: float, runs: int, trace_to: str | None = None) -> bool:
    print(f"order -> trade on one host: {rate:g} orders/s for {seconds:g} s, specialist woken "
          f"by the archive's commit ({_load()})")
    p50s, p99s = [], []
    with tempfile.TemporaryDirectory(prefix="pit-bench-lat-") as tmp:
        for r in range(runs):
            if trace_to:
                path = Path(f"{trace_to}.{r + 1}").resolve()
                path.unlink(missing_ok=True)
                trace.enable(path)
                os.environ["PIT_TRACE"] = str(path)     # the server's and the daemon's too
            try:
                lat, pit, cpu = latency_run(Path(tmp) / f"pit{r}", rate, seconds)
            finally:
                trace.disable()
                os.environ.pop("PIT_TRACE", None)
            if trace_to:
                print_breakdown(breakdown(path, pit, len(lat)))
            p50s.append(_pct(lat, 0.50))
            p99s.append(_pct(lat, 0.99))
            print(f"  run {r + 1}: {len(lat)} trades, p50 {p50s[-1] * 1000:.1f} ms, "
                  f"p99 {p99s[-1] * 1000:.1f} ms, worst {max(lat) * 1000:.1f} ms; CPU a pair: "
                  f"server {cpu[0] * 1000:.1f} ms, daemon {cpu[1] * 1000:.1f} ms, traders "
                  f"{cpu[2] * 1000:.1f} ms", flush=True)
    ok = statistics.median(p50s) <= TARGET_P50 and statistics.median(p99s) <= TARGET_P99
    print(f"  p50 min {min(p50s) * 1000:.1f} ms, median {statistics.median(p50s) * 1000:.1f} ms "
          f"[target <= {TARGET_P50 * 1000:.0f} ms]; p99 min {min(p99s) * 1000:.1f} ms, median "
          f"{statistics.median(p99s) * 1000:.1f} ms [target <= {TARGET_P99 * 1000:.0f} ms]: "
          f"{'ok' if ok else 'MISSED'}  ({_load()})")
    return ok


def main(argv: list[str] | None = None) -> int:
    from bench import exit_on_sigterm
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.lmtp", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--fsync-ab", type=int, metavar="N",
                        help="only time N one-record appends a run with the index fsync'd "
                             "beside the data and after it")
    parser.add_argument("--postfix", action=argparse.BooleanOptionalAction, default=True,
                        help="also the throughput through a real Postfix in front (root, "
                             "the postfix package); --no-postfix leaves it out")
    parser.add_argument("--judges", metavar="N[,N...]",
                        help="judge processes of the notary's server in the throughput runs "
                             "(0: it judges inline; default: the server's own choice, "
                             "pit.mailhost.default_judges); several: each run once with each, "
                             "in turn")
    parser.add_argument("--trace", metavar="FILE",
                        help="trace each latency run (pit.trace) to FILE.N and print where "
                             "the time went, hop by hop")
    args = parser.parse_args(argv)
    if args.fsync_ab:
        fsync_ab(args.fsync_ab, args.runs)
        return 0
    ok = True
    try:
        if not args.skip_throughput:
            judges = tuple(int(j) for j in args.judges.split(",")) if args.judges else None
            ok &= throughput(args.n, args.connections, args.runs, judges=judges)
            if args.postfix:
                ok &= throughput(args.n, args.connections, args.runs, postfix=True, judges=judges)
        if not args.skip_latency:
            ok &= latency(args.rate, args.seconds, args.runs, args.trace)
    finally:
        from bench.fixtures import OUT
        testkeys.stop_agents(OUT / "keys")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
