"""Seeded, realistic order streams for benchmarks (the core, the replay, the archive).

``make_stream(n, seed)`` returns *n* message tuples in the layout of
``pit.book.Engine.run``, for one instrument (default ``ACME``), with
``seq == oid`` counting from 1.  Same arguments, same list: the generator uses
its own ``random.Random(seed)`` and integer arithmetic only.

The mix, per message (roughly): 45% new limit orders clustered around a mid
price that drifts by a random walk, depth falling off geometrically away from
it (about 6% of them priced through the mid, so they trade); 15% IOC orders
a couple of ticks through the mid; 33% cancels of live orders (so most limit
orders are cancelled: some cancels arrive after a fill and are rejected, as in
life); 4% modifies (half reprices, half size increases); 2% market orders;
1% stops (stop-loss, stop-limit, take-profit) a few ticks away from the mid.

``make_stream(n, seed, modify_heavy=True)`` is the flow of a venue where
orders are repriced and resized more than they are cancelled, as market
makers requote (and as public matching-engine benchmarks drive their
books): 30% new limit orders, 10% IOC, 15% cancels, 42% modifies (a third
of them size decreases, which keep priority; the rest reprices by up to
three ticks or size increases), 2% market orders, 1% stops.
"""

from __future__ import annotations

import random

from pit.book import (BUY, CANCEL, IOC, LIMIT, MARKET, MODIFY, NEW, SELL, STOP_LIMIT,
                      STOP_LOSS, TAKE_PROFIT)

OWNERS = tuple(f"trader{i:02d}" for i in range(40))


# (limit, IOC, cancel, modify, market) thresholds of the draw; stops take the rest
_MIX = (0.45, 0.60, 0.93, 0.97, 0.99)
_MODIFY_HEAVY_MIX = (0.30, 0.40, 0.55, 0.97, 0.99)


def make_stream(n: int, seed: int = 1, ticker: str = "ACME", mid: int = 10_000,
                modify_heavy: bool = False) -> list:
    """*n* messages as ``Engine.run`` tuples.  O(n)."""
    p_limit, p_ioc, p_cancel, p_modify, p_market = _MODIFY_HEAVY_MIX if modify_heavy else _MIX
    rng = random.Random(seed)
    rand, randrange = rng.random, rng.randrange
    live: list = []           # (oid, owner, side, price, qty) of orders that may still rest
    out: list = []
    append = out.append
    for seq in range(1, n + 1):
        if seq % 64 == 0:     # the mid drifts
            mid += randrange(-3, 4)
            mid = max(mid, 200)
        r = rand()
        side = BUY if rand() < 0.5 else SELL
        sign = -1 if side == BUY else 1          # passive direction
        owner = OWNERS[randrange(len(OWNERS))]
        if r < p_limit:
            # depth falls off away from the mid: geometric distance in ticks
            d = 1
            while rand() < 0.85 and d < 200:
                d += 1
            if rand() < 0.06:
                d = -randrange(0, 4)             # aggressive: crosses
            price = mid + sign * d
            qty = 1 + randrange(10) * (1 + randrange(10))
            append((NEW, seq, seq, owner, ticker, side, LIMIT, qty, price, 0, 0))
            live.append((seq, owner, side, price, qty))
        elif r < p_ioc:
            price = mid - sign * randrange(0, 3)
            qty = 1 + randrange(20)
            append((NEW, seq, seq, owner, ticker, side, IOC, qty, price, 0, 0))
        elif r < p_cancel and live:
            # cancel a live order, more often a recent one (some have filled meanwhile)
            i = len(live) - 1 - min(int(rng.expovariate(1 / 400)), len(live) - 1)
            live[i], live[-1] = live[-1], live[i]
            oid, own, _, _, _ = live.pop()
            append((CANCEL, seq, oid, own))
        elif r < p_modify and live:
            i = randrange(len(live))
            oid, own, s, price, qty = live[i]
            if modify_heavy and rand() < 1 / 3:
                qty = max(1, qty - 1 - randrange(qty))   # a decrease: keeps its priority
            elif rand() < 0.5:
                price = max(1, price + randrange(-3, 4))
            else:
                qty += 1 + randrange(10)
            live[i] = (oid, own, s, price, qty)
            append((MODIFY, seq, oid, own, qty, price))
        elif r < p_market:
            qty = 1 + randrange(30)
            cap = (mid + 50) * qty if side == BUY and rand() < 0.5 else 0
            append((NEW, seq, seq, owner, ticker, side, MARKET, qty, 0, 0, cap))
        else:
            kind = (STOP_LOSS, STOP_LIMIT, TAKE_PROFIT)[randrange(3)]
            qty = 1 + randrange(20)
            away = 2 + randrange(20)
            # stop-loss/stop-limit buys wait above the mid, take-profit buys below
            up = (side == BUY) != (kind == TAKE_PROFIT)
            stop = mid + away if up else max(1, mid - away)
            limit = stop + (3 if side == BUY else -3) if kind == STOP_LIMIT else 0
            append((NEW, seq, seq, owner, ticker, side, kind, qty, max(0, limit), stop, 0))
    return out


def resting_orders(n: int, seed: int = 1, ticker: str = "ACME", mid: int = 10_000):
    """Yield *n* non-crossing limit orders (bids below *mid*, asks above), for
    measuring memory per resting order.  O(n) total."""
    rng = random.Random(seed)
    rand, randrange = rng.random, rng.randrange
    for seq in range(1, n + 1):
        side = BUY if rand() < 0.5 else SELL
        d = 1
        while rand() < 0.99 and d < 2000:
            d += 1
        price = mid - d if side == BUY else mid + d
        yield (NEW, seq, seq, OWNERS[randrange(len(OWNERS))], ticker, side, LIMIT,
               1 + randrange(100), price, 0, 0)
