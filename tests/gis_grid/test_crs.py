"""Tests for gis_grid.crs.

GCJ-02/BD-09 are checked against an independent implementation, the PyPI
package ``coord-convert`` (pure-Python scalar code, ``coord_convert.transform``;
in the ``test`` extra), over a ~1000-point grid covering Shizhong district,
Zaozhuang.
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from gis_grid import crs
from gis_grid.crs import InputCRS
from gis_grid.errors import InvalidCoordinatesError, InvalidInputError, UnknownCRSError

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend

# 32 x 32 = 1024 points over Shizhong district.
_LON, _LAT = np.meshgrid(np.linspace(117.45, 117.80, 32), np.linspace(34.75, 34.98, 32))
LON, LAT = _LON.ravel(), _LAT.ravel()


@pytest.fixture(scope="module")
def ref():
    return pytest.importorskip("coord_convert.transform",
                               reason="independent GCJ-02/BD-09 reference: pip install coord-convert")


def _apply(fn, xs, ys):
    out = [fn(float(x), float(y)) for x, y in zip(xs, ys)]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


def _max_dev(a, b):
    return max(np.max(np.abs(a[0] - b[0])), np.max(np.abs(a[1] - b[1])))


def _metres(lon1, lat1, lon2, lat2):
    """Haversine distance (sphere R=6371008.8 m): plenty for cm-level checks."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(h))


# ---------------------------------------------------------------- GCJ-02 / BD-09
def test_wgs84_to_gcj02_matches_reference(ref):
    ours = crs.wgs84_to_gcj02(LON, LAT)
    theirs = _apply(ref.wgs2gcj, LON, LAT)
    assert ours[0].shape == LON.shape and ours[0].dtype == np.float64
    assert _max_dev(ours, theirs) < 1e-6


def test_gcj02_to_wgs84_matches_reference_and_inverts_it(ref):
    g = _apply(ref.wgs2gcj, LON, LAT)
    ours = crs.gcj02_to_wgs84(*g)
    # coord_convert iterates to 1e-6 deg only.
    assert _max_dev(ours, _apply(ref.gcj2wgs, *g)) < 1e-6
    # Our inverse, pushed through THEIR forward transform, gives back g.
    assert _max_dev(_apply(ref.wgs2gcj, *ours), g) < 1e-9


def test_gcj02_bd09_match_reference(ref):
    g = crs.wgs84_to_gcj02(LON, LAT)
    assert _max_dev(crs.gcj02_to_bd09(*g), _apply(ref.gcj2bd, *g)) < 1e-6
    assert _max_dev(crs.wgs84_to_bd09(LON, LAT), _apply(ref.wgs2bd, LON, LAT)) < 1e-6


def test_bd09_inverse_matches_reference_and_is_exact(ref):
    b = _apply(ref.wgs2bd, LON, LAT)
    g = crs.bd09_to_gcj02(*b)
    # The reference inverse is the usual one-step formula (~1e-6 deg off);
    # ours is refined, so compare loosely to it and exactly to its forward.
    assert _max_dev(g, _apply(ref.bd2gcj, *b)) < 3e-6
    assert _max_dev(_apply(ref.gcj2bd, *g), b) < 1e-9
    w = crs.bd09_to_wgs84(*b)
    assert _max_dev(w, (LON, LAT)) < 1e-8
    assert _max_dev(w, _apply(ref.bd2wgs, *b)) < 3e-6


def test_gcj02_round_trip_error_and_offset_size():
    g_lon, g_lat = crs.wgs84_to_gcj02(LON, LAT)
    w_lon, w_lat = crs.gcj02_to_wgs84(g_lon, g_lat)
    round_trip = _metres(LON, LAT, w_lon, w_lat).max()
    offset = _metres(LON, LAT, g_lon, g_lat)
    print(f"\nGCJ-02 wgs->gcj->wgs max round-trip error over {LON.size} Shizhong points: "
          f"{round_trip:.3e} m; GCJ offset {offset.min():.1f}..{offset.max():.1f} m")
    assert round_trip < 0.01
    assert 100 < offset.min() and offset.max() < 700


