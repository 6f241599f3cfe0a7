"""pit chart: pictures of a ticker from the archive.

One figure, drawn with matplotlib (Agg, no display needed): on the left
the price of every trade and, under it, the volume traded, both against the
record number that made the trade; on the right the depth of the book, the
quantity resting at each price or better, bids and asks.  With ``at`` all
three are as of that record (the book replayed from record 1 up to it).

Same archive, same bytes: the PNG carries no time or software version, the
SVG's element ids come from a fixed salt.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

__all__ = ["draw", "FORMATS"]

FORMATS = ("png", "svg")
BID, ASK, PRICE, VOLUME = "#1a7f37", "#cf222e", "#0550ae", "#8c959f"


def _matplotlib():
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "pit", "svg.fonttype": "path",
                                "font.size": 9, "axes.titlesize": 10,
                                "axes.spines.top": False, "axes.spines.right": False})
    import matplotlib.pyplot as plt
    return plt


def draw(pit, ticker: str, out: str | Path, at: int | None = None, depth: int = 50) -> dict:
    """Draw *ticker*'s chart to *out* (.png or .svg); returns what it drew:
    ``{"path", "trades", "bids", "asks", "last", "at"}``.  O(archive)."""
    from pit import query
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"cannot draw {out.name}: the file name must end in .png or .svg")
    trades = query.trades(pit, ticker, at)
    flt = query.specialist_state(pit, ticker, at)
    book = query.book_levels(flt, ticker, depth)
    plt = _matplotlib()
    fig = plt.figure(figsize=(11, 5.5), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 1), width_ratios=(3, 2), hspace=0.08,
                            wspace=0.22, left=0.07, right=0.97, top=0.9, bottom=0.1)
    price_ax = fig.add_subplot(grid[0, 0])
    volume_ax = fig.add_subplot(grid[1, 0], sharex=price_ax)
    depth_ax = fig.add_subplot(grid[:, 1])
    cur = book["currency"]
    when = f"as of record {at}" if at is not None else "now"
    fig.suptitle(f"{ticker} ({cur}), {when}: {len(trades)} trades, last "
                 f"{book['last'] or '-'}", fontsize=11)
    _prices(price_ax, volume_ax, trades, cur)
    _depth(depth_ax, book, cur)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    fig.savefig(out, format=fmt, metadata=meta)
    plt.close(fig)
    return {"path": str(out), "trades": len(trades), "bids": len(book["bids"]),
            "asks": len(book["asks"]), "last": book["last"], "at": at}


def _prices(ax, vax, trades: list[dict], cur: str) -> None:
    ax.set_title("price of each trade", loc="left")
    ax.set_ylabel(f"price ({cur})")
    vax.set_ylabel("volume")
    vax.set_xlabel("record")
    ax.tick_params(labelbottom=False)
    ax.grid(alpha=0.3)
    vax.grid(alpha=0.3, axis="y")
    if not trades:
        ax.text(0.5, 0.5, "no trades yet", transform=ax.transAxes, ha="center", va="center",
                color=VOLUME)
        return
    seqs = [t["seq"] for t in trades]
    prices = [float(Decimal(t["price"])) for t in trades]
    ax.plot(seqs, prices, color=PRICE, linewidth=1, marker="o", markersize=2)
    # volume in about 60 bins of records, so a burst reads as a bar, not a comb
    lo, hi = min(seqs), max(seqs)
    width = max(1, (hi - lo + 1) // 60 + 1)
    bins: dict[int, float] = {}
    for t in trades:
        b = lo + (t["seq"] - lo) // width * width
        bins[b] = bins.get(b, 0.0) + float(Decimal(t["qty"]))
    xs = sorted(bins)
    vax.bar([x + width / 2 for x in xs], [bins[x] for x in xs], width=width * 0.9,
            color=VOLUME)
    ax.set_xlim(lo - width, hi + width)


def _depth(ax, book: dict, cur: str) -> None:
    ax.set_title("depth of the book (quantity at this price or better)", loc="left")
    ax.set_xlabel(f"price ({cur})")
    ax.set_ylabel("cumulative quantity")
    ax.grid(alpha=0.3)
    drawn = False
    for side, color, label in (("bids", BID, "bids"), ("asks", ASK, "asks")):
        levels = book[side]                     # best first
        if not levels:
            continue
        prices = [float(Decimal(lv["price"])) for lv in levels]
        cum, total = [], 0.0
        for lv in levels:
            total += float(Decimal(lv["qty"]))
            cum.append(total)
        ax.step(prices, cum, where="post", color=color,
                label=f"{label}: {len(levels)} levels, {sum(lv['orders'] for lv in levels)} orders")
        ax.fill_between(prices, cum, step="post", color=color,
                        alpha=0.15)
        drawn = True
    if book["last"]:
        ax.axvline(float(Decimal(book["last"])), color=PRICE, linewidth=0.8, linestyle="--",
                   label=f"last {book['last']}")
    if drawn:
        ax.legend(loc="upper center", frameon=False)
    else:
        ax.text(0.5, 0.5, "the book is empty", transform=ax.transAxes, ha="center",
                va="center", color=VOLUME)
