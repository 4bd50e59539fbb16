"""The API description pages, served offline: Swagger UI from the app's vendored copy
(web/static/swagger-ui), never from a CDN, so /docs works in a command centre without internet
and within the page CSP (script-src 'self'). Open by design, like /openapi.json."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter(include_in_schema=False)
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    static = f"{root}/map/static/swagger-ui"
    return get_swagger_ui_html(openapi_url=f"{root}{request.app.openapi_url}", title="gis_grid API",
                               swagger_js_url=f"{static}/swagger-ui-bundle.js",
                               swagger_css_url=f"{static}/swagger-ui.css", swagger_favicon_url="data:,",
                               oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}")


@router.get(OAUTH2_REDIRECT)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc() -> RedirectResponse:
    # one vendored viewer is enough; ReDoc's web worker would also need a wider CSP
    return RedirectResponse("/docs", status_code=307)
