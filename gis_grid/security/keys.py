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
from .roles import DEPARTMENT_ROLES, Principal, check_scope, join_scope, split_scope

__all__ = ["AuthenticationError", "authenticate", "create_key", "create_session", "end_session"]
PREFIX = "gg"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_scope_exists(store, role: str, scope: str) -> str:
    """The scope must be a division the store holds now: a key for a code that does not exist
    (a typo, another district) would authenticate and silently see nothing, or the wrong thing."""
    check_scope(role, scope)
    code, _ = split_scope(scope)
    codes = store.divisions()["code"].astype(str)
    if not (codes == code).any():
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
    return _create(store, role, scope, timedelta(days=days), note, actor, f"{days} days")


def _create(store, role: str, scope: str, lifetime: timedelta, note: str, actor: str,
            told: str) -> tuple[dict, str]:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = _now()
    record = {"id": key_id, "role": role, "scope": scope, "digest": _digest(secret),
              "created": now.isoformat(), "expires": (now + lifetime).isoformat(),
              "revoked": None, "note": note}
    store.insert_key(record, audit.new_record(key_id=None, role=actor, scope=None, action="key.create",
                                              resource=f"key/{key_id}", fields=("role", "scope"),
                                              result=f"ok: {role} {scope}, {told}"))
    public = {k: v for k, v in record.items() if k != "digest"}
    return public, f"{PREFIX}_{key_id}_{secret}"


#: the note that marks a browser session: a key of its own (so the cookie never holds the API key),
#: tied to the key it was signed in with, which must stay valid for the session to work
SESSION_NOTE = "session of key "


def create_session(store, signed_in_with: Principal, *, hours: float = 12) -> tuple[dict, str]:
    """A server-side browser session for a signed-in key: a short-lived key with the same role and
    scope, revoked on sign-out (:func:`end_session`), dead as soon as the parent key is revoked."""
    return _create(store, signed_in_with.role, join_scope(signed_in_with.scope, signed_in_with.department),
                   timedelta(hours=hours),
                   SESSION_NOTE + signed_in_with.key_id, "login", f"session, {hours:g} h")


def end_session(store, session: Principal) -> None:
    """Revoke a session server-side (a copied cookie stops working too). Only session keys."""
    if not (store.key(session.key_id).get("note") or "").startswith(SESSION_NOTE):
        raise InvalidInputError("signing out ends browser sessions only; an API key is revoked with "
                                "`gis-grid keys revoke`")
    store.revoke_key(session.key_id, _now().isoformat())


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
    _check_live(record, now)
    if (record.get("note") or "").startswith(SESSION_NOTE):
        try:
            parent = store.key(record["note"][len(SESSION_NOTE):])
        except NotFoundError:
            raise AuthenticationError("this session's key no longer exists; sign in again") from None
        _check_live(parent, now, "the key this session was signed in with")
    code, department = split_scope(record["scope"])
    if record["role"] in DEPARTMENT_ROLES and department is None:
        # made before keys were tied to a department: it would reach every department's cases
        raise AuthenticationError(f"this {record['role']} key names no department; ask an admin for a new one "
                                  "(scope <district>:<department>)")
    return Principal(record["id"], record["role"], code, department)


def _check_live(record: dict, now: datetime | None, what: str = "this API key") -> None:
    if record["revoked"]:
        raise AuthenticationError(f"{what} was revoked")
    if datetime.fromisoformat(record["expires"]) <= (now or _now()):
        raise AuthenticationError(f"{what} has expired; ask an admin for a new one")
