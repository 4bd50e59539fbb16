"""API keys and the hash-chained audit log in the PostGIS store.

Appends are serialised across every process on the database with a
transaction-level advisory lock: the chain's head is read and extended while
holding it, so two replicas cannot fork the chain. The application role may
only SELECT and INSERT the log (no UPDATE, no DELETE); the head is also kept in
``meta`` so removing the newest records shows (``gis-grid audit verify``).
"""
from __future__ import annotations

from ...errors import NotFoundError
from ...security.audit import FIELDS, GENESIS, seal

_KEY_COLUMNS = ("id", "role", "scope", "digest", "created", "expires", "revoked", "note")
_AUDIT_COLUMNS = (*FIELDS, "prev_hash", "hash")
_AUDIT_LOCK = "gis_grid.audit_log"


def insert_key(store, record: dict) -> None:
    with store.transaction() as cur:
        cur.execute(f"INSERT INTO api_keys ({', '.join(_KEY_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_KEY_COLUMNS))})",
                    [record.get(k) for k in _KEY_COLUMNS])


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
        cur.execute("UPDATE api_keys SET revoked = %s WHERE id = %s AND revoked IS NULL", (when, str(key_id)))
        if cur.rowcount == 0 and cur.execute("SELECT 1 FROM api_keys WHERE id = %s", (str(key_id),)).fetchone() is None:
            raise NotFoundError(f"no API key {key_id!r}")


def append_audit_in(store, cur, record: dict) -> dict:
    """Append inside the caller's transaction (so a change and its record commit together)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_AUDIT_LOCK,))
    head = cur.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    masked = record.get("masked")  # a boolean column: 0/1 would not adapt, and would hash differently
    full = seal({**record, "masked": None if masked is None else bool(masked)},
                *((head[0] + 1, head[1]) if head else (1, GENESIS)))
    cur.execute(f"INSERT INTO audit_log ({', '.join(_AUDIT_COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(_AUDIT_COLUMNS))})", [full.get(k) for k in _AUDIT_COLUMNS])
    store.set_meta(cur, {"audit_head": f"{full['seq']}:{full['hash']}"})
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
