"""A CLI import commits its audit record in the import's own transaction, and stops within its budget.

Either both the data and the record are written, or neither: a record that cannot be
appended rolls the data back, and a write that fails leaves no record. An import past its
time budget writes nothing either.
"""
from __future__ import annotations

import pytest

from common import make_toy_store
from gis_grid.cli import main
from gis_grid.errors import StoreError
from gis_grid.export import export_layer
from gis_grid.store import open_store
from gis_grid.store.gpkg import security as gpkg_security
from gis_grid.store.postgis import security as pg_security
from stores import location
from test_import import fingerprint, make_b_grids, make_b_households


def _a_file(tmp_path, layer):
    """Store A's layer as a file: importing it into B (whose layer differs) changes B."""
    make_toy_store(tmp_path / "a.gpkg").close()
    out = tmp_path / f"a_{layer}.gpkg"
    with open_store(location(tmp_path / "a.gpkg")) as a:
        export_layer(a, layer, "gpkg", out)
    return out


def _b(tmp_path, layer):
    {"grids": make_b_grids, "households": make_b_households}[layer](tmp_path / "b.gpkg").close()
    return location(tmp_path / "b.gpkg")


def _state(loc):
    with open_store(loc) as s:
        return s.atlas_version(), s.audit_records()


@pytest.mark.parametrize("layer", ["grids", "households"])  # apply_changeset and replace_all
def test_a_successful_import_leaves_data_and_record_together(tmp_path, layer):
    file, b = _a_file(tmp_path, layer), _b(tmp_path, layer)
    version, records = _state(b)
    assert main(["import", "--db", str(b), "--layer", layer, str(file)]) == 0
    after, now = _state(b)
    assert after == version + 1 and len(now) == len(records) + 1
    rec = now[-1]
    assert (rec["action"], rec["resource"], rec["role"]) == ("import", f"layer/{layer}", "cli")
    assert rec["result"].startswith(f"ok: version {version} -> {after}; ") and file.name in rec["result"]


@pytest.mark.parametrize("layer", ["grids", "households"])
def test_an_import_whose_record_cannot_be_written_writes_no_data(tmp_path, layer, monkeypatch, capsys):
    file, b = _a_file(tmp_path, layer), _b(tmp_path, layer)
    before = fingerprint(b)
    records = len(_state(b)[1])

    def refuse(*args, **kwargs):
        raise StoreError("the audit log refused the record")

    monkeypatch.setattr(gpkg_security, "append_audit_in", refuse)
    monkeypatch.setattr(pg_security, "append_audit_in", refuse)
    assert main(["import", "--db", str(b), "--layer", layer, str(file)]) == 2
    assert "audit log refused" in capsys.readouterr().err
    monkeypatch.undo()
    assert fingerprint(b) == before and len(_state(b)[1]) == records


def test_an_import_whose_write_fails_leaves_no_record(tmp_path):
    from gis_grid.importing import import_layer
    from gis_grid.security import audit
    file, b = _a_file(tmp_path, "grids"), _b(tmp_path, "grids")
    before = fingerprint(b)
    records = len(_state(b)[1])
    with open_store(b) as s:
        def crash():
            raise StoreError("the disk filled up half-way through the write")
        s.mid_apply = crash  # inside the apply transaction, after the new grids are written
        record = audit.new_record(key_id=None, role="cli", scope=None, action="import", resource="layer/grids")
        with pytest.raises(StoreError, match="disk filled"):
            import_layer(s, "grids", file, audit=record)
    assert fingerprint(b) == before and len(_state(b)[1]) == records


def test_an_import_past_its_budget_stops_and_writes_nothing(tmp_path, capsys):
    file, b = _a_file(tmp_path, "grids"), _b(tmp_path, "grids")
    before = fingerprint(b)
    assert main(["import", "--db", str(b), "--layer", "grids", str(file), "--budget-s", "0.000001"]) == 3
    err = capsys.readouterr().err
    assert "ran past its budget of 1e-06 s" in err and "nothing was written" in err
    assert "stopped before reading the file" in err and "steps done: none" in err
    assert fingerprint(b) == before


def test_an_import_that_runs_out_of_time_while_checking_writes_nothing(tmp_path, monkeypatch, capsys):
    import time

    from gis_grid.importing import commit
    file, b = _a_file(tmp_path, "grids"), _b(tmp_path, "grids")
    before = fingerprint(b)
    check = commit._check

    def slow_check(*args):  # a coverage check that outlasts the budget
        time.sleep(2.5)
        return check(*args)

    monkeypatch.setattr(commit, "_check", slow_check)
    assert main(["import", "--db", str(b), "--layer", "grids", str(file), "--budget-s", "2"]) == 3
    err = capsys.readouterr().err
    assert "stopped before writing" in err and "checking coverage" in err
    assert fingerprint(b) == before and not _state(b)[1]
