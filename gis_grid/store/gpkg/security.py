"""API keys and the audit log in the GeoPackage store (plain SQL on its connection).

Both tables are created on first use, so older stores gain them without a
migration step. The audit append runs in ``BEGIN IMMEDIATE``: the chain's head
is read and extended under SQLite's write lock, so concurrent writers cannot
fork it; the head is also kept in ``meta`` so deleting the newest records shows.
"""
from __future__ import annotations

from ...errors import NotFoundError
from ...security.audit import FIELDS, GENESIS, seal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, role TEXT NOT NULL, scope TEXT NOT NULL, digest TEXT NOT NULL,
  created TEXT NOT NULL, expires TEXT NOT NULL, revoked TEXT, note TEXT);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY, at TEXT NOT NULL, key_id TEXT, role TEXT, scope TEXT, action TEXT NOT NULL,
  resource TEXT, fields TEXT, masked INTEGER, purpose TEXT, request_id TEXT, result TEXT,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL)
"""
_KEY_COLUMNS = ("id", "role", "scope", "digest", "created", "expires", "revoked", "note")


def _ensure(c) -> None:
    for stmt in filter(str.strip, _SCHEMA.split(";")):
        c.execute(stmt)


def _write(store, fn):
    with store.write_transaction() as c:
        _ensure(c)
        return fn(c)


def _read(store, sql: str, params=()) -> list[tuple]:
    c = store.conn
    if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='api_keys'").fetchone() is None:
        return []
    return c.execute(sql, params).fetchall()


def insert_key(store, record: dict, audit: dict) -> None:
    def go(c):
        c.execute(f"INSERT INTO api_keys ({', '.join(_KEY_COLUMNS)}) VALUES ({', '.join('?' * len(_KEY_COLUMNS))})",
                  [record.get(k) for k in _KEY_COLUMNS])
        append_audit_in(c, audit)
    _write(store, go)


def key(store, key_id: str) -> dict:
    rows = _read(store, f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_keys WHERE id = ?", (key_id,))
    if not rows:
        raise NotFoundError(f"no API key {key_id!r}")
    return dict(zip(_KEY_COLUMNS, rows[0]))


def keys(store) -> list[dict]:
    cols = [k for k in _KEY_COLUMNS if k != "digest"]
    return [dict(zip(cols, r)) for r in _read(store, f"SELECT {', '.join(cols)} FROM api_keys ORDER BY created")]


def revoke_key(store, key_id: str, when: str) -> None:
    def go(c):
        if c.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                     (when, key_id)).rowcount == 0:
            if c.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone() is None:
                raise NotFoundError(f"no API key {key_id!r}")
    _write(store, go)


def append_audit_in(c, record: dict) -> dict:
    """Append inside the caller's write transaction (so a change and its record commit together)."""
    _ensure(c)
    head = c.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    full = seal(record, *((head[0] + 1, head[1]) if head else (1, GENESIS)))
    cols = (*FIELDS, "prev_hash", "hash")
    c.execute(f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
              [full.get(k) for k in cols])
    c.execute("INSERT OR REPLACE INTO meta VALUES ('audit_head', ?)", (f"{full['seq']}:{full['hash']}",))
    return full


def append_audit(store, record: dict) -> dict:
    return _write(store, lambda c: append_audit_in(c, record))


def audit_records(store) -> list[dict]:
    cols = (*FIELDS, "prev_hash", "hash")
    rows = _read(store, f"SELECT {', '.join(cols)} FROM audit_log ORDER BY seq")
    out = [dict(zip(cols, r)) for r in rows]
    for r in out:  # SQLite hands booleans back as integers
        r["masked"] = None if r["masked"] is None else bool(r["masked"])
    return out


def audit_head(store) -> str | None:
    row = store.conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    return row[0] if row else None