def test_offset_leaves_points_outside_china_unchanged():
    lon = np.array([2.35, -74.0, 151.2, 117.55])  # Paris, New York, Sydney, Zaozhuang
    lat = np.array([48.85, 40.7, -33.87, 34.86])
    for fn in (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84):
        out_lon, out_lat = fn(lon, lat)
        np.testing.assert_array_equal(out_lon[:3], lon[:3])
        np.testing.assert_array_equal(out_lat[:3], lat[:3])
        assert abs(out_lon[3] - lon[3]) > 1e-3  # but Zaozhuang moves


def test_scalars_nan_and_shapes():
    lon, lat = crs.wgs84_to_gcj02(117.55, 34.86)
    assert isinstance(lon, np.ndarray) and lon.shape == () and lon.dtype == np.float64
    for fn in (crs.gcj02_to_wgs84, crs.gcj02_to_bd09, crs.bd09_to_gcj02, crs.to_metric):
        x, y = fn(117.55, 34.86)
        assert isinstance(x, np.ndarray) and x.shape == () and np.isfinite(x)
    x, y = crs.gcj02_to_wgs84([117.55, np.nan], [34.86, 34.86])
    assert np.isfinite(x[0]) and np.isnan(x[1])
    x, y = crs.wgs84_to_gcj02(np.full((2, 3), 117.55), 34.86)  # broadcasts
    assert x.shape == y.shape == (2, 3)


# ---------------------------------------------------------------- EPSG:4490 <-> 4548
def _meridian_arc(lat_deg, a=6378137.0, f=1 / 298.257222101):
    """GRS80/CGCS2000 meridian arc by Simpson integration (independent of PROJ)."""
    e2 = f * (2 - f)
    n, phi = 2000, math.radians(lat_deg)
    h = phi / n
    m = lambda p: a * (1 - e2) / (1 - e2 * math.sin(p) ** 2) ** 1.5  # noqa: E731
    s = m(0) + m(phi) + sum((4 if i % 2 else 2) * m(i * h) for i in range(1, n))
    return s * h / 3


def test_gk117_known_point():
    x, y = crs.to_metric(117.0, 35.0)
    # On the central meridian: x is the false easting (no "39" zone prefix),
    # y the meridian arc (scale factor 1).
    assert float(x) == pytest.approx(500000.0, abs=1e-6)
    assert float(y) == pytest.approx(_meridian_arc(35.0), abs=0.01)
    assert float(y) == pytest.approx(3874592.90, abs=0.01)
    # East of the CM the easting grows; Zaozhuang stays inside the zone.
    gx, gy = crs.to_metric(LON, LAT)
    assert np.all((gx > 540000) & (gx < 575000))


def test_4490_4548_round_trip():
    x, y = crs.to_metric(LON, LAT)
    lon, lat = crs.from_metric(x, y)
    assert _max_dev((lon, lat), (LON, LAT)) < 1e-9
    np.testing.assert_allclose(crs.to_storage(x, y, "EPSG:4548"), (lon, lat), rtol=0, atol=0)
    np.testing.assert_allclose(crs.from_storage(LON, LAT, InputCRS.GK117), (x, y), rtol=0, atol=0)
    assert crs._transformer(4490, 4548) is crs._transformer(4490, 4548)  # cached


def test_crs84_and_cgcs2000_are_a_noop():
    for name in ("CRS84", "EPSG:4490", None):
        lon, lat = crs.to_storage(LON, LAT, name)
        assert lon is not LON
        np.testing.assert_array_equal(lon, LON)
        np.testing.assert_array_equal(lat, LAT)
    np.testing.assert_array_equal(crs.transform(LON, LAT, "4326", "CGCS2000")[1], LAT)


def test_transform_between_input_crss():
    g = crs.wgs84_to_gcj02(LON, LAT)
    assert _max_dev(crs.transform(*g, "gcj02", "bd09"), crs.gcj02_to_bd09(*g)) < 1e-12
    assert _max_dev(crs.to_storage(*g, "gcj-02"), (LON, LAT)) < 1e-9
    b = crs.from_storage(LON, LAT, "bd09")
    m = crs.transform(*b, "bd09", "EPSG:4548")
    np.testing.assert_allclose(m, crs.to_metric(LON, LAT), rtol=0, atol=1e-3)
    assert _max_dev(crs.transform(*m, "EPSG:4548", "BD-09"), b) < 1e-9


