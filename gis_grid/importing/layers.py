"""The columns each importable layer needs, and the per-feature checks on their values.

Every problem is collected (row, feature, reason) rather than raised, so one run
names every feature to fix. Column names match case-insensitively; the only
aliases are the 10-character names a Shapefile (DBF) truncates ours to.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from ..errors import InvalidInputError


class MissingColumnsError(InvalidInputError):
    """The file lacks a column the layer needs."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str                  # "code" | "int" | "text"
    required: bool = False
    aliases: tuple[str, ...] = ()


SCHEMAS: dict[str, tuple[Field, ...]] = {
    "grids": (Field("code", "code", True), Field("name", "text", True),
              Field("parent_code", "code", aliases=("parent_cod",)), Field("kind", "text")),
    "buildings": (Field("id", "int", True), Field("kind", "text"), Field("name", "text"),
                  Field("floors", "int"), Field("units", "int"), Field("grid_code", "code")),
    "households": (Field("id", "text", True), Field("building_id", "int", True, aliases=("building_i",)),
                   Field("unit", "int"), Field("floor", "int"), Field("room", "text"), Field("size", "int"),
                   Field("head_name", "text"), Field("flags", "text"), Field("grid_code", "code")),
}
#: columns our own export writes that the store manages itself: read past them silently
MANAGED = {"grids": {"level", "version", "valid_from", "valid_to", "area_m2", "fid"},
           "buildings": {"fid"}, "households": {"fid"}}
GEOMETRY = {"grids": "polygon", "buildings": "polygon", "households": None}
UNKNOWN_BUILDING_KIND = "unknown"
_CODE = re.compile(r"^[0-9]+$")


class ProblemList(list):
    def add(self, row: int, feature: str, reason: str) -> None:
        self.append({"row": int(row) + 1, "feature": feature, "reason": reason})


@dataclass
class Parsed:
    table: pd.DataFrame
    problems: ProblemList
    ignored_columns: list[str] = field(default_factory=list)


def _guess_layer(columns: set[str], has_geometry: bool) -> str | None:
    if "building_id" in columns or "building_i" in columns:
        return "households"
    if "id" in columns and ({"floors", "units"} & columns):
        return "buildings"
    if "code" in columns and has_geometry:
        return "grids" if "level" not in columns else "grids (or streets/communities)"
    return None


def map_columns(frame: pd.DataFrame, layer: str, file_name: str) -> tuple[pd.DataFrame, list[str]]:
    """Rename the file's columns to ours; refuse with the list of what is missing and a hint."""
    lower = {str(c).lower(): c for c in frame.columns if c != "geometry"}
    rename, missing = {}, []
    for f in SCHEMAS[layer]:
        src = next((lower[n] for n in (f.name, *f.aliases) if n in lower), None)
        if src is not None:
            rename[src] = f.name
        elif f.required:
            missing.append(f.name)
    if missing:
        has_geom = "geometry" in frame.columns and frame["geometry"].notna().any()
        guess = _guess_layer(set(lower), has_geom)
        hint = f"; it looks like a {guess} layer: pass --layer {guess.split()[0]}" if guess and guess != layer else ""
        raise MissingColumnsError(
            f"{file_name} cannot be imported as {layer}: missing column(s) {', '.join(missing)} "
            f"(it has {', '.join(map(str, lower.values())) or 'no attribute columns'}){hint}. "
            f"The {layer} layer needs {', '.join(f.name for f in SCHEMAS[layer] if f.required)}; "
            "see gis_grid/importing/README.md", detail={"missing": missing, "columns": list(map(str, lower.values()))})
    ignored = [str(c) for k, c in lower.items() if c not in rename and k not in MANAGED[layer]]
    keep = list(rename) + (["geometry"] if "geometry" in frame.columns else [])
    return frame[keep].rename(columns=rename), ignored


def _blank(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())


def text_values(col: pd.Series) -> list[str | None]:
    return [None if _blank(v) else str(v).strip() for v in col.astype(object)]


def code_values(col: pd.Series) -> list[str | None]:
    """Codes as digit strings, whatever the file stored them as (DBF writes numbers as Real)."""
    out = []
    for v in col.astype(object):
        if _blank(v):
            out.append(None)
        elif isinstance(v, (int, np.integer)):
            out.append(str(int(v)))
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            s = str(v).strip()
            out.append(s[:-2] if s.endswith(".0") and s[:-2].isdigit() else s)
    return out


