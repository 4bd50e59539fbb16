"""Browser sessions (issue 13, point 7): the cookie holds a server-side session, never the API key;
sign-out revokes it server-side; cookies are HttpOnly/SameSite=Lax and Secure on an https public
URL; /login and every cookie-authenticated write need a CSRF token (double submit)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import make_toy_store
from gis_grid.errors import AuthenticationError, InvalidInputError
from gis_grid.security import keys

G1 = "370402001001001"


@pytest.fixture
def env(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    token = keys.create_key(store, "command_center", "370402")[1]
    with TestClient(create_app(Settings(db=store.url))) as client:
        yield client, store, token


def sign_in(client, token, **extra):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.cookies.get("gg_csrf") == csrf     # the form and the cookie carry the same token
    return client.post("/login", data={"key": token, "csrf": csrf, **extra}, follow_redirects=False)


def cookie_header(resp, name):
    return [h for h in resp.headers.get_list("set-cookie") if h.startswith(name + "=")][0].lower()


def test_login_needs_the_csrf_token_of_its_own_form(env):
    client, store, token = env
    # a page elsewhere posting the form: no token, or one it made up
    r = client.post("/login", data={"key": token}, follow_redirects=False)
    assert r.status_code == 403 and "gg_session" not in r.headers.get("set-cookie", "")
    client.get("/login")
    r = client.post("/login", data={"key": token, "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and "did not come from this site" in r.text
    assert "gg_session" not in client.cookies
    # audited in aggregate (gis_grid.security.throttle): one record for the first failure of the window
    assert [x["action"] for x in store.audit_records() if x["action"].startswith(("login", "auth."))] == ["auth.failed"]
    r = sign_in(client, token)
    assert r.status_code == 303 and r.headers["location"] == "/map"


def test_the_cookie_holds_a_session_not_the_key(env):
    client, store, token = env
    r = sign_in(client, token)
    session = client.cookies.get("gg_session")
    assert session and session != token and token.split("_")[1] not in session
    c = cookie_header(r, "gg_session")
    assert "httponly" in c and "samesite=lax" in c and "secure" not in c   # served on plain http here
    assert "httponly" not in cookie_header(r, "gg_csrf")   # the page's scripts read it for the header
    me = client.get("/me").json()
    assert me["role"] == "command_center" and me["scope"] == "370402"
    record = store.key(me["key_id"])
    assert record["note"] == keys.SESSION_NOTE + token.split("_")[1]
    life = datetime.fromisoformat(record["expires"]) - datetime.fromisoformat(record["created"])
    assert life == timedelta(hours=Settings().session_hours) == timedelta(hours=12)


def test_logout_revokes_the_session_server_side(env):
    client, store, token = env
    sign_in(client, token)
    session, csrf = client.cookies.get("gg_session"), client.cookies.get("gg_csrf")
    sid = client.get("/me").json()["key_id"]
    assert client.post("/logout", follow_redirects=False).status_code == 403        # no CSRF header
    r = client.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert store.key(sid)["revoked"]
    # a copy of the old cookie is dead at once (this process forgets it; others within the 5 s cache)
    client.cookies.clear()
    r = client.get("/me", headers={"Cookie": f"gg_session={session}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    # the API key the session was signed in with still works
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_logout_with_an_api_key_does_not_revoke_it(env):
    client, _, token = env
    h = {"Authorization": f"Bearer {token}"}
    assert client.post("/logout", headers=h, follow_redirects=False).status_code == 303
    assert client.get("/me", headers=h).status_code == 200


def test_revoking_the_key_ends_its_sessions(env):
    client, store, token = env
    _, session = keys.create_session(store, keys.authenticate(store, token))
    assert keys.authenticate(store, session).role == "command_center"
    store.revoke_key(token.split("_")[1], "2020-01-01T00:00:00+00:00")
    with pytest.raises(AuthenticationError, match="the key this session was signed in with was revoked"):
        keys.authenticate(store, session)
    with pytest.raises(InvalidInputError, match="browser sessions only"):
        keys.end_session(store, keys.Principal(token.split("_")[1], "command_center", "370402"))


def test_cookie_writes_need_the_csrf_header(env):
    client, _, token = env
    sign_in(client, token)
    case = dict(lon=117.505, lat=34.815, crs="EPSG:4490", category="dispute", description="楼道堆物")
    r = client.post("/incidents", json=case)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    r = client.post("/incidents", json=case, headers={"X-CSRF-Token": client.cookies.get("gg_csrf")})
    assert r.status_code == 201, r.text


def test_cookies_are_secure_on_an_https_public_url(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    token = keys.create_key(store, "command_center", "370402")[1]
    app = create_app(Settings(db=store.url, public_url="https://grid.example.cn"))
    with TestClient(app, base_url="https://testserver") as client:
        assert "secure" in cookie_header(client.get("/login"), "gg_csrf")
        r = sign_in(client, token)
        assert r.status_code == 303
        assert "secure" in cookie_header(r, "gg_session") and "secure" in cookie_header(r, "gg_csrf")


@pytest.mark.parametrize("settings, secure", [
    ({}, False),                                            # bound to 127.0.0.1 (make run)
    ({"host": "0.0.0.0"}, True),                            # reachable from the network
    ({"public_url": "http://grid.example.cn"}, True),       # published on another host: Secure even on http
    ({"public_url": "http://[::1]:8000"}, False),
    ({"host": "0.0.0.0", "public_url": "http://localhost:8000"}, False),
])
def test_cookies_are_secure_unless_served_on_loopback(tmp_path, settings, secure):
    store = make_toy_store(tmp_path / "toy.gpkg")
    app = create_app(Settings(db=store.url, **settings))
    with TestClient(app) as client:
        assert ("secure" in cookie_header(client.get("/login"), "gg_csrf")) is secure
