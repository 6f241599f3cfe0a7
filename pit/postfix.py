"""The Postfix pieces of pits on Mailman: ``pit mailman postfix-config``.

For any number of local pits (each provisioned with ``pit mailman
provision``) it writes what Postfix needs besides Mailman's own maps:

* ``pit_transport`` -- a transport map, consulted before Mailman's
  ``postfix_lmtp``: each pit's posting address to the notary's LMTP server,
  each filter's address (``demo-transfers@``, ``demo-specialist-acme@``) to a
  ``pipe`` service running ``pit mailman deliver``, the archive address
  (``<pit>-archive@``) to ``discard:`` (the notary writes the archive
  itself; the list copy only proves the list delivers), and the notary's
  address (the list's moderator, which Mailman may write to) to
  ``discard:`` too.  Every address the
  pit subscribes in its own domain has a route, so no list copy bounces and
  no member's bounce score moves.
* ``pit_domains`` -- the pits' domains, for ``relay_domains``.
* ``main.cf.pit`` -- the main.cf lines that use them: ``transport_maps``,
  ``relay_domains`` and ``relay_recipient_maps`` list the pit's maps before
  Mailman's.  ``local_recipient_maps`` and everything else of local delivery
  are left as they are: a pit's domain is a relay domain, never in
  ``mydestination``.
* ``master.cf.pit`` -- one ``pipe`` service per filter, run as the pits'
  own system user (``pipe`` refuses root).

Nothing here talks to Postfix: the operator (or a test) copies the lines
in and runs ``postmap``.  docs/mailman.md has the whole picture.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostfixError", "PitMailRoutes", "pit_routes", "postfix_config", "write_config"]


class PostfixError(RuntimeError):
    """A pit that cannot be routed as asked, with the reason."""


@dataclass(frozen=True)
class PitMailRoutes:
    """What one pit needs routed: its addresses and its filters."""
    root: Path
    name: str
    domain: str
    list_address: str
    archive_address: str
    notary_address: str
    filters: tuple[tuple[str, tuple[str, ...], str], ...]     # (kind, args, address)


def pit_routes(pit_dir: str | os.PathLike) -> PitMailRoutes:
    """The routes of the provisioned local pit at ``pit_dir``.  O(archive)
    (the pit's instruments decide its specialists)."""
    from pit import ops
    from pit.mailman import filter_jobs, filter_list_address
    from pit.pitdir import Pit
    pit = Pit(pit_dir)
    address = pit.get("mailman_list")
    if not address:
        raise PostfixError(f"{pit.root} is not on Mailman yet: run 'pit mailman provision' first")
    domain = address.partition("@")[2]
    filters = []
    for job in filter_jobs(pit.root):
        name = ops.filter_class(job[0])(job[1:]).name
        filters.append((job[0], tuple(job[1:]), filter_list_address(pit.name, name, domain)))
    return PitMailRoutes(pit.root.resolve(), pit.name, domain, address.lower(),
                         (pit.get("mailman_archive") or f"{pit.name}-archive@{domain}").lower(),
                         f"{pit.name}-notary@{domain}".lower(), tuple(filters))


def _service(pit: PitMailRoutes, address: str) -> str:
    """The master.cf service name of a filter's pipe: ``pit-<pit>-<filter slug>``."""
    return "pit-" + re.sub(r"[^a-z0-9-]+", "-", address.partition("@")[0].lower())


def postfix_config(pits: list[PitMailRoutes], notary: tuple[str, int] = ("127.0.0.1", 8025),
                   mailman_data: str = "/var/lib/mailman3/data",
                   config_dir: str = "/etc/postfix", user: str = "pit",
                   pit_command: str = "/usr/local/bin/pit",
                   filters: str = "pipe") -> dict[str, str]:
    """The four files (name -> text) for ``pits``; see the module's doc.

    ``filters`` says how the filters run: ``pipe`` (a ``pipe`` service
    each, run by every list copy to the filter's address) or ``daemon``
    (``pit mailman daemon`` each, woken by the archive's commits; the list
    copies to their addresses are discarded, and master.cf.pit names the
    daemons' commands instead of services).

    ``notary`` is ``pit mailman serve``'s listening address (the filters
    post there too), ``mailman_data`` Mailman's data directory (where it
    writes ``postfix_lmtp`` and ``postfix_domains``), ``config_dir`` where
    ``pit_transport`` and ``pit_domains`` will live, ``user`` the pits'
    system user and ``pit_command`` the ``pit`` program (a path, or words
    such as ``/usr/bin/env PYTHONPATH=... python3 -m pit.cli``).  Refuses
    paths with white space (master.cf splits on it), a user named root, and
    two pits sharing an address."""
    if user == "root" or not re.fullmatch(r"[a-z_][a-z0-9_-]*", user):
        raise PostfixError(f"user {user!r}: the pipe runs as a dedicated user, not root")
    for path in (mailman_data, config_dir, *(str(p.root) for p in pits)):
        if re.search(r"\s", path):
            raise PostfixError(f"{path!r}: master.cf and main.cf cannot take a path with spaces")
    if filters not in ("pipe", "daemon"):
        raise PostfixError(f"filters {filters!r}: pipe or daemon")
    lmtp = f"{notary[0]}:{notary[1]}"
    transport, seen, master = [], {}, []
    for pit in sorted(pits, key=lambda p: p.list_address):
        routes = [(pit.list_address, f"lmtp:inet:{lmtp}"),
                  (pit.archive_address, "discard:"),
                  (pit.notary_address, "discard:")]
        for kind, args, address in pit.filters:
            service = _service(pit, address)
            command = f"{pit_command} --pit {pit.root} mailman"
            if filters == "daemon":
                routes.append((address, "discard:"))
                master.append(f"#   {service}: as {user}: {command} daemon "
                              f"{' '.join([kind, *args])} --lmtp {lmtp}\n")
                continue
            routes.append((address, f"{service}:"))
            master.append(f"{service} unix - n n - - pipe\n"
                          f"  user={user} argv={command} deliver "
                          f"{' '.join([kind, *args])} --lmtp {lmtp}\n")
        transport.append(f"# pit {pit.name} ({pit.root})")
        for address, route in routes:
            if address in seen:
                raise PostfixError(f"{address} is routed twice ({seen[address]} and {pit.root})")
            seen[address] = pit.root
            transport.append(f"{address} {route}")
    domains = sorted({p.domain for p in pits})
    main = (
        "# pits on Mailman (pit mailman postfix-config): the pits' addresses\n"
        "# first, then Mailman's; local delivery is left as it is.\n"
        f"transport_maps = hash:{config_dir}/pit_transport, hash:{mailman_data}/postfix_lmtp\n"
        f"relay_domains = hash:{config_dir}/pit_domains, hash:{mailman_data}/postfix_domains\n"
        f"relay_recipient_maps = hash:{config_dir}/pit_transport, hash:{mailman_data}/postfix_lmtp\n")
    header = "# written by 'pit mailman postfix-config'; run postmap on it after each change\n"
    return {
        "pit_transport": header + "\n".join(transport) + "\n",
        "pit_domains": header + "".join(f"{d} pit\n" for d in domains),
        "main.cf.pit": main,
        "master.cf.pit": (
            "# pit filters: each delivery to a filter's address runs it once\n"
            "# (exit 75 defers, see 'pit mailman deliver')\n" if filters == "pipe" else
            "# pit filters run as daemons woken by the archive's commits, no pipe\n"
            "# service; their list copies are discarded (pit_transport).  Run each\n"
            "# (deploy/systemd/pit-filter@.service):\n") + "".join(master),
    }


def write_config(files: dict[str, str], directory: str | os.PathLike) -> list[Path]:
    """Write ``files`` into ``directory`` (each atomically); return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        path = directory / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        written.append(path)
    return written
