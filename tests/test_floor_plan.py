"""The floor plan of pit's modules, enforced: each module is on one floor
and imports only from its own floor or below, wherever the import stands
(at the top, or inside a function); the filters and the moderator, side by
side on one floor, do not import each other; and no two modules import
each other, directly or round a longer circle.  A new module is put on a
floor here.

    4 programs     pit.cli, pit.commands.*, pit.demo
    3 operations   pit.ops, pit.query, pit.audit, pit.daemon, pit.mailman, ...
    2 filters      filters.* (specialist, transfers, positions)  |  moderator.* (the notary)
    1 library      signatures, keys, the pit directory, the filter protocol, ...
    0 core         units, record, grammar, message kinds, message, mbox,
                   archive, book, bookstate, ledger, merkle

(docs/architecture.md draws it.)  Imports under ``if TYPE_CHECKING:`` are
for type checkers and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pit", "filters", "moderator")

CORE = {"pit", "pit.units", "pit.tickerset", "pit.record", "pit.grammar", "pit.kinds", "pit.message", "pit.mbox",
        "pit.archive", "pit.book", "pit.bookstate", "pit.ledger", "pit.merkle", "pit.trace"}
LIBRARY = {"pit.signed", "pit.openpgp", "pit.keystore", "pit.keyring", "pit.signer",
           "pit.testkeys", "pit.pitdir", "pit.filter", "pit.progress", "pit.agents",
           "pit.replica", "pit.auditstate", "pit.search", "pit.mirror", "pit.mailhost", "pit.lmtpserver",
           "pit.watch", "pit.notarystate"}
OPERATIONS = {"pit.ops", "pit.query", "pit.audit", "pit.daemon", "pit.mailman", "pit.postfix",
              "pit.chart"}
PROGRAMS = {"pit.cli", "pit.commands", "pit.demo"}
RANK = {"core": 0, "library": 1, "filters": 2, "moderator": 2, "operations": 3, "programs": 4}


def floor(module: str) -> str | None:
    if module in CORE or module.startswith("pit.kinds."):
        return "core"
    if module in LIBRARY:
        return "library"
    if module == "filters" or module.startswith("filters."):
        return "filters"
    if module == "moderator" or module.startswith("moderator."):
        return "moderator"
    if module in OPERATIONS:
        return "operations"
    if module in PROGRAMS or module.startswith("pit.commands."):
        return "programs"
    return None


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, known) -> set[str]:
    """The modules of *known* that *name* imports, anywhere in its text."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                for c in child.orelse:
                    visit(c)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for a in child.names:
                    out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_floor():
    lost = sorted(m for m in modules() if floor(m) is None)
    assert not lost, f"put these on a floor in tests/test_floor_plan.py: {lost}"


def test_no_module_imports_from_a_floor_above():
    wrong = []
    for name, deps in sorted(graph().items()):
        here = floor(name) or "programs"
        for dep in sorted(deps):
            there = floor(dep) or "programs"
            if RANK[there] > RANK[here] or (RANK[there] == RANK[here] and there != here):
                wrong.append(f"{name} ({here}) imports {dep} ({there})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:            # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """Not fooled by the usual hiding place of a circle, nor by type hints."""
    sample = tmp_path / "a.py"
    sample.write_text("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from pit import c\n\n"
                      "def f():\n    from pit import b\n    from . import d\n")
    known = {"pit.a", "pit.b", "pit.c", "pit.d"}
    assert imports("pit.a", sample, known) == {"pit.b", "pit.d"}
