"""The store's tables, as GeoPackage 1.3 wants them.

Every feature and attribute table has an ``fid INTEGER PRIMARY KEY`` (GeoPackage Req 29/119);
the store's own keys (a household id, a resident id) are UNIQUE columns beside it. Geometry
columns are declared with their gpkg_geometry_columns type (Req 25).
"""
from __future__ import annotations

TABLES = {
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "divisions": """CREATE TABLE divisions (
  fid INTEGER PRIMARY KEY AUTOINCREMENT, geom MULTIPOLYGON NOT NULL,
  code TEXT NOT NULL, name TEXT NOT NULL, level TEXT NOT NULL, parent_code TEXT,
  kind TEXT, version INTEGER NOT NULL DEFAULT 1, valid_from TEXT NOT NULL, valid_to TEXT,
  area_m2 REAL)""",
    "buildings": """CREATE TABLE buildings (
  fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POLYGON NOT NULL,
  id INTEGER NOT NULL UNIQUE, kind TEXT NOT NULL, name TEXT, floors INTEGER, units INTEGER,
  grid_code TEXT NOT NULL)""",
    "households": """CREATE TABLE households (
  fid INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE, building_id INTEGER NOT NULL, grid_code TEXT NOT NULL,
  unit INTEGER, floor INTEGER, room TEXT, size INTEGER NOT NULL, head_name TEXT,
  flags TEXT NOT NULL DEFAULT '')""",
    "residents": """CREATE TABLE residents (
  fid INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE, household_id TEXT NOT NULL, name TEXT NOT NULL, gender TEXT,
  birth_date TEXT, id_number TEXT, phone TEXT, relation TEXT,
  disabled INTEGER, low_income INTEGER, elderly_alone INTEGER, extreme_poverty INTEGER,
  left_behind_child INTEGER, veteran INTEGER, community_correction INTEGER)""",
    "workers": """CREATE TABLE workers (
  fid INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE, grid_code TEXT NOT NULL, name TEXT NOT NULL, role TEXT, phone TEXT)""",
}
#: created on the first incident write (older stores lack it)
INCIDENTS = """CREATE TABLE incidents (
  fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POINT NOT NULL,
  id TEXT NOT NULL UNIQUE, category TEXT NOT NULL, department TEXT NOT NULL, priority TEXT NOT NULL,
  lon REAL NOT NULL, lat REAL NOT NULL, grid_code TEXT NOT NULL, reported_grid_code TEXT, building_id INTEGER,
  reporter TEXT, reporter_role TEXT, description TEXT, status TEXT NOT NULL, created TEXT NOT NULL, registered TEXT,
  dispatched TEXT, handled TEXT, fed_back TEXT, closed TEXT, assessed TEXT, cancelled TEXT, deadline TEXT,
  satisfaction INTEGER, assessment TEXT, rework_count INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1, events TEXT)"""
INDEXES = {
    "divisions": ("CREATE INDEX IF NOT EXISTS divisions_current ON divisions (level, code) WHERE valid_to IS NULL",
                  "CREATE INDEX IF NOT EXISTS divisions_code ON divisions (code, valid_from)"),
    "buildings": ("CREATE INDEX IF NOT EXISTS buildings_grid ON buildings (grid_code)",),
    "households": ("CREATE INDEX IF NOT EXISTS households_building ON households (building_id)",
                   "CREATE INDEX IF NOT EXISTS households_grid ON households (grid_code)"),
    "residents": ("CREATE INDEX IF NOT EXISTS residents_household ON residents (household_id)",),
    "workers": ("CREATE INDEX IF NOT EXISTS workers_grid ON workers (grid_code)",),
    "incidents": ("CREATE INDEX IF NOT EXISTS incidents_grid ON incidents (grid_code)",
                  "CREATE INDEX IF NOT EXISTS incidents_created ON incidents (created)"),
}
GEOMETRY = {"divisions": "MULTIPOLYGON", "buildings": "POLYGON", "incidents": "POINT"}
ATTRIBUTES = ("households", "residents", "workers")
DESCRIPTIONS = {"incidents": "cases (社情民意事件)"}
#: columns an older table may lack, filled from another when the table is rebuilt
FILLED_FROM = {"reported_grid_code": "grid_code"}

#: one layer per level for QGIS and GDAL: the current divisions of that level, as views of divisions
LEVEL_VIEWS = {"streets": "street", "communities": "community", "grids": "grid"}
_VIEW_COLUMNS = "fid, geom, code, name, level, parent_code, kind, version, valid_from, area_m2"


def level_view(name: str) -> str:
    return (f"CREATE VIEW {name} AS SELECT {_VIEW_COLUMNS} FROM divisions "
            f"WHERE level = '{LEVEL_VIEWS[name]}' AND valid_to IS NULL")
