"""What the service accepts: published limits and coordinate reference systems."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from gis_grid import crs as crs_mod
from gis_grid.atlas import Atlas
from gis_grid.hierarchy import Level
from gis_grid.ogc import MAX_LIMIT as OGC_MAX_LIMIT

from ..deps import atlas_dep, settings_dep
from ..security import principal_dep
from ..settings import Settings

router = APIRouter(tags=["capabilities"], dependencies=[Depends(principal_dep)])

_CRS_NOTES = {
    crs_mod.InputCRS.CRS84: "lon/lat (x = longitude) degrees; the default; treated as identical to CGCS2000",
    crs_mod.InputCRS.CGCS2000: "CGCS2000 lon/lat degrees; the storage CRS",
    crs_mod.InputCRS.GK117: "CGCS2000 / 3-degree Gauss-Kruger CM 117E metres, x = easting without zone prefix",
    crs_mod.InputCRS.GCJ02: "GCJ-02 offset lon/lat (AMap, Tencent); input only",
    crs_mod.InputCRS.BD09: "BD-09 offset lon/lat (Baidu); input only",
}


def _uri(c: crs_mod.InputCRS) -> str | None:
    return None if c.is_offset else crs_mod.crs_uri(c)


@router.get("/capabilities", summary="Published limits and accepted coordinate reference systems")
def capabilities(settings: Settings = Depends(settings_dep), atlas: Atlas = Depends(atlas_dep)) -> dict:
    return {
        "atlas_version": atlas.version,
        # every number here is the one the service enforces (tests/api/test_limits.py exceeds each by one)
        "limits": {
            "max_batch_points": settings.max_batch_points,          # POST /locate: over -> 413
            "max_body_bytes": settings.max_body_bytes,              # any request body: over -> 413
            "max_polygon_vertices": settings.max_polygon_vertices,  # drawn polygons: over -> 413
            "max_personal_area_km2": settings.max_personal_area_km2,  # POST /residents/search: over -> 413
            "default_page_size": settings.default_page_size,
            "max_page_size": settings.max_page_size,                # a larger `limit` is clamped, not refused
            "max_ogc_page_size": OGC_MAX_LIMIT,                     # /ogc/.../items `limit`, clamped likewise
            "rate_limit_per_minute": settings.rate_limit_per_minute,  # per API key, all routes: 429 + Retry-After
            "unmask_per_minute": settings.unmask_per_minute,        # per API key, /residents/{id}/unmasked
        },
        "limits_apply_to": {
            "max_batch_points": ["POST /locate"],
            "max_polygon_vertices": ["POST /residents/search", "POST /plans"],
            "max_personal_area_km2": ["POST /residents/search"],
            "max_page_size": ["GET /grids/{code}/residents", "GET /buildings/{building_id}/residents",
                              "POST /residents/search", "GET /incidents", "GET /audit", "GET /stats/ranking"],
        },
        "storage_crs": f"EPSG:{crs_mod.STORAGE_EPSG}",
        "metric_crs": f"EPSG:{crs_mod.METRIC_EPSG}",
        "default_crs": str(crs_mod.InputCRS.CRS84),
        "crs": [{"id": c.value, "uri": _uri(c), "note": _CRS_NOTES[c]} for c in crs_mod.InputCRS],
        "levels": [{"level": l.value, "code_length": l.code_length} for l in Level],
        "masking": {"name": "张*", "id_number": "370402********1234", "phone": "138****5678",
                    "birth_date": "replaced by age_band, e.g. 60-69"},
    }
