"""Maps the library's error hierarchy to HTTP status codes, with bodies that say what to fix."""
from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis_grid import errors as e

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


def install(app: FastAPI) -> None:
    @app.exception_handler(e.GisGridError)
    async def _library(request: Request, exc: e.GisGridError):
        extra = {"errors": exc.detail} if exc.detail is not None else {}
        resp = problem(status_of(exc), type(exc).__name__, exc.message, **extra)
        if isinstance(exc, e.AuthenticationError):
            resp.headers["WWW-Authenticate"] = 'Bearer realm="gis_grid"'
        if isinstance(exc, e.RateLimitedError):
            resp.headers["Retry-After"] = str(int((exc.detail or {}).get("retry_after_s", 1)))
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
        resp = problem(exc.status_code, "HTTP error", str(exc.detail))
        resp.headers.update(getattr(exc, "headers", None) or {})
        return resp
