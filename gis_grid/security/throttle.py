"""Failed sign-ins, counted per client and per key id, with a lockout and aggregated audit records.

A flood of bad keys must neither be tried without end nor write one audit record per attempt
(4,743 bad sign-ins in 10 s once wrote 4,786 records). So failures are counted in memory per
client address and per key id (the ``gg_<id>_`` prefix of a token) over a sliding window; past
the limit that client (or that key id, from anywhere) is locked out for a while, and every
attempt meanwhile is refused before any key is looked up. The audit log gets one record when a
client's first failure of a window arrives and one when a lockout starts (with the count and the
key ids tried), never one per attempt.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..errors import RateLimitedError


@dataclass
class _Tally:
    times: deque = field(default_factory=deque)
    locked_until: float = 0.0
    key_ids: set = field(default_factory=set)
    total: int = 0          # failures since the last audit record about this party


def key_id_of(token: str | None) -> str | None:
    """The key id a token names (``gg_<id>_<secret>``), or None when it names none."""
    parts = (token or "").split("_", 2)
    return parts[1][:32] if len(parts) == 3 and parts[0] == "gg" and parts[1] else None


class FailedSignIns:
    """Counts failures; ``check`` refuses locked parties, ``fail`` notes one and says what to audit."""

    def __init__(self, *, per_client: int = 10, per_key: int = 50, window_s: float = 60.0,
                 lockout_s: float = 300.0, clock=time.monotonic, max_parties: int = 100_000):
        self.per_client, self.per_key, self.window_s, self.lockout_s = per_client, per_key, window_s, lockout_s
        self._clock, self._max = clock, max_parties
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._lock = threading.Lock()

    def _parties(self, client: str, key_id: str | None):
        yield ("client", client), self.per_client
        if key_id:
            yield ("key", key_id), self.per_key

    def check(self, client: str, key_id: str | None) -> None:
        """Raise RateLimitedError while the client or the key id is locked out."""
        now = self._clock()
        with self._lock:
            for party, _ in self._parties(client, key_id):
                t = self._tallies.get(party)
                if t is not None and t.locked_until > now:
                    wait = max(1, int(t.locked_until - now + 0.999))
                    what = "this client" if party[0] == "client" else "this key"
                    raise RateLimitedError(f"too many failed sign-ins from {what}; retry in {wait} s",
                                           detail={"retry_after_s": wait})

    def fail(self, client: str, key_id: str | None) -> list[dict]:
        """Note one failure; returns the audit records it calls for (usually none)."""
        now = self._clock()
        out = []
        with self._lock:
            if len(self._tallies) >= self._max:
                self._tallies = {p: t for p, t in self._tallies.items() if t.locked_until > now}
            for party, limit in self._parties(client, key_id):
                t = self._tallies.setdefault(party, _Tally())
                while t.times and t.times[0] <= now - self.window_s:
                    t.times.popleft()
                if not t.times and t.locked_until <= now and party[0] == "client":
                    out.append({"action": "auth.failed", "resource": f"{party[0]}/{party[1]}",
                                "result": f"first failed sign-in of a {self.window_s:g} s window"
                                          + (f" (key {key_id})" if key_id else "")})
                t.times.append(now)
                t.total += 1
                if key_id:
                    t.key_ids.add(key_id)
                if len(t.times) >= limit and t.locked_until <= now:
                    t.locked_until = now + self.lockout_s
                    tried = ", ".join(sorted(t.key_ids)[:10]) or "none"
                    out.append({"action": "auth.lockout", "resource": f"{party[0]}/{party[1]}",
                                "result": f"{t.total} failed sign-ins, {len(t.times)} in {self.window_s:g} s; "
                                          f"locked out for {self.lockout_s:g} s; key ids tried: {tried}"})
                    t.total, t.key_ids = 0, set()
        return out
