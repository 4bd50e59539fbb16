"""Commands that expect a populated store refuse an empty one by name, without its password.

Without ``--db`` a command reads the default GeoPackage, not the database the service uses:
`audit verify` then said "OK: 0 records, chain intact" about the wrong store."""
from __future__ import annotations

import pytest

from gis_grid.cli import main
from gis_grid.store import open_store
from gis_grid.store.base import EmptyStoreError
from stores import is_postgis, location

SECRET = "s3cret-pw"


def _empty(tmp_path) -> str:
    loc = location(tmp_path / "empty.gpkg")
    open_store(loc, create=True).close()
    if is_postgis():  # the test cluster trusts loopback, so a password in the URL is accepted and ignored
        scheme, _, rest = loc.partition("://")
        user, _, host = rest.partition("@")
        loc = f"{scheme}://{user}:{SECRET}@{host}"
    return loc


@pytest.mark.parametrize("argv", [["audit", "verify"], ["check"], ["export", "--layer", "grids", "--format", "geojson", "-o", "{out}"],
                                  ["locate", "--lon", "117.5", "--lat", "34.8"]])
def test_a_command_on_an_empty_store_says_so(tmp_path, capsys, argv):
    loc = _empty(tmp_path)
    argv = [a.replace("{out}", str(tmp_path / "out.geojson")) for a in argv]
    assert main([*argv, "--db", loc]) == 2
    err = capsys.readouterr().err
    assert "has no divisions; did you mean another store?" in err
    assert "--db" in err and "GIS_GRID_DATABASE_URL" in err
    assert SECRET not in err
    shown = loc.replace(f":{SECRET}@", ":***@") if is_postgis() else loc
    assert f"the store at {shown} " in err


def test_serving_an_empty_store_says_so(tmp_path):
    from api.app import create_app
    from api.settings import Settings
    loc = _empty(tmp_path)
    with pytest.raises(EmptyStoreError, match="has no divisions") as exc:
        create_app(Settings(db=loc))
    assert SECRET not in exc.value.message


def test_a_populated_store_passes(tmp_path, capsys):
    from common import make_toy_store
    loc = location(tmp_path / "toy.gpkg")
    make_toy_store(loc).close()
    assert main(["audit", "verify", "--db", loc]) == 0
    assert main(["check", "--db", loc]) == 0
