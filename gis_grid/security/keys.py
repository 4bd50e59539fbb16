"""Bearer API keys: random secrets shown once, stored only as a SHA-256 digest.

A token reads ``gg_<key id>_<secret>``; the id finds the record, the digest of
the secret proves it. Secrets carry 256 bits, so a fast hash is enough (no
password stretching needed), and digests are compared in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

from ..errors import AuthenticationError, InvalidInputError, NotFoundError
from . import audit
from .roles import Principal, check_scope

__all__ = ["AuthenticationError", "authenticate", "create_key"]
PREFIX = "gg"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_scope_exists(store, role: str, scope: str) -> str:
    """The scope must be a division the store holds now: a key for a code that does not exist
    (a typo, another district) would authenticate and silently see nothing, or the wrong thing."""
    check_scope(role, scope)
    codes = store.divisions()["code"].astype(str)
    if not (codes == scope).any():
        raise InvalidInputError(f"no division {scope!r} in this store; a key's scope must be an existing "
                                "district, street, community or grid code")
    return scope


def create_key(store, role: str, scope: str, *, days: int = 90, note: str = "",
               actor: str = "cli") -> tuple[dict, str]:
    """Make and store a key with its ``key.create`` audit record (``actor`` is the audit
    record's role); returns (record without the secret, the token to hand out once)."""
    check_scope(role, scope)
    if days <= 0:
        raise InvalidInputError(f"a key needs a positive lifetime in days, not {days}: pass --days 1 or more")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = _now()
    record = {"id": key_id, "role": role, "scope": scope, "digest": _digest(secret),
              "created": now.isoformat(), "expires": (now + timedelta(days=days)).isoformat(),
              "revoked": None, "note": note}
    store.insert_key(record, audit.new_record(key_id=None, role=actor, scope=None, action="key.create",
                                              resource=f"key/{key_id}", fields=("role", "scope"),
                                              result=f"ok: {role} {scope}, {days} days"))
    public = {k: v for k, v in record.items() if k != "digest"}
    return public, f"{PREFIX}_{key_id}_{secret}"


def authenticate(store, token: str | None, *, now: datetime | None = None) -> Principal:
    if not token:
        raise AuthenticationError("no API key: send Authorization: Bearer gg_<id>_<secret>")
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise AuthenticationError("malformed API key: expected gg_<id>_<secret>")
    try:
        record = store.key(parts[1])
    except NotFoundError:
        raise AuthenticationError("unknown API key") from None
    if not hmac.compare_digest(record["digest"], _digest(parts[2])):
        raise AuthenticationError("unknown API key")  # same answer: no oracle for valid ids
    if record["revoked"]:
        raise AuthenticationError("this API key was revoked")
    if datetime.fromisoformat(record["expires"]) <= (now or _now()):
        raise AuthenticationError("this API key has expired; ask an admin for a new one")
    return Principal(record["id"], record["role"], record["scope"])
