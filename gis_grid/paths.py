"""Checks on the files a caller names, so a typo is a clear error before any work is done."""
from __future__ import annotations

from pathlib import Path

from .errors import InvalidInputError


def output_path(path) -> Path:
    """The output file ``path``, refused unless its folder exists (writers would fail after the work)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"the output folder {folder} does not exist; create it or write into an existing one")
    return path
