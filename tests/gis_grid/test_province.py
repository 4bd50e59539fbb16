"""A synthetic province tiled from the toy district: exact copies, unique codes, loads and checks clean."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from common import X0, X1, XM, Y0, Y1, YM, make_toy_store, toy_divisions
from stores import location
from gis_grid.atlas import Atlas
from gis_grid.cli import main
from gis_grid.coverage import check_store
from gis_grid.demo.province import district_codes, tile_districts, write_province
from gis_grid.errors import InvalidInputError
from gis_grid.store import open_store


@pytest.fixture(scope="module")
def province(store_backend, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("province")
    source = make_toy_store(tmp / "toy.gpkg")
    target = open_store(location(tmp / "province.gpkg"), create=True)
    counts = write_province(source, target, n=3, columns=2)
    yield source, target, counts
    source.close()
    target.close()


def test_counts_and_unique_nested_codes(province):
    _, target, counts = province
    assert counts == {"district": 3, "street": 6, "community": 6, "grid": 12}
    d = target.divisions()
    assert d["code"].is_unique
    assert sorted(d.loc[d["level"] == "district", "code"]) == district_codes(3) == ["370102", "370103", "370104"]
    child = d[d["level"] != "district"]
    assert (child["code"].str[:-3] == child["parent_code"]).all()
    assert set(d.loc[d["level"] == "district", "parent_code"]) == {"370100"}


def test_copies_are_exact_translations_that_do_not_touch(province):
    d = province[1].divisions().sort_values("code")
    grids = d[d["level"] == "grid"]
    src = toy_divisions().query("level == 'grid'").sort_values("code")["geometry"].to_numpy()
    for k, code in enumerate(district_codes(3)):
        mine = grids[grids["code"].str.startswith(code)]["geometry"].to_numpy()
        shift = shapely.get_coordinates(mine) - shapely.get_coordinates(src)
        assert (shift == shift[0]).all()  # one rigid shift, bit for bit
        assert (shift[0] / 2.0 ** -12 == np.round(shift[0] / 2.0 ** -12)).all()
    districts = d[d["level"] == "district"]["geometry"].to_numpy()
    tree = shapely.STRtree(districts)
    a, b = tree.query(districts, predicate="intersects")
    assert (a == b).all()


def test_coverage_check_passes(province):
    report = check_store(province[1])
    assert report.ok, report.to_text()
    assert report.counts["grids"] == 12 and report.counts["districts"] == 3


def test_atlas_locates_in_every_district_with_the_tie_rule(province):
    source, target, _ = province
    atlas = Atlas.from_store(target)
    base = Atlas.from_store(source)
    assert len(atlas.grid_codes) == 12 and atlas.building_index is None
    d = target.divisions().set_index("code")
    rng = np.random.default_rng(3)
    x = np.r_[rng.uniform(X0 - 0.001, X1 + 0.001, 2000), XM, X0]  # margins narrower than the gap
    y = np.r_[rng.uniform(Y0 - 0.001, Y1 + 0.001, 2000), YM, Y1]
    want = base.locate_many(x, y)
    for code in district_codes(3):
        x0, y0 = shapely.get_coordinates(d.loc[code, "geometry"]).min(0)
        dx, dy = x0 - X0, y0 - Y0
        got = atlas.locate_many(x + dx, y + dy)
        expect = want["grid"].astype(str).str.replace("^370402", code, regex=True)
        assert (got["grid"].astype(str) == expect).all()
        assert (got["district"].astype(str) == np.where(expect == "", "", code)).all()
        assert got["grid"].iloc[-2] == code + "001001001"  # the shared vertex: lowest code
        one = atlas.locate_one(XM + dx, 34.815 + dy)
        assert one.district == (code, d.loc[code, "name"])
    # between the districts (the gap) is outside every grid
    gap_x = shapely.total_bounds(d.loc["370102", "geometry"])[2] + 2 ** -13
    assert atlas.locate_one(gap_x, 34.81).outside


def test_source_with_several_districts_or_too_many_copies_is_refused():
    two = tile_districts(toy_divisions(), 2)
    with pytest.raises(InvalidInputError, match="exactly one district"):
        tile_districts(two, 2)
    with pytest.raises(InvalidInputError, match="1..792 districts"):
        district_codes(0)


def test_shift_out_of_the_exact_range_is_refused():
    far = toy_divisions()
    # lon 127.99: the second copy would cross 128, where doubles lose a bit of precision
    far["geometry"] = shapely.transform(far["geometry"].to_numpy(), lambda xy: xy + [10.49, 0.0])
    with pytest.raises(InvalidInputError, match="power-of-two"):
        tile_districts(far, 2)


def test_cli_province(tmp_path, capsys):
    source = make_toy_store(tmp_path / "toy.gpkg")
    db = source.url  # a file or a database, whichever store backend the suite runs on
    source.close()
    out = tmp_path / "p.gpkg"
    assert main(["province", "--db", db, "--out", str(out), "--districts", "2"]) == 0
    assert '"grid": 8' in capsys.readouterr().out
    assert main(["province", "--db", db, "--out", str(out), "--districts", "2"]) == 2
    assert "exists" in capsys.readouterr().err
    with open_store(out) as store:
        assert check_store(store).ok
