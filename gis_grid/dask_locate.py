"""Batch location on a Dask cluster: `gis-grid locate IN -o OUT --dask ADDRESS|local`.

The workers read the input themselves (dask.dataframe over CSV byte blocks or
GeoParquet row groups, so they must see the path: local disk for ``local``,
shared storage for a remote cluster), locate their partitions, and the client
writes the results in partition order through the same writer as the
single-process path. Each partition runs batchio's own parse/check/locate
functions, so the output is identical row for row, column for column.

The atlas is *scattered once with broadcast=True*, not reloaded from the store
on every worker: a remote worker needs neither the store's path nor database
credentials, the ~2 s load is paid once instead of once per worker, and what
is sent is only the lookup tables and codes (:class:`Locator`), never the
households or residents the full atlas holds.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

import shapely

from . import crs as crs_mod
from .atlas import Atlas
from .batch_arrow import TableWriter
from .batchio import (OUT_COLUMNS, BatchResult, InputSpec, arrow_chunks, check_chunk, file_format, finish,
                      frame_table, inspect_input, locate_table, parse_chunk)
from .errors import InvalidInputError

LOCAL = "local"
PARTITION_BYTES = 64 * 2**20


class Locator:
    """The part of an atlas that :meth:`Atlas.locate_many` reads: cell tables and codes.

    It borrows Atlas's own methods rather than copying them, so a change to how the
    atlas locates points changes the Dask path too (the Dask test compares both).
    """

    locate_many = Atlas.locate_many
    buildings_at = Atlas.buildings_at

    def __init__(self, atlas: Atlas):
        self.grid_index = atlas.grid_index
        self.building_index = atlas.building_index
        self.building_ids = atlas.building_ids
        self._level_categories = atlas._level_categories
        self._building_id_strings = atlas._building_id_strings
        self._prepared = True

    def __getstate__(self):
        return {**self.__dict__, "_prepared": False}

    def ready(self) -> "Locator":
        # prepared GEOS geometries do not survive pickling; prepare once per worker
        if not self._prepared:
            for index in (self.grid_index, self.building_index):
                if index is not None:
                    shapely.prepare(index.geoms)
            self._prepared = True
        return self


def connect(address: str):
    """A distributed Client: ``local`` starts a LocalCluster of 2 single-threaded worker processes."""
    from distributed import Client, LocalCluster
    if address == LOCAL:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client._gis_grid_cluster = cluster  # closed with the client, see close()
        return client
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InvalidInputError(f"cannot reach the Dask scheduler at {address!r}: {exc}. "
                                "Give tcp://HOST:PORT of a running scheduler, or 'local'.") from exc


def close(client) -> None:
    cluster = getattr(client, "_gis_grid_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _partitions(src: Path, partition_bytes: int, spec: InputSpec | None = None):
    """Delayed raw frames in file order, read with the single-process reader's column types."""
    import dask
    import dask.dataframe as dd
    spec = spec or inspect_input(src)
    # strings stay object columns, as the single-process reader makes them
    with dask.config.set({"dataframe.convert-string": False}):
        if spec.fmt == "csv":
            ddf = dd.read_csv(str(src), dtype=spec.csv_dtypes, keep_default_na=False, na_values=spec.csv_na,
                              blocksize=partition_bytes)
            return ddf.to_delayed()
        if spec.fmt == "parquet":
            ddf = dd.read_parquet(str(src), split_row_groups=True)
            return ddf.to_delayed()
    # GeoJSON / GeoPackage cannot be split: one partition, read on a worker
    return [dask.delayed(_read_whole)(str(src), spec)]


def _read_whole(src: str, spec: InputSpec):
    (chunk,) = arrow_chunks(Path(src), 0, spec)
    return chunk


def _locate_partition(raw, spec: InputSpec, name, locator: Locator, on_invalid, geometry: bool):
    """One partition: (output Arrow table or None when it fails the job, reasons)."""
    if spec.fmt in ("csv", "parquet"):
        x, y, reasons = parse_chunk(raw, spec, name)
        table = frame_table(raw, spec)
    else:  # read whole by the single-process reader itself
        table, x, y, reasons = raw
    reasons = check_chunk(x, y, reasons, spec.crs)
    if on_invalid == "fail" and (reasons != "").any():
        return None, reasons  # the job will fail: don't ship rows back
    return locate_table(table, x, y, reasons, locator.ready().locate_many, spec,
                        mark=on_invalid == "mark", geometry=geometry), reasons


def locate_file_dask(src, dst, atlas: Atlas, client, crs=None, on_invalid: str = "fail", progress=None,
                     partition_bytes: int = PARTITION_BYTES, in_flight: int | None = None,
                     x_col: str | None = None, y_col: str | None = None, wkt_col: str | None = None) -> BatchResult:
    """:func:`gis_grid.batchio.locate_file` on a Dask cluster, with the same output and errors.

    At most ``in_flight`` partitions (default two per worker) are computed ahead
    of the writer, so the client's memory is bounded whatever the input size.
    """
    import dask
    if on_invalid not in ("fail", "mark"):
        raise InvalidInputError("on_invalid must be 'fail' or 'mark'")
    src, dst = Path(src), Path(dst)
    # columns, types and CRS are settled here, before any work is sent, exactly as locate_file does
    spec = inspect_input(src, crs, x_col, y_col, wkt_col)
    out_fmt = file_format(dst)
    writer = TableWriter(dst.with_name(f".{dst.name}.partial"), out_fmt, spec.out_geometry, OUT_COLUMNS)
    result = BatchResult()
    try:
        try:
            parts = _partitions(src, partition_bytes, spec)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read {src.name} as {file_format(src)}: {exc}") from exc
        [located] = client.scatter([Locator(atlas)], broadcast=True, hash=False)
        task = dask.delayed(_locate_partition, pure=False)
        window = in_flight or 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        todo = iter(parts)
        running: deque = deque()

        def submit_next():
            part = next(todo, None)
            if part is not None:
                running.append(client.compute(task(part, spec, src.name, located, on_invalid, out_fmt != "csv")))

        for _ in range(window):
            submit_next()
        while running:
            out, reasons = _result(running.popleft(), src)
            submit_next()
            result.count(reasons)
            if out is not None and not (result.invalid and on_invalid == "fail"):
                result.tally(out, reasons)
                writer.write(out)
            if progress is not None:
                progress.update(len(reasons))
        finish(result, on_invalid, src, writer, dst)
        return result
    finally:
        writer.abort()


def _result(future, src: Path):
    from .errors import GisGridError
    try:
        return future.result()
    except GisGridError:
        raise
    except Exception as exc:  # a worker could not parse its block: the file is the problem
        raise InvalidInputError(f"cannot read {src.name} as {file_format(src)}: {exc}") from exc
