"""Who is calling: API keys (Bearer header or the viewer's session cookie), rate limits, audit.

The role table lives in the library (gis_grid.security.roles); this module only
reads credentials from HTTP and records reads in the audit log.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gis_grid.errors import AuthenticationError, PermissionDeniedError, RateLimitedError, StoreError
from gis_grid.security import audit, keys
from gis_grid.security.roles import Principal
from gis_grid.security.throttle import key_id_of
from gis_grid.security.roles import check_visible as check_scope  # noqa: F401 - the routers import it from here

SESSION_COOKIE = "gg_session"
CSRF_COOKIE = "gg_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class RateLimiter:
    """A token bucket per (key, bucket name): ``per_minute`` requests, refilled continuously."""

    def __init__(self):
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, name: str, per_minute: int, *, who: str = "this key") -> None:
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get((key_id, name), (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[(key_id, name)] = (tokens, now)
                wait = max(1, int((1.0 - tokens) / rate + 0.999))
                raise RateLimitedError(f"rate limit of {per_minute} requests per minute reached for {who} "
                                       f"({name}); retry in {wait} s", detail={"retry_after_s": wait})
            self._buckets[(key_id, name)] = (tokens - 1.0, now)


class OneTimeLogins:
    """Single-use sign-in nonces (in memory) that stand for a key without showing it."""

    def __init__(self, ttl_s: float = 24 * 3600):
        self._pending: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.ttl_s = ttl_s

    def issue(self, token: str) -> str:
        nonce = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[nonce] = (token, time.monotonic() + self.ttl_s)
        return f"/login/once/{nonce}"

    def redeem(self, nonce: str) -> str:
        with self._lock:
            token, expires = self._pending.pop(nonce, (None, 0.0))
        if token is None or time.monotonic() > expires:
            raise AuthenticationError("this sign-in link was already used or has expired; "
                                      "sign in with an API key at /login")
        return token


def client_address(scope) -> str:
    """The connection's peer address (behind a proxy: the proxy's; limit there per real client)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def _token(request: Request) -> tuple[str | None, bool]:
    """(token, came from the cookie)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError("use Authorization: Bearer gg_<id>_<secret>")
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


def session_token(request: Request) -> str | None:
    """The session cookie's token when it is what authenticates this request (no Bearer header)."""
    token, from_cookie = _token(request)
    return token if from_cookie else None


AUTH_CACHE_S = 5.0  # a revoked key stops working one request (its background re-check) after this
AUTH_GRACE_S = 300.0  # while the store is unreachable, keys verified this recently still work
STORE_RETRY_S = 2.0  # after the store failed a key check, stale keys skip it this long


class AuthCache:
    """Recently verified tokens, keyed by their digest, so hot paths skip the store.

    A key verified within ``ttl_s`` is used as is. Past that, a key verified within
    ``grace_s`` is still used, and checked again off the request path (:meth:`revalidate`):
    a slow, unreachable or black-holed store then costs routes served from the in-memory
    atlas nothing, where a check on the request path waited out a connect timeout (routes
    that need the database answer 503 on their own). A revoked key is dropped when its
    re-check answers, so it stops working one request after ``ttl_s``; a revocation made
    during an outage takes effect once the store answers again.
    """

    def __init__(self, ttl_s: float = AUTH_CACHE_S, size: int = 10_000, grace_s: float = AUTH_GRACE_S):
        self.ttl_s, self.size, self.grace_s = ttl_s, size, grace_s
        self._entries: dict[str, tuple[Principal, float]] = {}  # digest -> (principal, verified at)
        self._lock = threading.Lock()
        self._store_down_until = 0.0
        self._checking: set[str] = set()

    def get(self, digest: str) -> Principal | None:
        hit = self._entries.get(digest)
        return hit[0] if hit and hit[1] + self.ttl_s > time.monotonic() else None

    def stale(self, digest: str) -> Principal | None:
        """A key verified within the grace period (for when the store cannot be asked)."""
        hit = self._entries.get(digest)
        return hit[0] if hit and hit[1] + self.grace_s > time.monotonic() else None

    def store_down(self) -> bool:
        return time.monotonic() < self._store_down_until

    def mark_store_down(self) -> None:
        # without this, every request of an outage would wait out a connect timeout
        self._store_down_until = time.monotonic() + STORE_RETRY_S

    def drop(self, token: str) -> None:
        """Forget a token at once (a session signed out here must not live out the cache's ttl)."""
        with self._lock:
            self._entries.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    def revalidate(self, digest: str, check) -> None:
        """Re-check a key on a background thread, one check per key at a time and none while the
        store is known to be down: ``check()`` returns the principal, or raises AuthenticationError
        (the key is dropped) or StoreError (the store is marked down)."""
        with self._lock:
            if digest in self._checking or self.store_down():
                return
            self._checking.add(digest)

        def run() -> None:
            try:
                principal = check()
            except AuthenticationError:
                with self._lock:
                    self._entries.pop(digest, None)
            except StoreError:
                self.mark_store_down()
            else:
                self.put(digest, principal)
            finally:
                with self._lock:
                    self._checking.discard(digest)

        threading.Thread(target=run, daemon=True, name="auth-recheck").start()

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()  # crude but bounded; entries are cheap to rebuild
            self._entries[digest] = (principal, time.monotonic())