def int_values(col: pd.Series) -> tuple[list[int | None], list[bool]]:
    """Integers (None where blank) and which values are not integers at all."""
    dtype = col.dtype
    if pd.api.types.is_integer_dtype(dtype):  # GeoPackage, Parquet, DBF N(n,0): already integers
        return [None if v is None else int(v) for v in col.to_numpy(dtype=object, na_value=None)], [False] * len(col)
    if pd.api.types.is_float_dtype(dtype):   # a DBF Real, or integers with blanks after pandas
        f = col.to_numpy(dtype="float64", na_value=np.nan)
        blank = np.isnan(f)
        ok = ~blank & np.isfinite(f) & (np.floor(f) == f)
        return [int(x) if k else None for x, k in zip(f, ok)], (~blank & ~ok).tolist()
    vals, bad = [], []
    for v in col.astype(object):
        if _blank(v):
            vals.append(None)
            bad.append(False)
            continue
        try:
            f = float(str(v).strip()) if isinstance(v, str) else float(v)
        except (TypeError, ValueError):
            vals.append(None)
            bad.append(True)
            continue
        ok = np.isfinite(f) and f.is_integer()
        vals.append(int(f) if ok else None)
        bad.append(not ok)
    return vals, bad


def check_polygons(geoms, coordinate_problems, labels, problems: ProblemList, *, one_part: bool) -> list:
    """Validated polygons (2-D; one Polygon each if ``one_part``, else MultiPolygon); None where bad.

    The tests run on whole arrays (a district has ~10^5 footprints); only the offenders are
    looked at one by one, to word their reason.
    """
    g = np.array(list(geoms), dtype=object)
    missing = np.array([x is None for x in g], dtype=bool)
    kind = shapely.get_type_id(g)                         # -1 for None
    empty = shapely.is_empty(g) & ~missing
    polygonal = np.isin(kind, (3, 6)) & ~empty
    xy, idx = shapely.get_coordinates(g, return_index=True)
    finite = np.ones(len(g), dtype=bool)
    finite[idx[~np.isfinite(xy).all(axis=1)]] = False
    implausible = np.asarray(coordinate_problems, dtype=object) != ""
    checkable = polygonal & finite & ~implausible
    valid = np.zeros(len(g), dtype=bool)
    valid[checkable] = shapely.is_valid(g[checkable])
    parts = shapely.get_num_geometries(g)
    split = one_part & (kind == 6) & (parts != 1)
    for i in np.flatnonzero(~(checkable & valid) | split):
        if missing[i]:
            reason = "has no geometry"
        elif empty[i]:
            reason = "has an empty geometry"
        elif not polygonal[i]:
            reason = f"is a {g[i].geom_type}, not a Polygon or MultiPolygon"
        elif not finite[i]:
            reason = "has NaN or infinite coordinates"
        elif implausible[i]:
            reason = f"has implausible coordinates ({coordinate_problems[i]})"
        elif not valid[i]:
            reason = f"is not a valid polygon: {shapely.is_valid_reason(g[i])}"
        else:
            reason = f"has {parts[i]} separate parts; a footprint must be one polygon"
        problems.add(i, labels[i], reason)
    good = checkable & valid & ~split
    out = np.full(len(g), None, dtype=object)
    # one ring orientation in the store whatever the writer used (Shapefile rings run clockwise)
    oriented = shapely.orient_polygons(g[good], exterior_cw=False)
    if one_part:
        out[good] = np.where(shapely.get_type_id(oriented) == 6, shapely.get_geometry(oriented, 0), oriented)
    else:
        out[good] = [x if isinstance(x, shapely.MultiPolygon) else shapely.MultiPolygon([x]) for x in oriented]
    return list(out)


def _labels(noun: str, ids: list) -> list[str]:
    return [f"{noun} {v}" if v is not None else f"{noun} without id" for v in ids]


def _duplicates(ids: list, labels, problems: ProblemList, what: str) -> None:
    seen: dict = {}
    for i, v in enumerate(ids):
        if v is None:
            continue
        if v in seen:
            problems.add(i, labels[i], f"repeats the {what} of row {seen[v] + 1}; {what}s must be unique")
        else:
            seen[v] = i


def _ints_into(table, df, name, labels, problems, *, minimum=None):
    if name not in df.columns:
        table[name] = None
        return
    vals, bad = int_values(df[name])
    for i, (v, b) in enumerate(zip(vals, bad)):
        if b:
            problems.add(i, labels[i], f"{name} {df[name].iloc[i]!r} is not an integer")
        elif v is not None and minimum is not None and v < minimum:
            problems.add(i, labels[i], f"{name} {v} is below {minimum}")
    table[name] = _int_array(vals)


def _lost_characters(v: str | None) -> bool:
    # what GDAL leaves when a DBF's text could not be decoded or encoded (no .cpg, wrong ENCODING)
    return v is not None and ("\ufffd" in v or "??" in v)


def _encoding_problems(values, name, labels, problems) -> None:
    for i, v in enumerate(values):
        if _lost_characters(v):
            problems.add(i, labels[i], f"{name} {v!r} has characters lost to a text-encoding conversion; "
                         "for a Shapefile, give its encoding in a .cpg file (e.g. UTF-8 or CP936) and rewrite it")


def _int_array(values):
    # nullable integers: a blank must not turn the column into floats (6 -> 6.0 in an INTEGER column)
    return pd.array(values, dtype="Int64")


def _texts_into(table, df, name, labels, problems, default=None):
    values = text_values(df[name]) if name in df.columns else [None] * len(df)
    _encoding_problems(values, name, labels, problems)
    table[name] = [default if v is None else v for v in values]


