"""The shape of the package, read from the code's own imports with ast: modules and functions stay
small, the engine and the commands built on it speak the contract only, each outside library has one home, and
no two modules need each other.

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
MAX_FUNCTION_LINES = 80  # from `def` to its last line: a longer function does several things; name each

# The layers, bottom up, read from the folders: a module's layer is its package (a module at the package's
# root is "shared"). A module may import its own layer and the layers below it, never one above. The
# backends stand beside the core: they implement the contract (shared) from the foundations, and only the
# wiring builds them (`gimport auth` too: it is about the OAuth grant itself).
LAYERS = (
    ("shared",),  # gimport/*.py: the contract, errors, the call path, i18n, logs, files
    ("config", "pacing", "mail"),  # typed settings, pacing that knows nothing of Gmail, pure mail rules
    ("engine",),  # one mailbox's migration
    ("operations",),  # plan, verify, cleanup: data, never printed
    ("backends",),  # IMAP, Gmail, the state file, local files: the contract's implementations
    ("wiring",),  # settings -> pieces: the one place that builds backends
    ("admin",),  # many mailboxes
    ("render",),  # everything a person reads
    ("cli", "__main__"),  # the command line
)
CORE = ("config", "pacing", "mail", "engine", "operations")  # no backend, and no outside library
BACKEND_USERS = ("gimport.backends", "gimport.wiring", "gimport.cli.auth")
MAX_SHARED = 12  # modules at the package root, besides __init__ and __main__

# each outside library -> the packages allowed to import it
HOMES = {
    "imapclient": ("gimport.backends.imap.",),
    "googleapiclient": ("gimport.backends.google.gmail",),
    "google_auth_oauthlib": ("gimport.backends.google.exchange",),
    "google": ("gimport.backends.google.",),  # google-auth
    "httplib2": ("gimport.backends.google.",),
    "google_auth_httplib2": ("gimport.backends.google.",),
    "requests": ("gimport.backends.google.", "gimport.backends.microsoft."),  # MSAL raises requests' errors
    "msal": ("gimport.backends.microsoft.",),
    "sqlite3": ("gimport.backends.state.",),
    "tqdm": ("gimport.render.",),
    "dateutil": ("gimport.mail.dates",),
    "budoux": ("gimport.render.wrap",),
    "wcwidth": ("gimport.render.wrap",),
}
# outside libraries that are pure functions (no I/O, no clock): the core may use them, each in its home
PURE = {"dateutil"}


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
    assert {"gimport.engine.scan", "gimport.engine.fetch", "gimport.contract"} <= IMPORTS["gimport.engine.migration"]
    assert "gimport.cli.main" in IMPORTS["gimport.cli"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_400_lines(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines: split it by responsibility"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_is_over_80_lines(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    long = [
        f"{node.name} (line {node.lineno}: {node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{MODULES[module].relative_to(ROOT)}: split into well-named pieces: {long}"


def _place(module: str) -> str:
    """The folder that says a module's layer: its subpackage, or "shared" / "wiring" / "__main__" at the root."""
    parts = module.split(".")
    if len(parts) == 1:
        return "shared"
    if MODULES[module].parent == PACKAGE and MODULES[module].name != "__init__.py":
        return parts[1] if parts[1] in ("wiring", "__main__") else "shared"
    return parts[1]


def _layer(module: str) -> int:
    place = _place(module)
    return next(i for i, names in enumerate(LAYERS) if place in names)


def test_every_folder_has_a_layer():
    places = {_place(m) for m in MODULES}
    known = {name for names in LAYERS for name in names}
    assert places <= known, f"put these folders in LAYERS: {sorted(places - known)}"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} <= known


def test_the_root_keeps_only_what_every_layer_shares():
    shared = sorted(m for m in MODULES if _place(m) == "shared" and m != "gimport")
    assert len(shared) <= MAX_SHARED, f"{len(shared)} modules at the root: move some into their layer: {shared}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    above = sorted(
        name for name in IMPORTS[module] if name in MODULES and _layer(name) > _layer(module) and name != "gimport"
    )
    assert not above, f"{module} ({_place(module)}) imports from a layer above it: {above}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _place(m) in CORE))
def test_the_core_imports_no_backend_and_no_outside_library(module):
    wrong = sorted(
        name
        for name in IMPORTS[module]
        if name.startswith("gimport.backends") or name.split(".")[0] in HOMES.keys() - PURE
    )
    assert not wrong, f"{module} imports {wrong}"


def test_the_backends_reach_no_layer_above_the_foundations():
    wrong = {
        m: sorted(n for n in IMPORTS[m] if n in MODULES and _layer(n) > 1 and not n.startswith("gimport.backends"))
        for m in MODULES
        if _place(m) == "backends"
    }
    assert not {m: names for m, names in wrong.items() if names}


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
    monkeypatch.setitem(IMPORTS, "gimport.engine.scan", IMPORTS["gimport.engine.scan"] | {"gimport.engine.migration"})
    cycles = _cycles()
    assert any({"gimport.engine.migration", "gimport.engine.scan"} <= set(c) for c in cycles)