async def principal_dep(request: Request) -> Principal:
    """Authenticate the request (deny by default), enforce CSRF for cookie writes and the rate limit."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token, from_cookie = _token(request)
    cache = request.app.state.auth_cache
    digest = hashlib.sha256(token.encode()).hexdigest() if token else ""
    principal = cache.get(digest) if token else None
    if principal is None and token:
        principal = cache.stale(digest)
        if principal is not None:  # verified within the grace period: answer now, re-check aside
            store = request.app.state.holder.store
            cache.revalidate(digest, lambda: keys.authenticate(store, token))
    if principal is None:
        try:
            principal = await authenticate(request, token)
        except StoreError:
            principal = cache.stale(digest) if token else None
            cache.mark_store_down()
            if principal is None:
                raise
        else:
            cache.put(digest, principal)
    if from_cookie and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not secrets.compare_digest(sent, expected):
            raise PermissionDeniedError("a write with the session cookie needs the X-CSRF-Token header "
                                        f"equal to the {CSRF_COOKIE} cookie")
    settings = request.app.state.settings
    request.app.state.rate_limiter.take(principal.key_id, "all", settings.rate_limit_per_minute)
    request.state.principal = principal
    return principal


async def authenticate(request: Request, token: str | None) -> Principal:
    """Check a token against the store, refusing (429) a client or key id locked out for failed
    sign-ins; a failure is counted, and audited only in aggregate (gis_grid.security.throttle)."""
    ledger, client = request.app.state.failed_auth, client_address(request.scope)
    key_id = key_id_of(token)
    if token:
        ledger.check(client, key_id)
    try:
        return await run_in_threadpool(keys.authenticate, request.app.state.holder.store, token)
    except AuthenticationError:
        if token:
            await failed_sign_in(request, key_id)
        raise


async def failed_sign_in(request: Request, key_id: str | None) -> None:
    """Count one failed sign-in; write the aggregated audit records it calls for."""
    for rec in request.app.state.failed_auth.fail(client_address(request.scope), key_id):
        await record(request, None, rec["action"], rec["resource"], result=rec["result"])


def require(*flags: str):
    """A dependency: an authenticated caller whose role has every permission flag named."""
    async def dep(request: Request) -> Principal:
        who = await principal_dep(request)
        missing = [f for f in flags if not getattr(who.permission, f)]
        if missing:
            raise PermissionDeniedError(f"the {who.role} role may not use this endpoint (needs {', '.join(missing)})")
        return who
    return dep


def request_id(request: Request) -> str:
    rid = request.headers.get("x-request-id", "")
    return rid[:64] if rid else uuid.uuid4().hex


def audit_record(request: Request, principal: Principal | None, action: str, resource: str, *,
                 fields=(), masked: bool | None = None, purpose: str | None = None, result: str = "ok") -> dict:
    """The audit record of this request, not yet written."""
    return audit.new_record(key_id=principal.key_id if principal else None,
                            role=principal.role if principal else None,
                            scope=principal.scope if principal else None, action=action, resource=resource,
                            fields=fields, masked=masked, purpose=purpose, request_id=request_id(request),
                            result=result)


async def record(request: Request, principal: Principal | None, action: str, resource: str, *,
                 fields=(), masked: bool | None = None, purpose: str | None = None, result: str = "ok") -> None:
    """Append one audit record for this request (in a worker thread: it writes the store)."""
    rec = audit_record(request, principal, action, resource, fields=fields, masked=masked, purpose=purpose,
                       result=result)
    await run_in_threadpool(request.app.state.holder.store.append_audit, rec)
