"""Sign-in for the map viewer, the caller's identity, unmasked reads and the audit log."""
from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from gis_grid.errors import AuthenticationError, InvalidInputError, NotFoundError, PermissionDeniedError
from gis_grid.security import keys
from gis_grid.security.roles import PersonalData, Principal
from gis_grid.security.throttle import key_id_of
from web.pages import login_page

from ..security import (CSRF_COOKIE, SESSION_COOKIE, authenticate, client_address, failed_sign_in, principal_dep,
                        record, session_token)

router = APIRouter(tags=["access"])


def _static(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + "/map/static"


def _safe_next(target: str) -> str:
    # only same-site paths: never redirect a signed-in user to another host
    return target if target.startswith("/") and not target.startswith("//") else "/map"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:   # a host name: not loopback
        return False


def _secure(request: Request) -> bool:
    """Cookies are Secure unless the service is served on loopback: the published address
    (GIS_GRID_PUBLIC_URL) when set, else the address it binds; never the request's Host."""
    settings = request.app.state.settings
    host = urlsplit(settings.public_url).hostname if settings.public_url else settings.host
    return not _is_loopback(host or "")


def _set(resp, request: Request, name: str, value: str, *, httponly: bool) -> None:
    resp.set_cookie(name, value, httponly=httponly, samesite="lax", secure=_secure(request), path="/")


def _form(request: Request, next_: str, error: str | None = None, status: int = 200, **page) -> HTMLResponse:
    """The sign-in page with a CSRF token that the form sends back and a cookie holds (double submit):
    a page on another site can post a form here but can neither read nor set the cookie."""
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = HTMLResponse(login_page(_safe_next(next_), csrf=csrf, error=error, asset_prefix=_static(request), **page),
                        status_code=status)
    _set(resp, request, CSRF_COOKIE, csrf, httponly=False)
    return resp


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/map") -> HTMLResponse:
    return _form(request, next)


@router.post("/login", include_in_schema=False)
async def login(request: Request, key: str = Form(...), next: str = Form("/map"), csrf: str = Form("")):
    # refused attempts are counted, locked out past the limit (429) and audited in aggregate only
    request.app.state.failed_auth.check(client_address(request.scope), key_id_of(key.strip()))
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf, expected):
        await failed_sign_in(request, None)
        return _form(request, next, "This sign-in form has expired or did not come from this site; sign in again.",
                     status=403, summary=("登录表单已过期或不是来自本站，请重新登录。", "Sign-in form expired."))
    try:
        who = await authenticate(request, key.strip())
    except AuthenticationError as exc:
        return _form(request, next, exc.message, status=401)
    await record(request, who, "login", "session")
    return await _signed_in(request, who, next)


async def _signed_in(request: Request, who: Principal, target: str) -> RedirectResponse:
    """A new server-side session (the cookie holds its id, never the API key) and a fresh CSRF token."""
    settings = request.app.state.settings
    _, session = await run_in_threadpool(keys.create_session, request.app.state.holder.store, who,
                                         hours=settings.session_hours)
    resp = RedirectResponse(_safe_next(target), status_code=303)
    _set(resp, request, SESSION_COOKIE, session, httponly=True)
    _set(resp, request, CSRF_COOKIE, secrets.token_urlsafe(24), httponly=False)
    return resp


@router.get("/login/once/{nonce}", include_in_schema=False)
async def login_once(request: Request, nonce: str):
    token = request.app.state.one_time_logins.redeem(nonce)
    who = await run_in_threadpool(keys.authenticate, request.app.state.holder.store, token)
    await record(request, who, "login", "session", purpose="one-time demo link")
    return await _signed_in(request, who, "/map")


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, who: Principal = Depends(principal_dep)):
    """Ends the browser session server-side: the session is revoked, so a copy of the cookie is dead too."""
    token = session_token(request)
    if token:
        await run_in_threadpool(keys.end_session, request.app.state.holder.store, who)
        request.app.state.auth_cache.drop(token)
    await record(request, who, "logout", "session")
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    resp.delete_cookie(CSRF_COOKIE, path="/")
    return resp


@router.get("/me", summary="The calling key's role, scope and permissions")
async def me(who: Principal = Depends(principal_dep)) -> dict:
    p = who.permission
    return {"key_id": who.key_id, "role": who.role, "scope": who.scope,
            **({"department": who.department} if who.department else {}),
            "permissions": {k: (v.value if isinstance(v, PersonalData) else v) for k, v in vars(p).items()}}


_UNMASKED_FIELDS = ("name", "id_number", "phone", "birth_date")


@router.get("/residents/{resident_id}/unmasked",
            summary="One resident's personal data unmasked: grid workers of the resident's grid, with a purpose")
async def unmasked(request: Request, resident_id: str,
                   purpose: str = Query(..., min_length=4, max_length=200,
                                        description="why the unmasked data is needed (kept in the audit log)"),
                   who: Principal = Depends(principal_dep)) -> dict:
    if who.permission.personal is not PersonalData.FULL:
        await record(request, who, "resident.unmask", f"resident/{resident_id}", purpose=purpose, result="denied")
        raise PermissionDeniedError(f"the {who.role} role may not read unmasked personal data")
    settings = request.app.state.settings
    request.app.state.rate_limiter.take(who.key_id, "unmask", settings.unmask_per_minute)
    store, atlas = request.app.state.holder.store, request.app.state.holder.atlas
    def read():
        # row-level scope (PostGIS RLS) behind the grid check below: the most sensitive read
        with store.scoped(who.scope):
            return store.residents(None, None, [resident_id])

    rows = await run_in_threadpool(read)
    grid = None
    if len(rows):
        hh = atlas.households
        match = hh.loc[hh["id"] == rows.iloc[0]["household_id"], "grid_code"]
        grid = match.iloc[0] if len(match) else None
    if grid is None or not who.sees(grid):
        # out of scope looks exactly like missing, so existence does not leak
        await record(request, who, "resident.unmask", f"resident/{resident_id}", purpose=purpose,
                     result="not found")
        raise NotFoundError(f"no resident {resident_id!r}")
    r = rows.iloc[0]
    await record(request, who, "resident.unmask", f"resident/{resident_id}", fields=_UNMASKED_FIELDS,
                 masked=False, purpose=purpose)
    return {"id": r["id"], "household_id": r["household_id"], "grid_code": grid,
            **{f: (None if r[f] is None else str(r[f])) for f in _UNMASKED_FIELDS}}


@router.get("/audit", summary="The audit log (auditors only), newest first")
async def audit_log(request: Request, limit: int = Query(100, ge=1), offset: int = Query(0, ge=0),
                    who: Principal = Depends(principal_dep)) -> dict:
    if not who.permission.audit:
        raise PermissionDeniedError("only the auditor role reads the audit log")
    limit = min(limit, request.app.state.settings.max_page_size)
    records = await run_in_threadpool(request.app.state.holder.store.audit_records)
    records.reverse()
    if offset > len(records):
        raise InvalidInputError(f"offset {offset} is beyond the {len(records)} records")
    return {"numberMatched": len(records), "records": records[offset:offset + limit]}
