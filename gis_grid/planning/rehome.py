"""Cases follow a redraw: each case's current grid is recomputed from its location.

An apply moves every case whose point now lies in another grid (the placement rule of
buildings and of ``locate``: lowest code on a shared edge). The grid a case was
reported in stays in ``reported_grid_code``; the move is appended to the case's event
log (action ``rehome``, role ``system``) and bumps its version, so a worker holding the
case from before the apply reloads it instead of writing the old grid back.

The store backends select the candidate cases inside the apply's transaction (those
whose point is in :attr:`CaseRehoming.bbox`) and write what :meth:`CaseRehoming.moves`
returns, so a case logged while the plan was being computed is re-homed too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from ..incidents.model import event_log

#: event-log action of a re-home (not a workflow step: it never changes the status)
REHOME_ACTION = "rehome"
#: columns the backends read for :meth:`CaseRehoming.moves`
CANDIDATE_COLUMNS = ("id", "lon", "lat", "grid_code", "version", "events")


@dataclass(frozen=True)
class CaseRehoming:
    placer: object            # changeset.PointPlacer of the applied plan (or of the imported grids)
    stamp: str                # the apply's valid_from
    plan_id: int | None
    actor: str | None = None  # who the event log names; default "plan <id>"

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Cases outside this lon/lat box cannot change grid."""
        return tuple(float(v) for v in shapely.bounds(self.placer.replaced))

    def moves(self, cases: pd.DataFrame) -> pd.DataFrame:
        """``id, old, new, version, events`` of the candidate ``cases`` whose grid changes
        (``version`` and ``events`` as they are to be written). ``cases["events"]`` as the store
        holds it: JSON text, a list, or null (read only for the cases that move)."""
        out = pd.DataFrame({"id": [], "old": [], "new": [], "version": [], "events": []})
        if not len(cases):
            return out
        pts = shapely.points(cases["lon"].to_numpy(dtype=float), cases["lat"].to_numpy(dtype=float))
        new = self.placer.place(pts)
        old = cases["grid_code"].to_numpy(dtype=object)
        hit = np.flatnonzero(np.array([n is not None and n != o for n, o in zip(new, old)], dtype=bool))
        if not len(hit):
            return out
        who = self.actor or ("plan" if self.plan_id is None else f"plan {self.plan_id}")
        events = []
        for k in hit:
            log = event_log(cases["events"].iloc[k])
            log.append({"action": REHOME_ACTION, "at": self.stamp, "actor": who, "role": "system",
                        "note": f"grid {old[k]} -> {new[k]} (boundary redraw)"})
            events.append(log)
        version = pd.to_numeric(cases["version"].iloc[hit], errors="coerce").fillna(1).astype(int) + 1
        return pd.DataFrame({"id": cases["id"].to_numpy(dtype=object)[hit], "old": old[hit], "new": new[hit],
                             "version": version.to_numpy(), "events": events})
