"""One error hierarchy for the library.

The library never imports a web framework; ``api/errors.py`` maps these
classes to HTTP status codes. Every message says what to fix.
"""
from __future__ import annotations


class GisGridError(Exception):
    """Base class of every error the library raises on purpose."""

    def __init__(self, message: str, *, detail: object | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInputError(GisGridError, ValueError):
    """The caller sent something malformed: fix the input and retry."""


class InvalidCoordinatesError(InvalidInputError):
    """NaN/inf, out-of-range or apparently swapped coordinates.

    ``detail`` holds ``[{"row": i, "reason": "..."}, ...]`` for batches.
    """


class UnknownCRSError(InvalidInputError):
    """A CRS name the service does not accept."""


class InvalidGeometryError(InvalidInputError):
    """A geometry that is not valid; ``detail`` carries the validity reason."""


class LimitExceededError(InvalidInputError):
    """A batch, polygon or area larger than the published limit."""


class NotFoundError(GisGridError, LookupError):
    """No such grid, building, household, plan or incident (or not in scope)."""


class ConflictError(GisGridError):
    """The object changed under the caller (stale version, concurrent edit)."""


class StoreError(GisGridError):
    """The store is missing, corrupt, or of an unknown schema version."""


class PreconditionError(GisGridError):
    """The caller's precondition (``If-Match`` version) no longer holds: the atlas moved on.

    ``detail`` carries ``{"current_version": N, "expected_version": M}``; re-read, redraw
    or re-validate the plan on version N and retry.
    """


class PreconditionRequiredError(PreconditionError):
    """A write that must name the version it was drawn on (``If-Match``) did not."""


class AuthenticationError(GisGridError):
    """Missing, malformed, unknown, revoked or expired credentials."""


class PermissionDeniedError(GisGridError):
    """The caller's role may not do this at all (out-of-scope objects answer NotFoundError)."""


class RateLimitedError(GisGridError):
    """Too many requests for this key; ``detail`` holds ``{"retry_after_s": N}``."""


class BusyError(GisGridError):
    """The service is at its budget for this kind of work (memory, concurrent builds); nothing was
    started. ``detail`` holds ``{"retry_after_s": N}``: retry then."""


class BudgetExceededError(GisGridError):
    """A long computation ran past its time budget and was stopped (its work really ended).

    ``detail`` says what was tried; retry later, or with a smaller or easier request.
    """


class SolveStopped(BudgetExceededError):
    """One solve of a long computation did not finish before its deadline (or its worker
    process died); the worker is gone, and the caller may retry or give up."""
