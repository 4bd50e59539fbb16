"""Boundary planning: draft new base-grid boundaries, validate them, see who moves, commit.

A :class:`~gis_grid.planning.plan.Plan` replaces a set of current base grids
(by default every grid of one community, or of one street) with new polygons.

* :mod:`.plan`      parse a plan from GeoJSON, its scope and the grids it replaces
* :mod:`.validate`  valid, contiguous, within parent, exact cover (EPSG:4548)
* :mod:`.numbering` codes for the new grids: successors keep their code, the rest
                    get fresh sequence numbers in reading order; retired codes are never reused
* :mod:`.impact`    who and what changes grid, per-grid figures, balance
* :mod:`.edits`     split by a line, merge, move a shared boundary
* :mod:`.changeset` the rows an apply writes (the store writes them in one transaction)
* :mod:`.rebalance` a contiguous, balanced partition proposed with PySAL spopt
* :mod:`.export`    GeoPackage / GeoJSON and the unit -> grid assignment CSV
"""
from .plan import Plan, PlanScope, plan_from_geojson, plan_to_geojson
from .validate import AREA_TOLERANCE_M2, ValidationReport, validate_plan

__all__ = ["Plan", "PlanScope", "plan_from_geojson", "plan_to_geojson", "AREA_TOLERANCE_M2",
           "ValidationReport", "validate_plan"]
