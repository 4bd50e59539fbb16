"""Every notebook in notebooks/ runs top to bottom (nbclient), on a private copy of the demo store.

Notebooks read the store path from ``GIS_GRID_DB`` and may write to it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from stores import copy_store, is_postgis

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, demo_store_path, tmp_path, monkeypatch):
    db = copy_store(demo_store_path, tmp_path / "shizhong.gpkg")
    cache = Path(str(demo_store_path).removesuffix(".gpkg") + ".cache")
    if not is_postgis() and cache.is_dir():  # content-keyed lookup tables: reuse, do not rebuild
        shutil.copytree(cache, tmp_path / "shizhong.cache")
    monkeypatch.setenv("GIS_GRID_DB", db)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_there_is_a_notebook():
    assert NOTEBOOKS, "notebooks/ should hold at least the rebalancing walkthrough"
