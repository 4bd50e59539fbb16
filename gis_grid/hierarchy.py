"""The four grid levels and their codes.

Codes nest by prefix: a 6-digit district (GB/T 2260), 9-digit street/town,
12-digit community/village (statistical code) and 15-digit base grid
(community code plus a 3-digit sequence). The parent of a code is its prefix.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import InvalidInputError


class Level(str, enum.Enum):
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"

    @property
    def code_length(self) -> int:
        return _CODE_LENGTH[self]

    @property
    def depth(self) -> int:
        return _ORDER.index(self)

    @property
    def parent(self) -> "Level | None":
        return _ORDER[self.depth - 1] if self.depth else None

    @property
    def child(self) -> "Level | None":
        return _ORDER[self.depth + 1] if self.depth + 1 < len(_ORDER) else None

    @classmethod
    def parse(cls, name: str) -> "Level":
        key = str(name).strip().lower()
        aliases = {"streets": "street", "street_town": "street", "communities": "community",
                   "community_village": "community", "grids": "grid", "base_grid": "grid",
                   "districts": "district"}
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise InvalidInputError(
                f"unknown level {name!r}; use one of {', '.join(l.value for l in cls)}") from None


_ORDER = [Level.DISTRICT, Level.STREET, Level.COMMUNITY, Level.GRID]
_CODE_LENGTH = {Level.DISTRICT: 6, Level.STREET: 9, Level.COMMUNITY: 12, Level.GRID: 15}
_BY_LENGTH = {v: k for k, v in _CODE_LENGTH.items()}
_DIGITS = re.compile(r"^[0-9]+$")


def level_of(code: str) -> Level:
    """Level of a division code, from its length.

    >>> level_of("370402001013").value
    'community'
    """
    code = str(code)
    if not _DIGITS.match(code) or len(code) not in _BY_LENGTH:
        raise InvalidInputError(
            f"{code!r} is not a division code: expected 6, 9, 12 or 15 digits "
            "(district, street/town, community/village, base grid)")
    return _BY_LENGTH[len(code)]


def parent_code(code: str) -> str | None:
    """Code of the parent division, or None for a district.

    >>> parent_code("370402001013001")
    '370402001013'
    """
    level = level_of(code)
    return code[: level.parent.code_length] if level.parent else None


def ancestors(code: str) -> list[str]:
    """Codes from the district down to ``code`` itself."""
    level = level_of(code)
    return [code[: l.code_length] for l in _ORDER[: level.depth + 1]]


def is_within(code: str, scope: str) -> bool:
    """True when ``code`` is ``scope`` or lies below it."""
    return str(code).startswith(str(scope)) and len(code) >= len(scope)


@dataclass(frozen=True)
class Division:
    """A named division at one level; ``kind`` is urban/rural for communities."""

    code: str
    name: str
    level: Level
    parent_code: str | None
    kind: str | None = None


def community_kind(name: str) -> str:
    """'urban' for a residents' committee (居委会), 'rural' for a villagers' committee.

    The shared reference note counts 62 urban units, but three of its names are
    村民委员会 (villagers' committees, codes 370402103225-227): we classify by
    the name, which gives 59 urban communities and 111 villages.
    """
    if name.endswith("村委会") or name.endswith("村民委员会"):
        return "rural"
    if name.endswith("居委会") or name.endswith("居民委员会"):
        return "urban"
    raise InvalidInputError(f"cannot tell whether {name!r} is a community or a village")
