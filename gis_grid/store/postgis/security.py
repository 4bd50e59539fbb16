"""API keys and the hash-chained audit log in the PostGIS store.

Appends are serialised across every process on the database with a
transaction-level advisory lock: the chain's head is read and extended while
holding it, so two replicas cannot fork the chain. The application role may
only read the log and ``api_keys``: appends, key issues and revocations go through the
owner's functions of migration 0004 (``gis_grid_append_audit`` checks the chain link and
keeps the head in ``meta``, so removing the newest records shows in ``gis-grid audit verify``;
``gis_grid_issue_key`` wants the key's audit record in the same transaction).
"""
from __future__ import annotations

from ...errors import NotFoundError
from ...security.audit import FIELDS, GENESIS, seal

_KEY_COLUMNS = ("id", "role", "scope", "digest", "created", "expires", "revoked", "note")
_AUDIT_COLUMNS = (*FIELDS, "prev_hash", "hash")
_AUDIT_LOCK = "gis_grid.audit_log"


def insert_key(store, record: dict, audit: dict) -> None:
    with store.transaction() as cur:
        append_audit_in(store, cur, audit)  # first: the function checks for it
        cur.execute("SELECT gis_grid_issue_key(%s, %s, %s, %s, %s, %s, %s)",
                    [record.get(k) for k in _KEY_COLUMNS if k != "revoked"])


def key(store, key_id: str) -> dict:
    with store.transaction() as cur:
        row = cur.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_keys WHERE id = %s", (str(key_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}")
    return dict(zip(_KEY_COLUMNS, row))


def keys(store) -> list[dict]:
    cols = [k for k in _KEY_COLUMNS if k != "digest"]
    with store.transaction() as cur:
        rows = cur.execute(f"SELECT {', '.join(cols)} FROM api_keys ORDER BY created").fetchall()
    return [dict(zip(cols, r)) for r in rows]


def revoke_key(store, key_id: str, when: str) -> None:
    with store.transaction() as cur:
        if not cur.execute("SELECT gis_grid_revoke_key(%s, %s)", (str(key_id), when)).fetchone()[0]:
            raise NotFoundError(f"no API key {key_id!r}")


def append_audit_in(store, cur, record: dict) -> dict:
    """Append inside the caller's transaction (so a change and its record commit together)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_AUDIT_LOCK,))
    head = cur.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    masked = record.get("masked")  # a boolean column: 0/1 would not adapt, and would hash differently
    full = seal({**record, "masked": None if masked is None else bool(masked)},
                *((head[0] + 1, head[1]) if head else (1, GENESIS)))
    cur.execute(f"SELECT gis_grid_append_audit({', '.join(['%s'] * len(_AUDIT_COLUMNS))})",
                [full.get(k) for k in _AUDIT_COLUMNS])
    return full


def append_audit(store, record: dict) -> dict:
    with store.transaction() as cur:
        return append_audit_in(store, cur, record)


def audit_records(store) -> list[dict]:
    with store.transaction() as cur:
        rows = cur.execute(f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM audit_log ORDER BY seq").fetchall()
    return [dict(zip(_AUDIT_COLUMNS, r)) for r in rows]


def audit_head(store) -> str | None:
    with store.transaction() as cur:
        row = cur.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    return row[0] if row else None
