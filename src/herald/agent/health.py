"""The model's state as the operator sees it: ok, or failing with the cause.

The agent records every model request's outcome here: a failure (its cause, when, how many in a
row), cleared by the next answer. `problem` is a seam for what the model's owner knows without a
request, e.g. that the embedded model server crashed; app.py wires it. `/status`, the log and the
demo page read `describe()`, so a failing model never looks like a working one there, even though
the user only gets the short apology.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from herald.core.clock import Clock


@dataclass(frozen=True, slots=True)
class ModelFailures:
    cause: str
    since: datetime  # the first failure in this row
    last: datetime
    count: int  # consecutive failed requests


class ModelHealth:
    def __init__(self, clock: Clock, problem: Callable[[], str | None] = lambda: None) -> None:
        self.clock = clock
        self.problem = problem
        self.failures: ModelFailures | None = None

    def failed(self, cause: str) -> str:
        """Record a failed request; returns the state line (for the log)."""
        now = self.clock.now()
        previous = self.failures
        self.failures = ModelFailures(
            cause=cause,
            since=previous.since if previous else now,
            last=now,
            count=(previous.count if previous else 0) + 1,
        )
        return self.describe()

    def succeeded(self) -> None:
        self.failures = None

    @property
    def ok(self) -> bool:
        return self.failures is None and not self.problem()

    def describe(self) -> str:
        """`ok`, or `failing: <cause> …` naming the cause, the owner's problem and the count."""
        problem = self.problem()
        failures = self.failures
        if failures is None:
            return f"failing: {problem}" if problem else "ok"
        row = "1 request" if failures.count == 1 else f"{failures.count} requests in a row"
        text = f"failing: {failures.cause} ({row}, last at {failures.last:%Y-%m-%d %H:%M:%S} UTC)"
        return f"{text}; {problem}" if problem else text
