"""Division codes and levels."""
from __future__ import annotations

import pytest

from gis_grid.errors import InvalidInputError
from gis_grid.hierarchy import Level, ancestors, community_kind, is_within, level_of, parent_code

pytestmark = pytest.mark.store_free  # opens no store: runs once, not once per backend


@pytest.mark.parametrize("code,level", [("370402", Level.DISTRICT), ("370402001", Level.STREET),
                                        ("370402001013", Level.COMMUNITY), ("370402001013001", Level.GRID)])
def test_level_of(code, level):
    assert level_of(code) is level
    assert len(code) == level.code_length


@pytest.mark.parametrize("bad", ["", "37040", "3704020", "37040200101300", "37040200101300a", "abcdef",
                                 "370402 001", "3704020010130012"])
def test_level_of_rejects(bad):
    with pytest.raises(InvalidInputError, match="not a division code"):
        level_of(bad)


def test_parent_and_ancestors():
    assert parent_code("370402001013001") == "370402001013"
    assert parent_code("370402001013") == "370402001"
    assert parent_code("370402001") == "370402"
    assert parent_code("370402") is None
    assert ancestors("370402001013001") == ["370402", "370402001", "370402001013", "370402001013001"]
    assert ancestors("370402") == ["370402"]


def test_level_navigation_and_parse():
    assert Level.GRID.parent is Level.COMMUNITY and Level.DISTRICT.parent is None
    assert Level.DISTRICT.child is Level.STREET and Level.GRID.child is None
    assert [l.depth for l in Level] == [0, 1, 2, 3]
    assert Level.parse(" Grids ") is Level.GRID
    assert Level.parse("community_village") is Level.COMMUNITY
    with pytest.raises(InvalidInputError, match="unknown level"):
        Level.parse("county")


def test_is_within():
    assert is_within("370402001013001", "370402001")
    assert is_within("370402001", "370402001")
    assert not is_within("370402002013001", "370402001")
    assert not is_within("370402", "370402001")


@pytest.mark.parametrize("name,kind", [("光明路街道文化路社区居委会", "urban"), ("某某居民委员会", "urban"),
                                       ("齐村镇某村委会", "rural"), ("某某村民委员会", "rural")])
def test_community_kind(name, kind):
    assert community_kind(name) == kind


def test_community_kind_unknown():
    with pytest.raises(InvalidInputError):
        community_kind("某某管委会")
