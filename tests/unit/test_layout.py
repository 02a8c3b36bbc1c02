"""The shape of the package (issue 10), read from the code's own imports with ast: modules stay small, the
engine and the commands built on it speak the contract only, each outside library has one home, and no two
modules need each other.

A failure names the module and the import; the fix is to move the code where its name says, not to widen
the lists below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gimport"
MAX_LINES = 400

# What the migration and the commands built on it may not import: the backends, the wiring, what people see
# (render, cli), and every outside library a backend wraps. They speak gimport.contract.
CORE = [
    "gimport.contract",
    "gimport.calls",
    "gimport.errors",
    "gimport.accounting",
    "gimport.selection",
    "gimport.mapping",
    "gimport.labels",
    "gimport.budget",
    "gimport.account",
    "gimport.newstate",
    "gimport.rfc822",
    "gimport.pacer",
    "gimport.daily",
    "gimport.engine",
    "gimport.scan",
    "gimport.fetch",
    "gimport.plan",
    "gimport.verify",
    "gimport.cleanup",
    "gimport.proof",
]
NOT_IN_CORE = ("gimport.backends", "gimport.wiring", "gimport.render", "gimport.cli", "gimport.admin")

# the pieces are built in one place (gimport.wiring); `gimport auth` is about the OAuth grant itself
BACKEND_USERS = ("gimport.backends", "gimport.wiring", "gimport.cli.auth")

# each outside library -> the module name prefixes allowed to import it
HOMES = {
    "imapclient": ("gimport.backends.imap",),
    "googleapiclient": ("gimport.backends.google.gmail",),
    "google_auth_oauthlib": ("gimport.backends.google.exchange",),
    "google": ("gimport.backends.google.",),  # google-auth
    "httplib2": ("gimport.backends.google.",),
    "google_auth_httplib2": ("gimport.backends.google.",),
    "requests": ("gimport.backends.google.",),
    "sqlite3": ("gimport.backends.state",),
    "tqdm": ("gimport.render.",),
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """Every name `module` imports, anywhere in it (lazy imports and TYPE_CHECKING ones too: a dependence
    is one wherever it is written). `from pkg import sub` counts as importing the module pkg.sub."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            subs = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(subs or {base})
    return found


IMPORTS = {m: _imports(m) for m in MODULES}


def test_the_walk_sees_the_package():
    # the checks below mean nothing if the walk finds nothing: the engine's own imports are seen
    assert {"gimport.scan", "gimport.fetch", "gimport.contract"} <= IMPORTS["gimport.engine"]
    assert "gimport.cli.main" in IMPORTS["gimport.cli"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_400_lines(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines: split it by responsibility"


@pytest.mark.parametrize("module", CORE)
def test_the_core_speaks_the_contract_only(module):
    assert module in MODULES, f"{module} is gone: update CORE"
    wrong = sorted(name for name in IMPORTS[module] if name.startswith(NOT_IN_CORE) or name.split(".")[0] in HOMES)
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize("library", sorted(HOMES))
def test_each_outside_library_has_one_home(library):
    users = sorted(m for m, names in IMPORTS.items() if any(n.split(".")[0] == library for n in names))
    assert users, f"nothing imports {library} any more: drop it from HOMES"
    strays = [m for m in users if not m.startswith(HOMES[library])]
    assert not strays, f"{library} is imported outside its home: {strays}"


def test_only_the_wiring_builds_backends():
    users = sorted(m for m, names in IMPORTS.items() if any(n.startswith("gimport.backends") for n in names))
    assert "gimport.wiring" in users
    strays = [m for m in users if not m.startswith(BACKEND_USERS)]
    assert not strays, f"these import a backend instead of asking gimport.wiring: {strays}"


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    graph = {m: sorted(n for n in names if n in MODULES and n != m) for m, names in IMPORTS.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(graph[node]):
                work.append((node, i + 1))
                nxt = graph[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_no_two_modules_need_each_other():
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle(monkeypatch):
    monkeypatch.setitem(IMPORTS, "gimport.scan", IMPORTS["gimport.scan"] | {"gimport.engine"})
    assert ["gimport.engine", "gimport.fetch", "gimport.scan"] in _cycles()
