"""Maps the library's error hierarchy to HTTP status codes, with bodies that say what to fix."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis_grid import errors as e

log = logging.getLogger("gis_grid.api")
#: seconds a client should wait after a 503 from an unreachable store
STORE_RETRY_AFTER_S = 5

# most specific first
STATUS = [
    (e.LimitExceededError, 413),
    (e.UnknownCRSError, 400),
    (e.InvalidGeometryError, 422),
    (e.InvalidCoordinatesError, 422),
    (e.InvalidInputError, 400),
    (e.NotFoundError, 404),
    (e.ConflictError, 409),
    (e.PreconditionRequiredError, 428),
    (e.PreconditionError, 412),
    (e.StoreError, 503),
    (e.BudgetExceededError, 503),
    (e.BusyError, 503),
    (e.AuthenticationError, 401),
    (e.PermissionDeniedError, 403),
    (e.RateLimitedError, 429),
]


def status_of(exc: e.GisGridError) -> int:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def problem(status: int, title: str, detail: str, **extra) -> JSONResponse:
    body = {"status": status, "title": title, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


#: the body of every error answer (RFC 9457 problem details); ``errors`` carries per-item reasons
PROBLEM_SCHEMA = {
    "type": "object", "required": ["status", "title", "detail"],
    "properties": {"status": {"type": "integer", "minimum": 400, "maximum": 599},
                   "title": {"type": "string"},
                   "detail": {"type": "string", "description": "what went wrong and what to fix"},
                   "errors": {"description": "per-item reasons (rows, vertices, parameters), when there are several"}},
}
# answers any operation can give: malformed input (400), no or bad key (401), role may not (403),
# missing or out of the key's scope (404), body over the size limit (413, checked before routing),
# invalid coordinates or geometry (422), rate limit (429, with Retry-After)
COMMON_ERRORS = {
    "400": "Bad request: a parameter or the body is malformed; `detail` says which and how to fix it",
    "401": "No API key, or an unknown, revoked or expired one",
    "403": "The key's role may not use this endpoint",
    "404": "No such object, or it lies outside the key's scope (the two look the same on purpose)",
    "413": "Over a published limit (body size, batch points, polygon vertices, area); see /capabilities",
    "422": "Coordinates or geometry are invalid (NaN, out of range, swapped, self-intersecting, ...)",
    "429": "Rate limit of this key reached; retry after the `Retry-After` seconds",
}
# answers only some operations give, by a substring of their path
EXTRA_ERRORS = {
    "409": ("The object changed meanwhile (stale version or paging token): re-read and retry",
            ("/residents", "/transitions", "/plans")),
    "412": ("If-Match names an atlas version that is no longer current", ("/apply",)),
    "428": ("This write needs an If-Match header with the version it was drawn on", ("/apply",)),
}


def document_errors(spec: dict) -> dict:
    """Declare the problem+json error answers on every operation of an OpenAPI document.

    FastAPI documents only its own 422 validation body, which this app never sends (caller
    mistakes are problem+json 400s); a schema that names every answer lets clients and
    schemathesis hold the app to it.
    """
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, ops in spec.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            for code, text in COMMON_ERRORS.items():
                responses[code] = {"description": text, "content": content}
            for code, (text, where) in EXTRA_ERRORS.items():
                if any(w in path for w in where):
                    responses[code] = {"description": text, "content": content}
    spec["components"]["schemas"].pop("HTTPValidationError", None)
    spec["components"]["schemas"].pop("ValidationError", None)
    return spec


#: refusals a browser gets as a page rather than problem+json
PAGE_STATUSES = (401, 403, 404)


def wants_page(request: Request, status: int) -> bool:
    """A browser navigating (Accept names text/html) to something it may not see; fetch() and API
    clients ask for JSON and keep the problem+json body."""
    return (status in PAGE_STATUSES and request.method in ("GET", "HEAD")
            and "text/html" in request.headers.get("accept", ""))


def refusal(request: Request, status: int, title: str, detail: str, **extra):
    """problem+json, or the same refusal as a bilingual page for a browser."""
    if wants_page(request, status):
        from web.pages import refusal_page
        prefix = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(refusal_page(status, detail, request.url.path, asset_prefix=f"{prefix}/map/static"),
                            status_code=status)
    return problem(status, title, detail, **extra)


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(e.GisGridError)
    async def _library(request: Request, exc: e.GisGridError):
        if isinstance(exc, e.StoreError):
            # the message names the database or file and the driver's words: the log gets it,
            # the caller (maybe holding a made-up key) gets no internals
            log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc.message)
            resp = problem(503, "Service Unavailable",
                           "the data store is unavailable or overloaded; retry after the Retry-After seconds")
            resp.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
            return resp
        extra = {"errors": exc.detail} if exc.detail is not None else {}
        resp = refusal(request, status_of(exc), type(exc).__name__, exc.message, **extra)
        if isinstance(exc, e.AuthenticationError):
            resp.headers["WWW-Authenticate"] = 'Bearer realm="gis_grid"'
        if isinstance(exc, (e.RateLimitedError, e.BusyError)):
            resp.headers["Retry-After"] = str(int((exc.detail or {}).get("retry_after_s", 1)))
        if isinstance(exc, e.BudgetExceededError):
            resp.headers["Retry-After"] = "60"  # the work was stopped; an immediate retry would only repeat it
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
                  for err in exc.errors()]
        where = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errors[:5])
        return problem(400, "Bad request", f"invalid request: {where}", errors=errors)

    @app.exception_handler(json.JSONDecodeError)
    async def _json(request: Request, exc: json.JSONDecodeError):
        return problem(400, "Malformed JSON", f"the body is not valid JSON: {exc.msg} at position {exc.pos}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        resp = refusal(request, exc.status_code, "HTTP error", str(exc.detail))
        resp.headers.update(getattr(exc, "headers", None) or {})
        return resp
