"""An append-only, hash-chained audit log, keyed with a secret kept outside the store.

Each record's ``hash`` covers the previous record's hash and the record's canonical JSON,
so editing or deleting any record breaks every hash after it, and :func:`verify` names the
first broken one.

With an audit key (``GIS_GRID_AUDIT_KEY_FILE``, a file holding the secret, or
``GIS_GRID_AUDIT_KEY``, the secret itself) the hash is an HMAC-SHA256 under that key, written
``hmac:<hex>``: someone who can write the store but does not hold the key cannot rewrite
records and recompute a chain that verifies. Without a key the hash is plain SHA-256
(anyone can recompute it) and ``audit verify`` says so. Every process that writes or
verifies the log must be given the same key.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from datetime import datetime, timezone

from ..errors import GisGridError

GENESIS = "0" * 64


class AuditKeyError(GisGridError):
    """The audit key named in the environment is unreadable or too short."""
FIELDS = ("seq", "at", "key_id", "role", "scope", "action", "resource", "fields", "masked",
          "purpose", "request_id", "result")


def canonical(record: dict) -> bytes:
    return json.dumps({k: record.get(k) for k in FIELDS}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode()


KEY_ENV, KEY_FILE_ENV = "GIS_GRID_AUDIT_KEY", "GIS_GRID_AUDIT_KEY_FILE"
KEYED = "hmac:"


def audit_key() -> bytes | None:
    """The audit key from the environment (the file wins), or None."""
    path = os.environ.get(KEY_FILE_ENV)
    if path:
        try:
            with open(path, "rb") as f:
                key = f.read().strip()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the audit key file named by {KEY_FILE_ENV}: {exc.strerror}") from None
        if len(key) < 16:
            raise AuditKeyError(f"the audit key file named by {KEY_FILE_ENV} holds under 16 bytes")
        return key
    key = os.environ.get(KEY_ENV, "").strip().encode()
    if key and len(key) < 16:
        raise AuditKeyError(f"{KEY_ENV} must be at least 16 characters")
    return key or None


def chain_hash(prev: str, record: dict, key: bytes | None = None) -> str:
    """The record's hash: HMAC-SHA256 under ``key`` (``hmac:<hex>``), else plain SHA-256."""
    data = prev.encode() + canonical(record)
    if key:
        return KEYED + hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def seal(record: dict, seq: int, prev: str) -> dict:
    """``record`` as the next one of the chain (seq, prev_hash, hash under the current key)."""
    full = {**record, "seq": seq, "prev_hash": prev}
    full["hash"] = chain_hash(prev, full, audit_key())
    return full


def new_record(*, key_id: str | None, role: str | None, scope: str | None, action: str, resource: str,
               fields=(), masked: bool | None = None, purpose: str | None = None,
               request_id: str | None = None, result: str = "ok") -> dict:
    """A record ready for :meth:`Store.append_audit` (which sets ``seq`` and the hashes)."""
    return {"at": datetime.now(timezone.utc).isoformat(), "key_id": key_id, "role": role, "scope": scope,
            "action": action, "resource": resource, "fields": ",".join(sorted(fields)),
            "masked": masked, "purpose": purpose, "request_id": request_id or uuid.uuid4().hex,
            "result": result}


def committed(record: dict, from_version: int, to_version: int) -> dict:
    """``record`` as written in the transaction of a change it describes: its result names the
    versions, followed by whatever the caller said about the change."""
    said = record.get("result")
    tail = f"; {said}" if said and said != "ok" else ""
    return {**record, "result": f"ok: version {from_version} -> {to_version}{tail}"}


def verify(records, *, key: bytes | None = None, unkeyed_until: int = 0) -> tuple[bool, int | None, str]:
    """(ok, seq of the first bad record, message) over records in ``seq`` order.

    With ``key``, every record after ``unkeyed_until`` must carry an HMAC under it (records
    written before the key was introduced are accepted only up to that seq, which the
    operator states); without it, keyed records cannot be checked and fail.
    """
    prev, expected_seq, unkeyed = GENESIS, 1, 0
    for r in records:
        if r["seq"] != expected_seq:
            return False, expected_seq, f"record {expected_seq} is missing (found {r['seq']} next)"
        if r["prev_hash"] != prev:
            return False, r["seq"], f"record {r['seq']} does not follow record {r['seq'] - 1}"
        keyed = str(r["hash"]).startswith(KEYED)
        if keyed and not key:
            return False, r["seq"], (f"record {r['seq']} is keyed: set {KEY_FILE_ENV} (or {KEY_ENV}) to the "
                                     "audit key to verify it")
        if not keyed and key and r["seq"] > unkeyed_until:
            return False, r["seq"], (f"record {r['seq']} carries no HMAC under the audit key: it was forged or "
                                     "rewritten, or written before the key was set (then pass --unkeyed-until)")
        if chain_hash(prev, r, key if keyed else None) != r["hash"]:
            return False, r["seq"], f"record {r['seq']} was altered"
        unkeyed += not keyed
        prev, expected_seq = r["hash"], expected_seq + 1
    n = expected_seq - 1
    if not key:
        return True, None, (f"{n} records, chain intact, but unkeyed: anyone who can write the store could "
                            f"rewrite it and recompute the hashes; set {KEY_FILE_ENV}")
    return True, None, f"{n} records, chain intact, keyed" + (f" ({unkeyed} from before the key)" if unkeyed else "")


def verify_store(store, *, unkeyed_until: int = 0) -> tuple[bool, int | None, str]:
    """Verify the chain and that its newest record is the one the store last appended."""
    records = store.audit_records()
    ok, seq, message = verify(records, key=audit_key(), unkeyed_until=unkeyed_until)
    if not ok:
        return ok, seq, message
    head = store.audit_head()
    last = f"{records[-1]['seq']}:{records[-1]['hash']}" if records else None
    if head != last:
        return False, (records[-1]["seq"] + 1) if records else 1, \
            f"the newest records were removed: the log ends at {last or 'nothing'}, the store last appended {head}"
    return True, None, message
