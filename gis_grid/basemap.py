"""Offline basemaps: read tiles from a local MBTiles file, and render one from the atlas's own layers.

Command centres without internet install basemap packages (Tianditu, AMap exports) as MBTiles:
a SQLite file with ``metadata(name, value)`` and ``tiles(zoom_level, tile_column, tile_row,
tile_data)`` rows in TMS order (row 0 at the south). :class:`MBTiles` reads one read-only;
the web layer serves it as XYZ tiles. A GCJ-02 package (AMap-style) shifts every overlay
instead (``gis_grid.layers.to_display``), so the package itself is served untouched.

:func:`render_basemap` draws a small raster basemap from the district, streets, communities,
buildings and their names, so the demo shows a map without any download.
"""
from __future__ import annotations

import functools
import math
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np
import shapely

from . import crs as crs_mod
from .errors import InvalidInputError, NotFoundError
from .hierarchy import Level

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
               "pbf": "application/vnd.mapbox-vector-tile"}
TILE = 256
# the demo basemap: z9 (the whole district in a tile or two) .. z15 (~5 MB more per extra zoom above);
# above z15 Leaflet enlarges the z15 tiles, and the viewer draws buildings as vector tiles from z15
DEMO_ZOOMS = (9, 15)
# CJK fonts Debian and other distributions install; labels are left out when none is found
FONT_CANDIDATES = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
                   "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                   "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
                   "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
                   "/System/Library/Fonts/PingFang.ttc", "C:/Windows/Fonts/msyh.ttc")


def default_path(store_path) -> Path:
    """Where the demo writes the basemap of a GeoPackage store: beside it, ``<stem>-basemap.mbtiles``."""
    p = Path(store_path)
    return p.with_name(p.stem + "-basemap.mbtiles")


class MBTiles:
    """One read-only MBTiles file; thread-safe (one SQLite connection per thread)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFoundError(f"no MBTiles basemap at {self.path}")
        self._local = threading.local()
        try:
            rows = self._db().execute("SELECT name, value FROM metadata").fetchall()
        except sqlite3.DatabaseError as exc:
            raise InvalidInputError(f"{self.path} is not an MBTiles file: {exc}") from None
        self.metadata = {str(k): str(v) for k, v in rows}
        self.format = self.metadata.get("format", "png").lower()
        if self.format not in MEDIA_TYPES:
            raise InvalidInputError(f"{self.path}: unsupported tile format {self.format!r}")
        zooms = self._db().execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        self.minzoom = int(self.metadata.get("minzoom", zooms[0] if zooms[0] is not None else 0))
        self.maxzoom = int(self.metadata.get("maxzoom", zooms[1] if zooms[1] is not None else 0))

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    def _db(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        return con

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The tile at XYZ ``z/x/y`` (converted to the file's TMS row), or None where the package has none."""
        if z < 0 or not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
            return None
        row = self._db().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
            (z, x, 2 ** z - 1 - y)).fetchone()
        return bytes(row[0]) if row else None


def write_mbtiles(path, tiles, metadata: dict) -> int:
    """Write ``(z, x, y, bytes)`` XYZ tiles and ``metadata`` into a new MBTiles file; returns the tile count."""
    path = Path(path)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.executescript("CREATE TABLE metadata (name TEXT, value TEXT);"
                          "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER,"
                          " tile_data BLOB);"
                          "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);")
        con.executemany("INSERT INTO metadata VALUES (?, ?)", [(k, str(v)) for k, v in metadata.items()])
        n = 0
        for z, x, y, data in tiles:
            con.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, 2 ** z - 1 - y, data))
            n += 1
        con.commit()
    finally:
        con.close()
    return n


# -- rendering --------------------------------------------------------------------------------

LAND = (244, 241, 234)            # inside the district
STREET_TINTS = [(239, 233, 216), (228, 238, 226), (236, 229, 238), (226, 234, 240),
                (242, 232, 224), (233, 238, 222)]