def parse_grids(df: pd.DataFrame, coordinate_problems, communities: dict[str, str | None]) -> Parsed:
    """Base grids: 15-digit codes under a current community; ``communities`` maps code -> kind."""
    problems = ProblemList()
    codes = code_values(df["code"])
    labels = [f"grid {c}" if c else "grid without code" for c in codes]
    names = text_values(df["name"])
    parents = code_values(df["parent_code"]) if "parent_code" in df.columns else [None] * len(df)
    kinds = text_values(df["kind"]) if "kind" in df.columns else [None] * len(df)
    looks_like = {6: "the district", 9: "a street/town", 12: "a community/village"}
    for i, c in enumerate(codes):
        if c is None:
            problems.add(i, labels[i], "has no code")
        elif not _CODE.match(c) or len(c) != 15:
            what = f" ({looks_like[len(c)]} code: import base grids only)" if _CODE.match(c) and len(c) in looks_like else ""
            problems.add(i, labels[i], f"code {c!r} is not a 15-digit base-grid code{what}")
        elif c[:12] not in communities:
            problems.add(i, labels[i], f"its community {c[:12]} does not exist in the store")
        if parents[i] is not None and c is not None and parents[i] != c[:12]:
            problems.add(i, labels[i], f"parent_code {parents[i]} is not its code's prefix {c[:12]}")
        if names[i] is None:
            problems.add(i, labels[i], "has no name")
        if kinds[i] is not None and kinds[i] not in ("urban", "rural"):
            problems.add(i, labels[i], f"kind {kinds[i]!r} is neither urban nor rural")
    _encoding_problems(names, "name", labels, problems)
    _duplicates(codes, labels, problems, "code")
    geoms = check_polygons(df["geometry"].to_numpy() if "geometry" in df.columns else [None] * len(df),
                           coordinate_problems, labels, problems, one_part=False)
    table = pd.DataFrame({
        "code": codes, "name": names, "level": "grid",
        "parent_code": [c[:12] if c else None for c in codes],
        "kind": [k if k is not None else communities.get((c or "")[:12]) for k, c in zip(kinds, codes)],
        "geometry": geoms})
    return Parsed(table, problems)


def parse_buildings(df: pd.DataFrame, coordinate_problems) -> Parsed:
    problems = ProblemList()
    ids, bad = int_values(df["id"])
    labels = _labels("building", [df["id"].iloc[i] if b else v for i, (v, b) in enumerate(zip(ids, bad))])
    for i, (v, b) in enumerate(zip(ids, bad)):
        if b:
            problems.add(i, labels[i], f"id {df['id'].iloc[i]!r} is not an integer")
        elif v is None:
            problems.add(i, labels[i], "has no id")
    _duplicates(ids, labels, problems, "id")
    table = pd.DataFrame({"id": _int_array(ids)})
    _texts_into(table, df, "kind", labels, problems, UNKNOWN_BUILDING_KIND)
    _texts_into(table, df, "name", labels, problems)
    _ints_into(table, df, "floors", labels, problems, minimum=0)
    _ints_into(table, df, "units", labels, problems, minimum=0)
    table["file_grid_code"] = code_values(df["grid_code"]) if "grid_code" in df.columns else None
    table["geometry"] = check_polygons(df["geometry"].to_numpy() if "geometry" in df.columns else [None] * len(df),
                                       coordinate_problems, labels, problems, one_part=True)
    return Parsed(table, problems)


def parse_households(df: pd.DataFrame, building_ids: set[int], members: pd.Series) -> Parsed:
    """Households; ``members`` counts the store's residents per household id (the default size)."""
    problems = ProblemList()
    ids = text_values(df["id"])
    labels = _labels("household", ids)
    for i, v in enumerate(ids):
        if v is None:
            problems.add(i, labels[i], "has no id")
    _duplicates(ids, labels, problems, "id")
    bids, bad = int_values(df["building_id"])
    for i, (b, is_bad) in enumerate(zip(bids, bad)):
        if is_bad:
            problems.add(i, labels[i], f"building_id {df['building_id'].iloc[i]!r} is not an integer")
        elif b is None:
            problems.add(i, labels[i], "has no building_id")
        elif b not in building_ids:
            problems.add(i, labels[i], f"its building {b} does not exist in the store")
    table = pd.DataFrame({"id": ids, "building_id": _int_array(bids)})
    _ints_into(table, df, "unit", labels, problems)
    _ints_into(table, df, "floor", labels, problems)
    _texts_into(table, df, "room", labels, problems)
    _ints_into(table, df, "size", labels, problems, minimum=1)
    table["size"] = _int_array([int(members.get(h, 0)) if pd.isna(s) else int(s) for s, h in zip(table["size"], ids)])
    _texts_into(table, df, "head_name", labels, problems)
    _texts_into(table, df, "flags", labels, problems, "")
    table["file_grid_code"] = code_values(df["grid_code"]) if "grid_code" in df.columns else None
    return Parsed(table, problems)
