"""`locate --dask`: a LocalCluster of 2 worker processes gives exactly the single-process output."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from common import X0, X1, XM, Y0, Y1, YM, make_toy_store
from gis_grid.atlas import Atlas
from gis_grid.batchio import locate_file
from gis_grid.cli import main
from gis_grid.errors import InvalidCoordinatesError, InvalidInputError

distributed = pytest.importorskip("distributed")
from gis_grid.dask_locate import locate_file_dask  # noqa: E402

N = 3000


@pytest.fixture(scope="module")
def toy(store_backend, tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "t.gpkg"
    store = make_toy_store(path)
    try:
        yield store.url, Atlas.from_store(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _points() -> pd.DataFrame:
    """Uniform points around the toy district (some outside) plus points exactly on its edges and vertices."""
    rng = np.random.default_rng(7)
    lon = rng.uniform(X0 - 0.005, X1 + 0.005, N)
    lat = rng.uniform(Y0 - 0.005, Y1 + 0.005, N)
    k = N // 5  # every 5th point on a shared edge, a shared vertex or the outer boundary
    edges = np.array([(XM, YM), (X0, YM), (XM, Y1), (X1, Y0), (XM, 34.8123), (117.5071, YM)])
    pick = edges[rng.integers(0, len(edges), k)]
    lon[::5], lat[::5] = pick[:, 0], pick[:, 1]
    return pd.DataFrame({"id": [f"p{i}" for i in range(N)], "lon": lon, "lat": lat, "speed": rng.uniform(0, 90, N)})


def _read(path) -> pd.DataFrame:
    if str(path).endswith(".csv"):
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_parquet(path)


def _both(toy, client, src, tmp_path, ext, **kw):
    _, atlas = toy
    one, many = tmp_path / f"one.{ext}", tmp_path / f"dask.{ext}"
    r1 = locate_file(src, one, atlas.locate_many, **kw)
    r2 = locate_file_dask(src, many, atlas, client, partition_bytes=16_000, **kw)
    return r1, r2, _read(one), _read(many)


def test_cluster_has_two_worker_processes(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert len({w["host"] + str(w.get("pid", i)) for i, w in enumerate(workers.values())}) == 2
    assert len(set(client.run(lambda: __import__("os").getpid()).values())) == 2


def test_csv_identical_to_single_process(toy, client, tmp_path):
    src = tmp_path / "in.csv"
    _points().to_csv(src, index=False)
    r1, r2, one, many = _both(toy, client, src, tmp_path, "csv")
    pd.testing.assert_frame_equal(many, one)
    assert (r2.rows, r2.located, r2.outside) == (r1.rows, r1.located, r1.outside) == (N, r1.located, N - r1.located)
    assert 0 < r1.outside < N
    on_vertex = (one["lon"].astype(float) == XM) & (one["lat"].astype(float) == YM)
    assert on_vertex.any() and (one.loc[on_vertex, "grid"] == "370402001001001").all()  # lowest code wins


def test_several_partitions_were_used(toy, client, tmp_path):
    from gis_grid.dask_locate import _partitions
    src = tmp_path / "in.csv"
    _points().to_csv(src, index=False)
    parts = _partitions(src, 16_000)
    assert len(parts) >= 5  # otherwise the order test above proves nothing


def test_geoparquet_identical_to_single_process(toy, client, tmp_path):
    df = _points()
    src = tmp_path / "in.parquet"
    gpd.GeoDataFrame(df[["id", "speed"]], geometry=gpd.points_from_xy(df["lon"], df["lat"]),
                     crs=4326).to_parquet(src, row_group_size=400)
    r1, r2, one, many = _both(toy, client, src, tmp_path, "parquet")
    pd.testing.assert_frame_equal(many, one)
    assert r2.located == r1.located and len(one) == N


def test_invalid_rows_named_alike_and_nothing_written(toy, client, tmp_path):
    df = _points()
    df.loc[10, "lat"] = np.nan
    df.loc[2500, "lon"] = 999.0
    src = tmp_path / "bad.csv"
    df.to_csv(src, index=False)
    _, atlas = toy
    with pytest.raises(InvalidCoordinatesError) as one:
        locate_file(src, tmp_path / "one.csv", atlas.locate_many)
    with pytest.raises(InvalidCoordinatesError) as many:
        locate_file_dask(src, tmp_path / "dask.csv", atlas, client, partition_bytes=16_000)
    assert [r["row"] for r in many.value.detail] == [r["row"] for r in one.value.detail] == [11, 2501]
    assert not (tmp_path / "dask.csv").exists() and not list(tmp_path.glob(".*partial"))
    r1, r2, a, b = _both(toy, client, src, tmp_path, "csv", on_invalid="mark")
    pd.testing.assert_frame_equal(b, a)
    assert b["error"].ne("").sum() == 2


def test_missing_columns_is_a_clear_error(toy, client, tmp_path):
    src = tmp_path / "nolat.csv"
    pd.DataFrame({"lon": [117.5], "height": [34.8]}).to_csv(src, index=False)
    with pytest.raises(InvalidInputError, match="no y column"):
        locate_file_dask(src, tmp_path / "o.csv", toy[1], client)


def test_cli_dask_address(toy, client, tmp_path, capsys):
    db, atlas = toy
    src = tmp_path / "in.csv"
    _points().to_csv(src, index=False)
    locate_file(src, tmp_path / "one.csv", atlas.locate_many)
    code = main(["locate", "--db", db, str(src), "-o", str(tmp_path / "cli.csv"), "--quiet",
                 "--dask", client.scheduler.address])
    assert code == 0
    assert '"rows": 3000' in capsys.readouterr().out
    pd.testing.assert_frame_equal(_read(tmp_path / "cli.csv"), _read(tmp_path / "one.csv"))
