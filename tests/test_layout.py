"""The library's layout contract, read from the source with ``ast``:

* no import cycles between modules of ``gis_grid``;
* no module of ``gis_grid`` except ``gis_grid/cli.py`` imports the web layer (FastAPI, Starlette,
  uvicorn, the ``api`` and ``web`` packages) or page building (folium, branca, jinja2), so the
  library stays usable without them and the app depends on the library, never the reverse;
* every ``raise X(...)`` in ``gis_grid`` names a :class:`~gis_grid.errors.GisGridError` (this one
  check imports the modules, to resolve the names).

Every import statement counts, also those inside functions (a lazy import still ties the modules
together) and under ``if TYPE_CHECKING:``; ``__import__``/``importlib`` calls with computed
names are not seen. A failure lists each offending import as ``file:line: statement``.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.store_free  # reads source files only

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gis_grid"
FORBIDDEN = {"fastapi", "starlette", "uvicorn", "api", "web", "folium", "branca", "jinja2"}
MAY_USE_WEB = {f"{PACKAGE}/cli.py"}  # the command line starts the server (`gis-grid serve`)


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the package (a package is its __init__)."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(line, statement, imported module names) for each import statement in one module.

    Relative imports are resolved against the module's package. ``from X import y`` imports the
    submodule X.y when there is one, else X itself.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node.lineno, ast.unparse(node), [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 >= len(base):
                    continue  # above the top of the package: an error Python would report
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            names = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            yield node.lineno, ast.unparse(node), names


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _graph():
    """Edges importer -> imported between gis_grid modules, each with the import lines that make it.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so it is an edge to those
    packages too, except to the importer's own packages: they are always imported before the
    importer runs, so a package whose ``__init__`` imports its own submodules (re-exports) is
    normal and not a cycle. A submodule importing a name from its own package's ``__init__``
    (``from gis_grid.planning import Plan`` inside gis_grid/planning/) still counts.
    """
    modules = _modules()
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, path in modules.items():
        own = set(_ancestors(name)) | ({name} if path.name == "__init__.py" else set())
        for line, statement, targets in _imports(name, path, modules):
            where = f"{path.relative_to(ROOT)}:{line}: {statement}"
            for target in targets:
                implied = [a for a in _ancestors(target) if a not in own]
                for dep in [target, *implied]:
                    if dep in modules and dep != name and where not in edges[name][dep]:
                        edges[name][dep].append(where)
    return modules, edges


def _cycles(nodes, edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(found)


def _cycle_report() -> tuple[list[list[str]], list[str]]:
    """The cycles, and for each of its edges the first import line making it (and how many more)."""
    modules, edges = _graph()
    cycles = _cycles(modules, edges)
    report = []
    for component in cycles:
        report.append("cycle: " + " <-> ".join(component))
        for a in component:
            for b in component:
                lines = edges[a].get(b)
                if lines:
                    more = f"  (+{len(lines) - 1} more)" if len(lines) > 1 else ""
                    report.append(f"  {a} -> {b}: {lines[0]}{more}")
    return cycles, report


def _web_imports() -> list[str]:
    modules = _modules()
    offending = []
    for name, path in modules.items():
        if path.relative_to(ROOT).as_posix() in MAY_USE_WEB:
            continue
        for line, statement, targets in _imports(name, path, modules):
            if any(t.split(".")[0] in FORBIDDEN for t in targets):
                offending.append(f"{path.relative_to(ROOT)}:{line}: {statement}")
    return offending


def test_no_import_cycles():
    cycles, report = _cycle_report()
    if cycles:
        pytest.fail("import cycles between gis_grid modules:\n" + "\n".join(report), pytrace=False)


def test_library_imports_no_web_stack():
    offending = _web_imports()
    if offending:
        pytest.fail("gis_grid imports the web stack (only gis_grid/cli.py may):\n" + "\n".join(offending), pytrace=False)


def test_the_import_graph_sees_lazy_relative_and_package_imports(tmp_path, monkeypatch):
    """The rules above on a made-up package: a cycle through a function-level relative import is
    found, a package re-exporting its submodules is not a cycle by itself, a web import is reported."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from . import b\n",                     # lazy, relative, a submodule
        "b.py": "from gis_grid.a import f\n",                           # back to a: a cycle
        "c.py": "from .sub import thing\n",                             # gis_grid.sub, i.e. its __init__
        "sub/__init__.py": "from .inner import thing\n",                # re-exports its submodule
        "sub/inner.py": "from .. import c as _\nthing = 1\nimport folium\n",  # c -> sub -> inner -> c
        "sub/leaf.py": "from gis_grid.sub import inner\n",              # own package: no edge to sub
        "sub/named.py": "from gis_grid.sub import thing\n",             # a name from its __init__: an edge
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    cycles, report = _cycle_report()
    assert cycles == [["gis_grid.a", "gis_grid.b"], ["gis_grid.c", "gis_grid.sub", "gis_grid.sub.inner"]]
    assert "  gis_grid.a -> gis_grid.b: gis_grid/a.py:2: from . import b" in report
    _, edges = _graph()
    assert set(edges["gis_grid.sub.leaf"]) == {"gis_grid.sub.inner"}
    assert set(edges["gis_grid.sub.named"]) == {"gis_grid.sub"}
    assert _web_imports() == ["gis_grid/sub/inner.py:3: import folium"]


def test_the_testing_helpers_load_without_pytest():
    """gis_grid.testing is importable where pytest is not installed: pytest only inside functions."""
    path = ROOT / PACKAGE / "testing.py"
    top = [node for node in ast.parse(path.read_text(encoding="utf-8")).body
           if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names] + \
            [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in FORBIDDEN | {"pytest", "_pytest"}], names


def test_every_error_the_library_raises_is_a_gis_grid_error():
    """`raise SomeError(...)` in gis_grid names a GisGridError subclass (api/errors.py maps those to 4xx/5xx
    and the CLI prints them as one line); re-raising a caught exception is not a new error and is skipped."""
    import builtins
    import importlib

    from gis_grid.errors import GisGridError

    allowed = {"NotImplementedError"}  # abstract methods
    offending = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)
                  and isinstance(n.exc.func, (ast.Name, ast.Attribute))]
        if not raises:
            continue
        namespace = {**vars(builtins), **vars(importlib.import_module(name))}
        for node in raises:
            expr = ast.unparse(node.exc.func)  # ValueError, errors.NotFoundError, ...
            if expr in allowed:
                continue
            try:
                cls = eval(expr, namespace)  # noqa: S307 - a dotted name from our own source
            except Exception:  # noqa: BLE001 - a name bound only inside a function: reported, not guessed
                cls = None
            if not (isinstance(cls, type) and issubclass(cls, GisGridError)):
                offending.append(f"{path.relative_to(ROOT)}:{node.lineno}: raise {expr}(...)")
    assert not offending, "raise a gis_grid.errors class instead:\n" + "\n".join(offending)
