"""An append-only, hash-chained audit log.

Each record's ``hash`` is SHA-256 over the previous record's hash and the
record's canonical JSON, so editing or deleting any record breaks every
hash after it, and :func:`verify` names the first broken one.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone

GENESIS = "0" * 64
FIELDS = ("seq", "at", "key_id", "role", "scope", "action", "resource", "fields", "masked",
          "purpose", "request_id", "result")


def canonical(record: dict) -> bytes:
    return json.dumps({k: record.get(k) for k in FIELDS}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode()


def chain_hash(prev: str, record: dict) -> str:
    return hashlib.sha256(prev.encode() + canonical(record)).hexdigest()


def new_record(*, key_id: str | None, role: str | None, scope: str | None, action: str, resource: str,
               fields=(), masked: bool | None = None, purpose: str | None = None,
               request_id: str | None = None, result: str = "ok") -> dict:
    """A record ready for :meth:`Store.append_audit` (which sets ``seq`` and the hashes)."""
    return {"at": datetime.now(timezone.utc).isoformat(), "key_id": key_id, "role": role, "scope": scope,
            "action": action, "resource": resource, "fields": ",".join(sorted(fields)),
            "masked": masked, "purpose": purpose, "request_id": request_id or uuid.uuid4().hex,
            "result": result}


def verify(records) -> tuple[bool, int | None, str]:
    """(ok, seq of the first bad record, message) over records in ``seq`` order."""
    prev, expected_seq = GENESIS, 1
    for r in records:
        if r["seq"] != expected_seq:
            return False, expected_seq, f"record {expected_seq} is missing (found {r['seq']} next)"
        if r["prev_hash"] != prev:
            return False, r["seq"], f"record {r['seq']} does not follow record {r['seq'] - 1}"
        if chain_hash(prev, r) != r["hash"]:
            return False, r["seq"], f"record {r['seq']} was altered"
        prev, expected_seq = r["hash"], expected_seq + 1
    return True, None, f"{expected_seq - 1} records, chain intact"


def verify_store(store) -> tuple[bool, int | None, str]:
    """Verify the chain and that its newest record is the one the store last appended."""
    records = store.audit_records()
    ok, seq, message = verify(records)
    if not ok:
        return ok, seq, message
    head = store.audit_head()
    last = f"{records[-1]['seq']}:{records[-1]['hash']}" if records else None
    if head != last:
        return False, (records[-1]["seq"] + 1) if records else 1, \
            f"the newest records were removed: the log ends at {last or 'nothing'}, the store last appended {head}"
    return True, None, message
