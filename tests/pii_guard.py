"""A pytest plugin: every HTTP response any test receives is scanned for unmasked personal data.

It wraps the clients the suite talks to the app with (``httpx.Client.send``, which
Starlette's TestClient goes through; ``httpx.AsyncClient.send``; ``requests.Session.send``,
which schemathesis uses) and looks in every text body for an unmasked 18-digit resident
ID (area code, a real birth date, MOD 11-2 position with an ``X`` check digit allowed) or an
11-digit mainland mobile (``1[3-9]`` + 9 digits): the patterns of :mod:`gis_grid.testing`.
A hit fails the test that made the request, naming the URL, the key's role and what was found.

The only exemptions are the purpose-bound endpoints ``GET /residents/{id}/unmasked`` and
``GET /incidents/{id}/unmasked`` answered to a role whose table entry grants full personal data,
and grid workers' WORK phones in a grid card (``workers[].phone``) to a role granted
``work_phones``: anything else unmasked in that card still fails. Every other route masks on the
server for every role, so unmasked values anywhere else are a leak whoever asked.

Roles are known by recording the keys tests make: :func:`gis_grid.security.keys.create_key`
is wrapped (tests/common.py ``bearer``, ``gis-grid keys create`` run in-process and direct
calls all go through it), and so is ``create_session`` (the viewer's sign-in), so a token maps
to its role without touching any store. A request without a key, or with a token this session
never made, counts as a role with no unmask right.

Registered from tests/conftest.py (``pytest_plugins``); tests/api/test_pii_guard.py shows it
catching a leak.
"""
from __future__ import annotations

import contextlib
import re
import threading
from urllib.parse import urlsplit

import pytest

from gis_grid.testing import find_pii

UNMASK_PATH = re.compile(r"^/(?:residents|incidents)/[^/]+/unmasked/?$")
CARD_PATH = re.compile(r"^/grids/\d+/?$")
TEXTUAL = ("json", "text/", "html", "csv", "xml", "javascript")

_roles: dict[str, str] = {}          # bearer token -> role, for keys made in this session
_hits: list[str] = []                # leaks seen since the current test phase began
_lock = threading.Lock()
_originals: list[tuple[object, str, object]] = []


def role_of_token(token: str | None) -> str | None:
    return _roles.get(token) if token else None


def _may_unmask(role: str | None) -> bool:
    if role is None:
        return False
    from gis_grid.security.roles import ROLES, PersonalData
    perm = ROLES.get(role)
    return perm is not None and perm.personal is PersonalData.FULL


def _may_see_work_phones(role: str | None) -> bool:
    from gis_grid.security.roles import ROLES
    perm = ROLES.get(role) if role else None
    return perm is not None and perm.work_phones


def _token(headers) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for part in (headers.get("cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "gg_session":
            return value.strip('"')
    return None


def inspect(method: str, url: str, request_headers, content_type: str, body: bytes) -> str | None:
    """A description of the leak in one response, or None (also the unit the self-test drives)."""
    if not body or not any(t in (content_type or "").lower() for t in TEXTUAL):
        return None
    found = find_pii(body.decode("utf-8", errors="replace"))
    if not found:
        return None
    role = role_of_token(_token(request_headers))
    path = urlsplit(url).path
    if UNMASK_PATH.match(path) and _may_unmask(role):
        return None  # the explicit, purpose-bound, audited unmask endpoint, to a role allowed to use it
    if CARD_PATH.match(path) and _may_see_work_phones(role):
        text = body.decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            import json
            for w in json.loads(text).get("workers") or []:
                text = text.replace(str(w.get("phone") or ""), "")
        found = find_pii(text)   # what is left besides the workers' own phones
        if not found:
            return None
    who = f"role {role}" if role else "no key (or a key this session did not make)"
    return f"{method} {url} ({who}) answered unmasked personal data: {found}"


def _note(method, url, req_headers, resp_headers, body) -> None:
    try:
        leak = inspect(method, str(url), req_headers, resp_headers.get("content-type", ""), body)
    except Exception as exc:  # the guard must never be why a response goes missing
        leak = f"pii_guard could not scan {method} {url}: {exc!r}"
    if leak:
        with _lock:
            _hits.append(leak)


def _patch(owner, name: str, make) -> None:
    original = getattr(owner, name)
    _originals.append((owner, name, original))
    setattr(owner, name, make(original))


def _install() -> None:
    import httpx
    import requests

    from gis_grid.security import keys

    def wrap_create_key(original):
        def create_key(store, role, scope, *args, **kwargs):
            record, token = original(store, role, scope, *args, **kwargs)
            _roles[token] = role
            return record, token
        return create_key

    def wrap_httpx(original):
        def send(self, request, *args, **kwargs):
            response = original(self, request, *args, **kwargs)
            if not kwargs.get("stream"):  # a streamed body is the test's to read; not scanned
                _note(request.method, request.url, request.headers, response.headers, response.content)
            return response
        return send

    def wrap_httpx_async(original):
        async def send(self, request, *args, **kwargs):
            response = await original(self, request, *args, **kwargs)
            if not kwargs.get("stream"):
                _note(request.method, request.url, request.headers, response.headers, response.content)
            return response
        return send

    def wrap_requests(original):
        def send(self, request, **kwargs):
            response = original(self, request, **kwargs)
            if not kwargs.get("stream"):
                _note(request.method, request.url, request.headers, response.headers, response.content)
            return response
        return send

    def wrap_create_session(original):
        def create_session(store, signed_in_with, *args, **kwargs):
            record, token = original(store, signed_in_with, *args, **kwargs)
            _roles[token] = signed_in_with.role   # the browser session acts in its key's role
            return record, token
        return create_session

    _patch(keys, "create_key", wrap_create_key)
    _patch(keys, "create_session", wrap_create_session)
    _patch(httpx.Client, "send", wrap_httpx)
    _patch(httpx.AsyncClient, "send", wrap_httpx_async)
    _patch(requests.Session, "send", wrap_requests)


@contextlib.contextmanager
def expect_leaks():
    """Collect (and take away from the failing list) the leaks seen inside the block; for self-tests."""
    with _lock:
        start = len(_hits)
    caught: list[str] = []
    try:
        yield caught
    finally:
        with _lock:
            caught.extend(_hits[start:])
            del _hits[start:]


def pytest_configure(config):
    _install()


def pytest_unconfigure(config):
    while _originals:
        owner, name, original = _originals.pop()
        setattr(owner, name, original)


def _guarded(phase: str):
    @pytest.hookimpl(wrapper=True)
    def hook(item):
        with _lock:
            _hits.clear()
        try:
            result = yield
        finally:
            with _lock:
                leaks, _hits[:] = list(_hits), []
        if leaks:
            pytest.fail(f"PII guard ({phase}): {len(leaks)} response(s) with unmasked personal data:\n  "
                        + "\n  ".join(leaks[:10]), pytrace=False)
        return result
    return hook


pytest_runtest_setup = _guarded("setup")
pytest_runtest_call = _guarded("call")
pytest_runtest_teardown = _guarded("teardown")
