"""The toy district of gis_grid.testing at the current backend's address, and API keys for tests.

The toy tables and constants are re-exported so test modules keep importing them from here.
"""
from __future__ import annotations

from gis_grid import testing
from gis_grid.testing import X0, X1, XM, Y0, Y1, YM, box, toy_buildings, toy_divisions, toy_people  # noqa: F401
from stores import location


def make_toy_store(path, **replace):
    """:func:`gis_grid.testing.make_toy_store` on the current backend (``path`` goes through stores.location)."""
    return testing.make_toy_store(location(path), **replace)


def scope_of(role: str, grid: str, department: str = "justice") -> str:
    """The narrowest scope a key of ``role`` takes around ``grid``; a department key's names its
    department as well (justice: the department of the "dispute" cases the tests log)."""
    from gis_grid.security.roles import DEPARTMENT_ROLES, SCOPE_LEVEL, join_scope
    need = SCOPE_LEVEL.get(role)
    return join_scope(grid[:need] if need else grid[:6], department if role in DEPARTMENT_ROLES else None)


def bearer(store_or_path, role: str = "command_center", scope: str = "370402") -> dict:
    """Authorization header of a fresh key with ``role`` and ``scope`` in that store."""
    from gis_grid.security.keys import create_key
    from gis_grid.store import open_store

    store = open_store(location(store_or_path)) if isinstance(store_or_path, (str, bytes)) or hasattr(store_or_path, "__fspath__") \
        else store_or_path
    _, token = create_key(store, role, scope, days=1, note="test")
    return {"Authorization": f"Bearer {token}"}