# ---------------------------------------------------------------- names
@pytest.mark.parametrize("name, expected", [
    ("EPSG:4326", InputCRS.CRS84), ("4326", InputCRS.CRS84), ("CRS84", InputCRS.CRS84),
    ("OGC:CRS84", InputCRS.CRS84), ("wgs84", InputCRS.CRS84), (" epsg : 4326 ", InputCRS.CRS84),
    ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", InputCRS.CRS84),
    ("http://www.opengis.net/def/crs/EPSG/0/4326", InputCRS.CRS84),
    (None, InputCRS.CRS84), ("", InputCRS.CRS84), ("  ", InputCRS.CRS84),
    ("EPSG:4490", InputCRS.CGCS2000), ("cgcs2000", InputCRS.CGCS2000), ("4490", InputCRS.CGCS2000),
    ("http://www.opengis.net/def/crs/EPSG/0/4490", InputCRS.CGCS2000),
    ("EPSG:4548", InputCRS.GK117), ("http://www.opengis.net/def/crs/EPSG/0/4548", InputCRS.GK117),
    (4548, InputCRS.GK117), (InputCRS.GK117, InputCRS.GK117),
    ("gcj02", InputCRS.GCJ02), ("GCJ-02", InputCRS.GCJ02), ("bd09", InputCRS.BD09), ("BD-09", InputCRS.BD09),
])
def test_parse_crs_accepts(name, expected):
    assert crs.parse_crs(name) is expected


@pytest.mark.parametrize("name", ["EPSG:4527", "EPSG:3857", "utm50n", "wgs 1984 web", "EPSG:43260"])
def test_parse_crs_rejects(name):
    with pytest.raises(UnknownCRSError) as info:
        crs.parse_crs(name)
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)
    for accepted in ("EPSG:4326", "CRS84", "EPSG:4490", "EPSG:4548", "gcj02", "bd09"):
        assert accepted in info.value.message


def test_input_crs_properties_and_uri():
    assert [c for c in InputCRS if c.is_projected] == [InputCRS.GK117]
    assert {c for c in InputCRS if c.is_offset} == {InputCRS.GCJ02, InputCRS.BD09}
    assert str(InputCRS.GK117) == "EPSG:4548" and InputCRS.GK117 == "EPSG:4548"
    assert (crs.STORAGE_EPSG, crs.METRIC_EPSG, crs.WEB_MERCATOR_EPSG) == (4490, 4548, 3857)
    assert crs.crs_uri("4326") == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert crs.crs_uri("CGCS2000") == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert crs.crs_uri(InputCRS.GK117) == "http://www.opengis.net/def/crs/EPSG/0/4548"
    for name in ("gcj02", "bd09"):
        with pytest.raises(InvalidInputError):
            crs.crs_uri(name)


# ---------------------------------------------------------------- validation
def test_check_coordinates_geographic():
    x = [117.55, np.nan, 117.5, 200.0, 100.0, 34.86, -33.87, 500000.0, 2.35]
    y = [34.86, 34.8, np.inf, 10.0, -95.0, 117.55, 151.2, 3870000.0, 48.85]
    r = crs.check_coordinates(x, y, "EPSG:4490")
    assert r.dtype == object and r.shape == (9,)
    assert r[0] == "" and r[8] == ""
    assert r[1] == r[2] == "lon/lat is NaN or infinite"
    assert "out of range" in r[3] and "out of range" in r[4]
    assert "swapped" in r[5] and "swapped" in r[6]
    assert "swapped" in crs.check_coordinates(10.0, -95.0)[0]  # |lat| > 90 but |lon| <= 90
    assert "metres" in r[7]
    # Same rules for the offset systems (they are lon/lat too).
    assert "swapped" in crs.check_coordinates(34.86, 117.55, "gcj02")[0]


def test_check_coordinates_gk117():
    x = [552000.0, 3860000.0, 900000.0, 39552000.0, 117.55, np.nan, 552000.0]
    y = [3860000.0, 552000.0, 3860000.0, 3860000.0, 34.86, 3860000.0, -5.0]
    r = crs.check_coordinates(x, y, "EPSG:4548")
    assert r[0] == ""
    assert "swapped" in r[1]
    assert r[2] == "outside the EPSG:4548 zone (x 200000..800000 m)"
    assert "4527" in r[3]
    assert "degrees" in r[4]
    assert "NaN" in r[5]
    assert "outside the EPSG:4548 zone" in r[6]


