"""pit mirror SRC DST: replicate a pit's archive, compare, and check its log."""

from __future__ import annotations

from pathlib import Path

from pit import mbox
from pit.archive import Archive, ArchiveError
from pit.commands.common import EXIT, CliError, end_progress, fingerprint, progress


def arguments(cmd) -> None:
    sp = cmd("mirror", run, "replicate a pit's archive (public material only) with "
             "rsync, compare, and check its log",
             ["pit mirror pit-host:/srv/pits/demo ~/mirrors/demo && pit audit ~/mirrors/demo",
              "pit mirror rsync://pit-host/pits/demo ~/mirrors/demo",
              "pit mirror demo-pit /backup/demo"])
    sp.add_argument("src"); sp.add_argument("dst")
    sp.add_argument("--notary", metavar="FPR", help="the notary key the replica must expect "
                    "(default: the genesis record's, pinned on the first mirror)")


def run(args) -> int:
    """Copy the archive (and nothing else), compare it with the source, and
    check the copy's log against the newest head this replica verified."""
    from pit import mirror, replica
    from pit.kinds.rules import genesis_rules
    from pit.audit import audit
    show = progress("mirror")
    dst = Path(args.dst)
    if (dst / "pit.conf").exists():
        raise CliError(f"{dst} is a pit, not a replica: give another directory", EXIT["usage"])
    notary = fingerprint(args.notary) if args.notary else None
    snap = None
    try:
        try:
            remembered = replica.load_state(dst).size
        except ValueError as e:
            raise CliError(str(e)) from None
        if remembered:
            snap = mirror.keep_verified(dst)
        changed = mirror.mirror(args.src, dst)
        show(len(changed))
        end_progress()
        diffs = mirror.compare(args.src, dst)
        grown = mirror.grown(args.src, dst, diffs) if diffs else None
    except mirror.MirrorError as e:
        raise CliError(str(e)) from None
    names = sorted({d.split(": ", 1)[0] for d in diffs}, key=lambda n: (n != "index", n))
    print(f"{len(changed)} files brought over; replica {dst} "
          + ("is identical to the source (rsync --checksum)" if not diffs
             else f"is the source as of record {grown[0]}; the source has grown since (now "
                  f"{grown[1]} records: {', '.join(names)})" if grown
             else "DIFFERS from the source: " + "; ".join(diffs)))
    stray = mirror.strays(dst)
    if stray:
        print(f"warning: {dst}/archives holds files that are not the archive (an older pit "
              f"mirror copied them; remove them): {', '.join(stray)}")
    try:
        first = next(Archive(dst).read(1, 1), None)
        st = mbox.stamp(first[1]) if first else {}
    except (ArchiveError, mbox.MboxError):
        st = {}                        # the log check below says what is wrong
    words = st.get("x-pit-request", "").split(" ")
    conf = dst / replica.REPLICA_CONF
    conf_before = conf.read_bytes() if conf.exists() else None      # put back if refused
    if st.get("x-pit-kind") == "genesis" and genesis_rules(" ".join(words)) \
            and words[0] == "notary" and words[2] == "operator":
        # the genesis' notary key is pinned on the first mirror unless --notary says
        replica.write_replica_conf(dst, args.src, st.get("x-pit-pit", ""), words[1], words[3])
    result = audit(dst, progress=progress("log check"), notary=notary, remember=True,
                   log_only=True)
    end_progress()
    if result.ok:
        head = result.newest_head
        since = result.since
        print(f"log of {result.records} records checked"
              + ("" if result.mode != "incremental" else
                 f" (no record new since the auditor's state at record {since}, which holds "
                 f"them verified)" if since == result.records else
                 f" (records {since + 1}-{result.records}: those before, the "
                 f"auditor's state at record {since} holds verified)") + ": chain, digests, "
              f"{result.seals} seals and {result.heads} signed tree heads by notary "
              f"{result.notary}" + (f"; newest head: {head[1]} records, root {head[2]}" if head else "")
              + (f"; it {result.consistency}" if result.consistency else
                 "; remembered as this replica's first verified head" if head else
                 "; no signed tree head to remember yet (its seals predate them)"))
    elif snap is not None:
        try:
            where = mirror.first_difference(snap, dst)
        except (ArchiveError, mbox.MboxError, OSError) as e:
            where = f"the new copy cannot be read record by record: {e}"
        refused = mirror.put_back(dst, snap)
        if conf_before is not None:        # the verified copy's pit, not the refused one's
            tmp = conf.with_name(conf.name + ".tmp")
            tmp.write_bytes(conf_before)
            tmp.replace(conf)
        print(f"log check FAILED: the replica keeps the copy it verified; what the source "
              f"holds now is in {refused} for you to inspect ({where}):")
        print(result.problem)
    else:
        print("log check FAILED:")
        print(result.problem)
    if snap is not None and snap.exists():
        import shutil
        shutil.rmtree(snap)
    return 0 if (not diffs or grown) and result.ok else 1
