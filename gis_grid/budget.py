"""Time budgets for long computations (impact reports, as-of atlases, imports).

A computation checks its :class:`Budget` before each step. Past the budget, or once the
process is shutting down (:func:`stop_all_work`), the next check raises
:class:`~gis_grid.errors.BudgetExceededError` naming the steps done, so the work really
ends there instead of running on after its caller gave up. A step already running finishes
first (each is seconds at most); database reads are bounded by the statement timeout.
Proposals have their own, stricter mechanism: their solver runs in a process that is killed.
"""
from __future__ import annotations

import threading
import time

from .errors import BudgetExceededError, InvalidInputError

_stopping = threading.Event()


def stop_all_work() -> None:
    """The process is shutting down: every budgeted computation stops at its next check."""
    _stopping.set()


class Budget:
    """``seconds`` of work for ``what`` (None: no time limit, only shutdown stops it)."""

    def __init__(self, what: str, seconds: float | None = None, *, hint: str = "retry later"):
        if seconds is not None and not seconds > 0:
            raise InvalidInputError(f"the time budget of {what} must be positive, not {seconds!r}")
        self.what, self.seconds, self.hint = what, seconds, hint
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.done: list[str] = []

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def step(self, name: str) -> None:
        """Check the budget before starting the step ``name``."""
        if _stopping.is_set():
            self._stop(f"{self.what} was stopped before {name}: the service is shutting down", name)
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._stop(f"{self.what} ran past its budget of {self.seconds:g} s and was stopped before {name}; "
                       f"{self.hint}", name)
        self.done.append(name)

    def _stop(self, message: str, name: str):
        raise BudgetExceededError(message, detail={"budget_s": self.seconds, "what": self.what,
                                                   "steps_done": list(self.done), "stopped_before": name})


def unlimited(budget: Budget | None, what: str) -> Budget:
    """``budget``, or one without a time limit (library callers that set none)."""
    return budget if budget is not None else Budget(what)
