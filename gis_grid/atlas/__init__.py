"""The in-memory atlas: an immutable snapshot of grids, buildings and households.

- :mod:`.snapshot`: :class:`Atlas` (locate, who lives here) and :class:`LocateResult`;
- :mod:`.memo`: the per-snapshot home of derived state (statistics, caches);
- :mod:`.asof`: the atlas as it stood at a past instant;
- :mod:`.holder`: :class:`~.holder.AtlasHolder`, the current snapshot swapped in one assignment.
"""
from .memo import Memo
from .snapshot import LEVELS, Atlas, LocateResult, check_polygon

__all__ = ["Atlas", "LocateResult", "Memo", "LEVELS", "check_polygon"]