COMMUNITY_LINE = (200, 192, 178)
STREET_LINE = (170, 150, 140)
DISTRICT_LINE = (120, 100, 110)
BUILDING = (212, 204, 194)
BUILDING_LINE = (190, 180, 170)
TEXT = (95, 90, 85)
HALO = (250, 248, 244)
# names drawn into the basemap, per level: the zooms where the viewer's own labels do not show them
LABEL_ZOOMS = {Level.DISTRICT: (9, 10), Level.STREET: (9, 10), Level.COMMUNITY: (13, 13)}
LABEL_SIZES = {Level.DISTRICT: 18, Level.STREET: 13, Level.COMMUNITY: 12}


def _mercator_px(lon, lat, z: int):
    """lon/lat -> global pixel coordinates at zoom ``z`` (Web Mercator, 256-px tiles)."""
    scale = TILE * 2 ** z
    lat = np.clip(np.asarray(lat, dtype=float), -85.0511, 85.0511)
    x = (np.asarray(lon, dtype=float) + 180.0) / 360.0 * scale
    s = np.sin(np.radians(lat))
    y = (0.5 - np.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale
    return x, y


def _rings(geom):
    """Exterior rings, then holes, of a (multi)polygon as coordinate arrays."""
    for part in shapely.get_parts(geom):
        yield np.asarray(part.exterior.coords), [np.asarray(r.coords) for r in part.interiors]


def _font(size: int):
    from PIL import ImageFont
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return None


def render_basemap(atlas, path, *, zooms: tuple[int, int] = DEMO_ZOOMS, crs: str = "cgcs2000",
                   name: str = "") -> dict:
    """Render a raster basemap of ``atlas`` into the MBTiles file ``path``; returns its summary.

    ``crs="gcj02"`` draws it in GCJ-02 like an AMap package (to exercise the shifted overlays).
    Tiles outside the district are not stored; the viewer's background shows there.
    """
    from PIL import Image, ImageDraw

    if crs not in ("cgcs2000", "gcj02"):
        raise InvalidInputError(f"unknown basemap crs {crs!r}; use cgcs2000 or gcj02")
    d = atlas.divisions

    def geoms_of(level):
        rows = d[d["level"] == level.value]
        g = rows["geometry"].to_numpy()
        if crs == "gcj02":
            g = crs_mod.transform_geoms(g, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GCJ02)
        return rows, g

    district_rows, district = geoms_of(Level.DISTRICT)
    street_rows, streets = geoms_of(Level.STREET)
    community_rows, communities = geoms_of(Level.COMMUNITY)
    b = atlas.buildings["geometry"].to_numpy()
    if crs == "gcj02" and len(b):
        b = crs_mod.transform_geoms(b, crs_mod.InputCRS.CGCS2000, crs_mod.InputCRS.GCJ02)
    minx, miny, maxx, maxy = shapely.total_bounds(district if len(district) else streets)
    street_tint = {c: STREET_TINTS[i % len(STREET_TINTS)] for i, c in enumerate(street_rows["code"])}
    # 东王庄村委会 -> 东王庄: the committee suffix only crowds the map
    labels = {lv: ([re.sub("(村民委员会|居民委员会|村委会|居委会)$", "", str(n)) for n in rows["name"]],
                   shapely.point_on_surface(g))
              for lv, (rows, g) in {Level.DISTRICT: (district_rows, district), Level.STREET: (street_rows, streets),
                                    Level.COMMUNITY: (community_rows, communities)}.items()}
    fonts = {lv: _font(size) for lv, size in LABEL_SIZES.items()}
    b_tree = shapely.STRtree(b) if len(b) else None
    # every building's outer ring as one coordinate array, sliced per building (no per-geometry Python work)
    b_xy, b_idx = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_geometry(b, 0)), return_index=True)
    b_start = np.searchsorted(b_idx, np.arange(len(b) + 1))
    land = shapely.union_all(district) if len(district) else shapely.union_all(streets)
    shapely.prepare(land)

    def tiles():
        for z in range(zooms[0], zooms[1] + 1):
            tol = 360.0 / (TILE * 2 ** z) * 0.5  # half a pixel, in degrees
            simp = {key: shapely.simplify(g, tol) for key, g in
                    (("district", district), ("street", streets), ("community", communities))}
            gx, gy = _mercator_px([minx, maxx], [maxy, miny], z)
            x0, x1 = int(gx[0] // TILE), int(gx[1] // TILE)
            y0, y1 = int(gy[0] // TILE), int(gy[1] // TILE)
            bx, by = _mercator_px(b_xy[:, 0], b_xy[:, 1], z)
            b_px = np.column_stack([bx, by])
            lab = []
            for lv, (lz0, lz1) in LABEL_ZOOMS.items():
                if lz0 <= z <= lz1 and fonts[lv] is not None:
                    names, pts = labels[lv]
                    px, py = _mercator_px(shapely.get_x(pts), shapely.get_y(pts), z)
                    lab += [(str(n), float(a), float(c), fonts[lv], fonts[lv].getlength(str(n)) / 2 + 3)
                            for n, a, c in zip(names, px, py)]
            for tx in range(x0, x1 + 1):
                for ty in range(y0, y1 + 1):
                    lo_lon = tx * TILE / (TILE * 2 ** z) * 360.0 - 180.0
                    hi_lon = (tx + 1) * TILE / (TILE * 2 ** z) * 360.0 - 180.0
                    hi_lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ty / 2 ** z))))
                    lo_lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (ty + 1) / 2 ** z))))
                    box = shapely.box(lo_lon, lo_lat, hi_lon, hi_lat)
                    if not land.intersects(box):
                        continue
                    # black = nothing drawn: it becomes transparent, so the viewer's background shows outside
                    img = Image.new("RGB", (TILE, TILE), (0, 0, 0))
                    draw = ImageDraw.Draw(img)
                    ox, oy = tx * TILE, ty * TILE

                    def px(coords):
                        x, y = _mercator_px(coords[:, 0], coords[:, 1], z)
                        return list(zip((x - ox).tolist(), (y - oy).tolist()))

                    hit = shapely.intersects(simp["street"], box)
                    for code, g in zip(street_rows["code"].to_numpy()[hit], simp["street"][hit]):
                        for ext, holes in _rings(g):
                            draw.polygon(px(ext), fill=street_tint[code])
                            for h in holes:
                                draw.polygon(px(h), fill=(0, 0, 0))
                    if b_tree is not None and z >= 13:
                        off = np.array([ox, oy])
                        for i in b_tree.query(box):
                            ring = (b_px[b_start[i]:b_start[i + 1]] - off).ravel().tolist()
                            draw.polygon(ring, fill=BUILDING, outline=BUILDING_LINE if z >= 15 else None)
                    width = {"community": 1, "street": 2 if z >= 12 else 1, "district": 3 if z >= 11 else 2}
                    colour = {"community": COMMUNITY_LINE, "street": STREET_LINE, "district": DISTRICT_LINE}
                    for key in ("community", "street", "district"):
                        if key == "community" and z < 12:
                            continue
                        gs = simp[key]
                        for g in gs[shapely.intersects(gs, box)]:
                            for ext, holes in _rings(g):
                                for ring in (ext, *holes):
                                    draw.line(px(ring), fill=colour[key], width=width[key], joint="curve")
                    for text, lx, ly, font, half in lab:
                        lx, ly = lx - ox, ly - oy
                        if -half < lx < TILE + half and -20 < ly < TILE + 20:
                            draw.text((lx, ly), text, font=font, fill=TEXT, anchor="mm",
                                      stroke_width=2, stroke_fill=HALO)
                    out = img.convert("RGBA")
                    out.putalpha(img.convert("L").point(lambda v: 255 if v else 0))
                    buf = _png(out.quantize(colors=48, method=Image.Quantize.FASTOCTREE))
                    yield z, tx, ty, buf

    import datetime as _dt
    meta = {"name": name or "gis_grid basemap", "format": "png", "type": "baselayer", "version": "1",
            "minzoom": zooms[0], "maxzoom": zooms[1], "bounds": f"{minx},{miny},{maxx},{maxy}",
            "center": f"{(minx + maxx) / 2},{(miny + maxy) / 2},{zooms[0] + 3}",
            "attribution": "gis_grid 网格底图 (generated from the grid layers)", "crs": crs,
            "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    n = write_mbtiles(path, tiles(), meta)
    return {"basemap": str(path), "tiles": n, "bytes": Path(path).stat().st_size, "crs": crs}


def _png(img) -> bytes:
    import io
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@functools.cache
def empty_png() -> bytes:
    """A transparent tile: served where a package has none, instead of a 404 the browser logs."""
    from PIL import Image
    return _png(Image.new("LA", (TILE, TILE), (0, 0)))