def test_validate_coordinates():
    x, y = crs.validate_coordinates([117.55, 117.6], [34.86, 34.9])
    assert x.dtype == y.dtype == np.float64 and x.tolist() == [117.55, 117.6]
    x, y = crs.validate_coordinates(117.55, 34.86, "CRS84")  # scalars
    assert float(x) == 117.55 and float(y) == 34.86
    assert crs.check_coordinates(117.55, 34.86).tolist() == [""]

    with pytest.raises(InvalidCoordinatesError) as info:
        crs.validate_coordinates([117.55, np.nan, 34.86], [34.86, 34.86, 117.55])
    err = info.value
    assert err.detail == [{"row": 1, "reason": "lon/lat is NaN or infinite"},
                          {"row": 2, "reason": crs.check_coordinates(34.86, 117.55)[0]}]
    assert "row 1" in err.message and "row 2" in err.message and "2 of 3" in err.message

    with pytest.raises(InvalidCoordinatesError) as info:
        crs.validate_coordinates(np.full(150, np.nan), np.zeros(150))
    assert len(info.value.detail) == 100 and "150 of 150" in info.value.message

    with pytest.raises(InvalidCoordinatesError):
        crs.validate_coordinates(3860000.0, 552000.0, "EPSG:4548")
    with pytest.raises(InvalidCoordinatesError):
        crs.validate_coordinates(["abc"], [1.0])
    with pytest.raises(InvalidInputError):
        crs.validate_coordinates([1.0, 2.0], [1.0, 2.0, 3.0])


def test_no_web_framework_import():
    # every library module, since the routers' rules moved down into it (alembic runs the migrations itself)
    code = ("import importlib, pkgutil, sys, gis_grid\n"
            "for m in pkgutil.walk_packages(gis_grid.__path__, 'gis_grid.'):\n"
            "    if '.migrations' not in m.name: importlib.import_module(m.name)\n"
            "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'flask', 'django') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_point_agrees_with_vector_check_on_a_catalogue():
    """The scalar fast path gives the same reason as the array rules, rule for rule."""
    import itertools

    from gis_grid.crs import check_coordinates, check_point

    vals = [np.nan, np.inf, -np.inf, 0.0, 34.86, 117.55, 200.0, -100.0, 95.0, 3.0, 54.0, 73.0,
            136.0, 1e6, 5e5, 3.8e6, 39.5e6, 1001.0, 89.9]
    seen = set()
    for crs_name in ("EPSG:4326", "EPSG:4548", "gcj02"):
        for a, b in itertools.product(vals, vals):
            expected = check_coordinates(np.array([a]), np.array([b]), crs_name)[0]
            assert check_point(a, b, crs_name) == expected, (crs_name, a, b)
            seen.add(expected)
    assert len(seen) >= 8  # the catalogue reaches most rules, not just "fine"


def test_overlay_area_is_the_projected_area_and_no_phantom_for_a_t_junction_wedge():
    """A wedge with no lon/lat area (a cut vertex on a straight edge) measures nothing, where
    projecting its vertices measures ~10 m2; a real polygon measures as densely projected."""
    import shapely
    from gis_grid import crs
    wedge = shapely.from_wkt("POLYGON ((117.674611585 34.948777617, 117.67865253121705 34.944737574452745, "
                             "117.682598053 34.940792935, 117.674611585 34.948777617))")
    assert crs.area_m2(wedge) > 10 and crs.overlay_area_m2(wedge) < 1e-6
    box = shapely.box(117.50, 34.80, 117.52, 34.82)
    dense = crs.transform_geoms(shapely.segmentize(box, 1e-4), crs.InputCRS.CGCS2000, crs.InputCRS.GK117)
    assert abs(crs.overlay_area_m2(box) - dense.area) < 1e-6 * dense.area
    two = shapely.MultiPolygon([box, shapely.box(117.60, 34.80, 117.61, 34.81)])
    assert abs(crs.overlay_area_m2(two) - crs.overlay_area_m2(box) - crs.overlay_area_m2(two.geoms[1])) < 1e-6
    assert crs.overlay_area_m2(None) == crs.overlay_area_m2(shapely.LineString([(0, 0), (1, 1)])) == 0.0
