"""Sign-in, identity, the unmasked-read endpoint and the audit log over HTTP (toy district)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from common import make_toy_store
from stores import copy_store
from gis_grid.security import audit, keys

# toy residents: Rq1..Rq3 live in grid 370402001001001, Rq5 in 370402002001001
G1, G_OTHER = "370402001001001", "370402002001001"


@pytest.fixture
def env(tmp_path):
    store = make_toy_store(tmp_path / "toy.gpkg")
    app = create_app(Settings(db=store.url, unmask_per_minute=3))
    tokens = {role: keys.create_key(store, role, scope)[1] for role, scope in
              [("grid_worker", G1), ("command_center", "370402"), ("auditor", "370402")]}
    with TestClient(app) as client:
        yield client, store, tokens


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_deny_by_default_and_identity(env):
    client, _, tokens = env
    r = client.get("/me")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/me", headers=bearer("gg_nope_nope")).status_code == 401
    me = client.get("/me", headers=bearer(tokens["grid_worker"])).json()
    assert (me["role"], me["scope"], me["permissions"]["personal"]) == ("grid_worker", G1, "full")


def test_login_sets_httponly_cookie_and_csrf_guards_writes(env):
    client, _, tokens = env
    client.get("/login")  # the form's CSRF token (tests/api/test_sessions.py)
    csrf = client.cookies.get("gg_csrf")
    bad = client.post("/login", data={"key": "gg_x_y", "csrf": csrf}, follow_redirects=False)
    assert bad.status_code == 401 and "unknown API key" in bad.text
    r = client.post("/login", data={"key": tokens["command_center"], "next": "https://evil.example/", "csrf": csrf},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/map"
    cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("gg_session=")][0].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/me").json()["role"] == "command_center"  # the cookie authenticates reads
    assert client.post("/logout", follow_redirects=False).status_code == 403  # no CSRF header
    csrf = client.cookies.get("gg_csrf")
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False).status_code == 303


def test_unmasked_read_is_scoped_purposeful_audited_and_rate_limited(env):
    client, store, tokens = env
    h = bearer(tokens["grid_worker"])
    r = client.get("/residents/Rq1/unmasked", params={"purpose": "home visit"}, headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["id_number"] == "370402197001010011" and body["name"] == "张三" and body["grid_code"] == G1
    # another grid's resident looks like a missing one
    assert client.get("/residents/Rq5/unmasked", params={"purpose": "home visit"}, headers=h).status_code == 404
    assert client.get("/residents/Rq1/unmasked", headers=h).status_code == 400  # purpose required
    assert client.get("/residents/Rq1/unmasked", params={"purpose": "look"},
                      headers=bearer(tokens["command_center"])).status_code == 403
    # the limit is 3 per minute: Rq1, Rq5 (refused, but counted) and Rq2 use it up
    assert client.get("/residents/Rq2/unmasked", params={"purpose": "home visit"}, headers=h).status_code == 200
    limited = client.get("/residents/Rq3/unmasked", params={"purpose": "home visit"}, headers=h)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    records = store.audit_records()
    reads = [r for r in records if r["action"] == "resident.unmask" and r["result"] == "ok"]
    assert [r["resource"] for r in reads] == ["resident/Rq1", "resident/Rq2"]
    assert all(r["masked"] is False and r["purpose"] == "home visit" and r["role"] == "grid_worker" for r in reads)
    assert {r["result"] for r in records if r["action"] == "resident.unmask"} >= {"not found", "denied"}
    assert audit.verify_store(store)[0]


def test_only_the_auditor_reads_the_audit_log(env):
    client, _, tokens = env
    client.get("/residents/Rq1/unmasked", params={"purpose": "home visit"}, headers=bearer(tokens["grid_worker"]))
    assert client.get("/audit", headers=bearer(tokens["grid_worker"])).status_code == 403
    log = client.get("/audit", headers=bearer(tokens["auditor"])).json()
    assert log["numberMatched"] >= 1 and log["records"][0]["action"] == "resident.unmask"


def test_demo_sign_in_link_is_single_use_and_only_on_demo_stores(tmp_path, demo_store_path):
    from api.server import DEMO_KEY_NOTE, demo_sign_in_link

    toy = make_toy_store(tmp_path / "toy.gpkg")
    with TestClient(create_app(Settings(db=toy.url))) as client:
        assert demo_sign_in_link(client.app) is None  # a real (non-demo) store prints no link
    demo = copy_store(demo_store_path, tmp_path / "demo.gpkg")
    with TestClient(create_app(Settings(db=demo))) as client:
        link = demo_sign_in_link(client.app)
        assert link.startswith("/login/once/") and "gg_" not in link
        r = client.get(link, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/map"
        assert client.get("/me").json()["role"] == "command_center"
        client.cookies.clear()
        assert client.get(link, follow_redirects=False).status_code == 401  # used up
        # a restart supersedes the previous demo key instead of adding one more
        store = client.app.state.holder.store
        first = [k for k in store.keys() if k["note"] == DEMO_KEY_NOTE]
        demo_sign_in_link(client.app)
        demo_keys = [k for k in store.keys() if k["note"] == DEMO_KEY_NOTE]
        assert len(first) == 1 and len(demo_keys) == 2
        live = [k["id"] for k in demo_keys if not k["revoked"]]
        assert len(live) == 1 and live[0] != first[0]["id"]
        assert [k["id"] for k in demo_keys if k["revoked"]] == [first[0]["id"]]
        assert store.audit_records()[-2]["action"] == "key.revoke"


def test_sign_in_link_goes_to_the_terminal_not_the_log(tmp_path, demo_store_path, capsys, caplog):
    """Stdout is the server log under a service manager: the link is written to the terminal only."""
    import io

    from api.server import announce_sign_in

    class Tty(io.StringIO):
        def close(self):  # keep the text readable after the server is done with it
            pass

    base = "http://127.0.0.1:8000"
    demo = copy_store(demo_store_path, tmp_path / "demo.gpkg")
    with TestClient(create_app(Settings(db=demo))) as client:
        store = client.app.state.holder.store
        tty = Tty()
        assert announce_sign_in(client.app, base, terminal=lambda: tty)
        logged = capsys.readouterr()
        assert "/login/once/" in tty.getvalue()
        assert "/login/once/" not in logged.out + logged.err + caplog.text
        link = tty.getvalue().split(base, 1)[1].strip()
        assert client.get(link, follow_redirects=False).status_code == 303
        # no terminal: no link anywhere and no key made for one
        n = len(store.keys())
        assert not announce_sign_in(client.app, base, terminal=lambda: None)
        assert "/login/once/" not in capsys.readouterr().out
        assert len(store.keys()) == n


def test_browser_refusals_are_pages_and_api_refusals_stay_problem_json(env):
    """A browser (Accept: text/html) that may not see something gets a bilingual page with the same
    status; fetch() and API clients keep the problem+json body."""
    client, _, tokens = env
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    cases = [("/me", {}, 401, "需要登录", "Sign-in required"),
             ("/audit", bearer(tokens["command_center"]), 403, "无权访问", "Not allowed"),
             ("/grids/370402999999999", bearer(tokens["command_center"]), 404, "未找到", "Not found"),
             ("/no/such/page", {}, 404, "未找到", "Not found")]
    for path, auth, status, zh, en in cases:
        page = client.get(path, headers={**html, **auth})
        assert page.status_code == status, (path, page.text)
        assert page.headers["content-type"].startswith("text/html"), path
        assert "content-security-policy" in page.headers
        assert zh in page.text and en in page.text and f'data-status="{status}"' in page.text
        assert "/map/static/i18n/lang.js" in page.text        # the language toggle
        api = client.get(path, headers={"Accept": "application/json", **auth})
        assert api.status_code == status and api.headers["content-type"] == "application/problem+json"
        assert api.json()["status"] == status
    # a 401 page sends the browser to sign in and back to where it was
    assert 'href="/login?next=/me"' in client.get("/me", headers=html).text
    # the login page itself: Chinese first, English beside it for the toggle, and the error in both
    login = client.get("/login")
    assert "请使用 API 密钥登录" in login.text and "Sign in with your API key." in login.text
    assert '<html lang="zh-CN">' in login.text and "/map/static/i18n/lang.css" in login.text
    bad = client.post("/login", data={"key": "gg_x_y", "csrf": client.cookies.get("gg_csrf")})
    assert bad.status_code == 401 and "登录失败" in bad.text and "Sign-in failed." in bad.text
    # a form that did not come from this page (no CSRF token) is refused in both languages too
    forged = client.post("/login", data={"key": "gg_x_y", "csrf": "forged"})
    assert forged.status_code == 403 and "登录表单已过期" in forged.text and "Sign-in form expired." in forged.text
