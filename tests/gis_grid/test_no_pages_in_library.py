"""The library returns data and ``web`` renders it: no gis_grid module builds or serves a page.

Read from the source (every import, also those inside functions), so an import that only
runs on some path cannot slip through. ``gis_grid/cli.py`` is the command-line entry point
and may call the pages (``gis-grid map``).
"""
from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "gis_grid"
PAGE_PACKAGES = {"web", "api", "folium", "branca", "jinja2"}


def _imported_top_levels(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_library_imports_no_page_code():
    offenders = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        if path == LIBRARY / "cli.py":
            continue
        bad = _imported_top_levels(ast.parse(path.read_text(encoding="utf-8"))) & PAGE_PACKAGES
        if bad:
            offenders[str(path.relative_to(LIBRARY.parent))] = sorted(bad)
    assert offenders == {}
