"""The `gis-grid` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import GisGridError
from .paths import DATABASE_URL_ENV, default_store_path, is_database_url, store_url


def open_store(*args, **kwargs):
    # pandas and the store backends load only for the commands that open a store
    from .store import open_store as _open
    return _open(*args, **kwargs)

CRS_HELP = "input CRS: EPSG:4326 (= CRS84, default), EPSG:4490, EPSG:4548, gcj02, bd09"


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help=f"store path or postgresql:// URL (default ${DATABASE_URL_ENV}, "
                                              f"else {default_store_path()})")


def cmd_demo(args) -> int:
    from .demo.generate import write_demo
    out = args.out or os.environ.get(DATABASE_URL_ENV) or default_store_path()
    if is_database_url(out):  # PostGIS: the database is the store
        from .store.postgis import database
        if database.exists(out) and not args.force:
            print(f"{database.redact(out)} exists; pass --force to overwrite it", file=sys.stderr)
            return 2
        database.drop(out)
        out = database.normalise(out)
    else:
        out = Path(out)
    if isinstance(out, Path) and out.exists() and not args.force:
        print(f"{out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if isinstance(out, Path) and out.exists():
        out.unlink()
        for side in (out.with_name(out.name + "-wal"), out.with_name(out.name + "-shm")):
            side.unlink(missing_ok=True)
    with open_store(out, create=True) as store:
        counts = write_demo(store, seed=args.seed, progress=not args.quiet)
        if isinstance(out, Path):  # a GeoPackage: its offline basemap goes beside it (~20 s, ~2 MB)
            from . import basemap
            counts["basemap"] = _render_basemap(store, basemap.default_path(out))["tiles"]
    print(json.dumps({"store": str(out), "seed": args.seed, **counts}, ensure_ascii=False))
    return 0


def _render_basemap(store, out, crs: str = "cgcs2000") -> dict:
    from . import basemap
    from .atlas import Atlas
    return basemap.render_basemap(Atlas.from_store(store), out, crs=crs)


def cmd_basemap(args) -> int:
    from . import basemap
    from .paths import output_path
    with open_store(args.db) as store:
        out = output_path(args.out or basemap.default_path(store.url))
        print(json.dumps(_render_basemap(store, out, args.crs), ensure_ascii=False))
    return 0


def cmd_province(args) -> int:
    from .demo.province import write_province
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if out.exists():
        out.unlink()
    with open_store(args.db) as source, open_store(out, create=True) as target:
        counts = write_province(source, target, args.districts, args.columns)
    print(json.dumps({"store": str(out), "districts": args.districts, **counts}, ensure_ascii=False))
    return 0


def _require_populated(store) -> None:
    from .store.base import require_populated
    require_populated(store)


def cmd_check(args) -> int:
    from .coverage import check_store
    with open_store(args.db) as store:
        _require_populated(store)
        report = check_store(store)
    print(report.to_text())
    return 0 if report.ok else 1


def cmd_locate(args) -> int:
    if not args.input:
        return _locate_point(args)
    if not args.output:
        print("batch locate needs -o OUT", file=sys.stderr)
        return 2
    url = store_url(args.db)
    cached = None
    if not args.dask and not is_database_url(url):  # the Dask path ships the atlas's tables to its workers
        from .locate_cache import locator
        cached = locator(url)
    if cached is None:  # the atlas imports pandas; a cached CSV/GeoParquet job never does
        from .atlas import Atlas
        with open_store(url) as store:
            atlas = Atlas.for_location(store)  # no households: location never reads them
    from tqdm import tqdm
    columns = {"x_col": args.x_col, "y_col": args.y_col, "wkt_col": args.wkt_col}
    with tqdm(desc="locate", unit="pt", disable=args.quiet) as bar:
        if args.dask:
            from .dask_locate import close, connect, locate_file_dask
            client = connect(args.dask)
            try:
                res = locate_file_dask(args.input, args.output, atlas, client, crs=args.crs,
                                       on_invalid=args.on_invalid, progress=bar, **columns)
            finally:
                close(client)
        else:
            from .batchio import locate_file
            locate = cached.locate_arrow if cached is not None else atlas.locate_many
            res = locate_file(args.input, args.output, locate, crs=args.crs,
                              on_invalid=args.on_invalid, progress=bar, **columns)
    print(json.dumps({"rows": res.rows, "located": res.located, "outside": res.outside,
                      "invalid": len(res.invalid), "output": args.output}))
    return 0


def _locate_point(args) -> int:
    """One point: from the on-disk locate cache of a GeoPackage store (no pandas), else the atlas."""
    if args.lon is None or args.lat is None:
        print("give --lon and --lat, or an input file", file=sys.stderr)
        return 2
    from . import crs as crs_mod
    x, y = crs_mod.validate_coordinates(args.lon, args.lat, args.crs)
    lon, lat = crs_mod.to_storage(x, y, args.crs)
    url = store_url(args.db)
    cached = None
    if not is_database_url(url):
        from .locate_cache import locator
        cached = locator(url)
    if cached is not None:
        answer = cached.locate_one(float(lon), float(lat))
    else:
        from .atlas import Atlas
        with open_store(url) as store:
            answer = Atlas.for_location(store).locate_one(float(lon), float(lat)).to_dict()
    print(json.dumps(answer, ensure_ascii=False))
    return 0


def cmd_export(args) -> int:
    from .export import export_layer
    with open_store(args.db) as store:
        _require_populated(store)
        n = export_layer(store, args.layer, args.format, args.output, args.crs)
    print(json.dumps({"layer": args.layer, "features": n, "output": args.output}))
    return 0


#: seconds an import may take before it stops, writing nothing (``--budget-s`` wins)
IMPORT_BUDGET_ENV, IMPORT_BUDGET_S = "GIS_GRID_IMPORT_BUDGET_S", 1800.0


def cmd_import(args) -> int:
    from .budget import Budget
    from .errors import BudgetExceededError
    from .importing import CoverageRefusedError, ImportRejectedError, import_layer
    from .security import audit
    seconds = args.budget_s if args.budget_s is not None else float(os.environ.get(IMPORT_BUDGET_ENV, IMPORT_BUDGET_S))
    budget = Budget("the import", seconds, hint=f"raise --budget-s (or {IMPORT_BUDGET_ENV}) or import a smaller file")
    # an import replaces data the API serves: its record commits with the data, or not at all
    record = audit.new_record(key_id=None, role="cli", scope=None, action="import", resource=f"layer/{args.layer}")
    with open_store(args.db) as store:
        try:
            summary = import_layer(store, args.layer, args.file, crs=args.crs, src_layer=args.src_layer,
                                   dry_run=args.dry_run, audit=record, budget=budget)
        except BudgetExceededError as exc:
            print(f"error: {exc.message}; nothing was written", file=sys.stderr)
            print(f"  steps done: {', '.join(exc.detail['steps_done']) or 'none'}", file=sys.stderr)
            return 3
        except ImportRejectedError as exc:  # every offending feature, not the first 20
            print(f"error: {exc.message}", file=sys.stderr)
            for p in exc.detail:
                print(f"  row {p['row']} ({p['feature']}): {p['reason']}", file=sys.stderr)
            return 2
        except CoverageRefusedError as exc:  # exit 1, as `gis-grid check` does on violations
            print(f"error: {exc.message}", file=sys.stderr)
            print(exc.report.to_text(max_violations=len(exc.report.violations)), file=sys.stderr)
            return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def cmd_keys(args) -> int:
    from datetime import datetime, timezone

    from .security import audit, keys
    with open_store(args.db) as store:
        if args.keys_command == "create":
            keys.check_scope_exists(store, args.role, args.scope)
            record, token = keys.create_key(store, args.role, args.scope, days=args.days, note=args.note)
            print(json.dumps(record, ensure_ascii=False))
            print(token)  # last line: the only time the secret is shown
        elif args.keys_command == "list":
            for record in store.keys():
                print(json.dumps(record, ensure_ascii=False))
        else:
            store.revoke_key(args.key_id, datetime.now(timezone.utc).isoformat())
            store.append_audit(audit.new_record(key_id=None, role="cli", scope=None, action="key.revoke",
                                                resource=f"key/{args.key_id}"))
            print(f"revoked {args.key_id}")
    return 0


def cmd_audit(args) -> int:
    from .security.audit import verify_store
    with open_store(args.db) as store:
        _require_populated(store)  # "OK: 0 records" of the wrong store would hide a broken chain
        ok, seq, message = verify_store(store, unkeyed_until=args.unkeyed_until)
    print(("OK: " if ok else f"BROKEN at record {seq}: ") + message)
    return 0 if ok else 1


def cmd_db(args) -> int:
    from .store.postgis import database, migrate
    url = args.db or os.environ.get(DATABASE_URL_ENV)
    if not url or not is_database_url(url):
        print("gis-grid db manages a PostGIS database: pass --db postgresql://USER@HOST:PORT/NAME (a superuser: "
              "migrations create roles and the postgis extension) or set GIS_GRID_DATABASE_URL", file=sys.stderr)
        return 2
    created = database.create(url)
    print(json.dumps({"database": database.redact(url), "created": created, "revision": migrate.head()}))
    return 0


def cmd_serve(args) -> int:
    from api.server import serve  # the API lives outside the library
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    return serve(db=args.db, host=args.host, port=args.port, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gis-grid", description="grid-based social management GIS")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate the Shizhong demo district")
    p.add_argument("--seed", type=int, default=370402)
    p.add_argument("--out", default=None, help=f"store to write (default {default_store_path()})")
    p.add_argument("--force", action="store_true", help="overwrite an existing store")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("province", help="tile the district in --db into a synthetic province (grids only)")
    _db(p)
    p.add_argument("--out", required=True, help="store to write")
    p.add_argument("--districts", type=int, default=22, help="copies of the district (22 x 445 = 9,790 grids)")
    p.add_argument("--columns", type=int, default=None, help="districts per row (default: a square layout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing store")
    p.set_defaults(func=cmd_province)

    p = sub.add_parser("check", help="verify 区不漏地/地不漏房/房不漏户/户不漏人")
    _db(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("locate", help="which grid is this point in? one point or a file")
    _db(p)
    p.add_argument("input", nargs="?", help="CSV (lon/lng/longitude/x and lat/latitude/y columns, any case, or a "
                                            "WKT column wkt/geometry), GeoJSON, GeoParquet or GeoPackage")
    p.add_argument("-o", "--output", help="output file; the format follows the extension")
    p.add_argument("--lon", type=float)
    p.add_argument("--lat", type=float)
    p.add_argument("--crs", default=None, help=CRS_HELP + "; for a file that declares its CRS only gcj02/bd09 "
                                                         "(offset data labelled WGS84) or the same CRS")
    p.add_argument("--x-col", default=None, help="the x/longitude column, when its name is not recognised")
    p.add_argument("--y-col", default=None, help="the y/latitude column, with --x-col")
    p.add_argument("--wkt-col", default=None, help="a column of WKT points to locate instead of x/y columns")
    p.add_argument("--on-invalid", choices=["fail", "mark"], default="fail",
                   help="fail (default): exit non-zero naming bad rows; mark: write them with an error column")
    p.add_argument("--dask", metavar="ADDRESS|local", default=None,
                   help="run a file job on a Dask scheduler (tcp://HOST:PORT; the workers must see IN) "
                        "or on a local cluster of 2 worker processes")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_locate)

    p = sub.add_parser("export", help="export a layer")
    _db(p)
    p.add_argument("--layer", required=True, choices=["streets", "communities", "grids", "buildings", "households"])
    p.add_argument("--format", required=True, choices=["geojson", "gpkg", "parquet", "shp", "fgb"])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--crs", default="EPSG:4490", help="output CRS: EPSG:4326, EPSG:4490, EPSG:4548, gcj02, bd09")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="replace grids, buildings or households with a district's own file "
                                      "(checked first; nothing is written on a violation)")
    _db(p)
    p.add_argument("--layer", required=True, choices=["grids", "buildings", "households"])
    p.add_argument("file", help="GeoPackage, GeoParquet, Shapefile, GeoJSON or FlatGeobuf (columns: "
                                "gis_grid/importing/README.md)")
    p.add_argument("--crs", default=None, help="the file's CRS when it declares none, or gcj02/bd09 for "
                                               "offset data labelled WGS84: EPSG:4326, EPSG:4490, EPSG:4548, gcj02, bd09")
    p.add_argument("--src-layer", default=None, help="the layer to read from a multi-layer GeoPackage")
    p.add_argument("--dry-run", action="store_true", help="validate and check, write nothing")
    p.add_argument("--budget-s", type=float, default=None,
                   help=f"stop (writing nothing) after this many seconds (default ${IMPORT_BUDGET_ENV}, else "
                        f"{IMPORT_BUDGET_S:g})")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("create", help="create a key; its token is printed once, on the last line")
    _db(k)
    k.add_argument("--role", required=True, help="command_center, street_admin, community_admin, grid_worker, "
                                                 "planner, external_system, auditor or admin")
    k.add_argument("--scope", required=True, help="a division code: the part of the hierarchy the key may see; a department key "
                   "also names its department, e.g. 370402:justice")
    k.add_argument("--days", type=int, default=90, help="lifetime in days (default 90)")
    k.add_argument("--note", default="")
    k = keys_sub.add_parser("list", help="list keys (never their secrets)")
    _db(k)
    k = keys_sub.add_parser("revoke", help="revoke a key by id")
    _db(k)
    k.add_argument("key_id")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("audit", help="the audit log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    k = audit_sub.add_parser("verify", help="check the hash chain (keyed by GIS_GRID_AUDIT_KEY_FILE or "
                                            "GIS_GRID_AUDIT_KEY); exit 1 if it is broken")
    _db(k)
    k.add_argument("--unkeyed-until", type=int, default=0, metavar="SEQ",
                   help="accept unkeyed records up to this seq (written before the audit key was set)")
    p.set_defaults(func=cmd_audit)

    sub.add_parser("map", help="incident heatmap / response choropleth / warnings page: "
                              "gis-grid map --layer L [--from D --to D] -o FILE.html (see gis-grid map -h)")

    p = sub.add_parser("db", help="PostGIS: create and migrate the database (gis-grid db upgrade --db URL)")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    u = db_sub.add_parser("upgrade", help="create the database if missing and migrate it to the newest schema")
    _db(u)
    u.set_defaults(func=cmd_db)

    p = sub.add_parser("basemap", help="render the offline basemap (MBTiles) from the store's own layers")
    _db(p)
    p.add_argument("--out", default=None, help="MBTiles file (default: beside the store, <stem>-basemap.mbtiles)")
    p.add_argument("--crs", default="cgcs2000", choices=["cgcs2000", "gcj02"],
                   help="gcj02 draws it like an AMap package (serve it with GIS_GRID_BASEMAP_CRS=gcj02)")
    p.set_defaults(func=cmd_basemap)

    p = sub.add_parser("serve", help="run the HTTP API and map viewer")
    _db(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (replicas of the atlas, each ~400 MB for the demo)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["map"]:  # the incident map page has its own options
        from web.incident_pages import main as map_main
        try:
            return map_main(argv[1:], prog="gis-grid map")
        except GisGridError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GisGridError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        detail = exc.detail if isinstance(exc.detail, list) else None
        for d in (detail or [])[:20]:
            print(f"  row {d.get('row')}: {d.get('reason')}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        # a path the caller named: say which, without a traceback
        print(f"error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
