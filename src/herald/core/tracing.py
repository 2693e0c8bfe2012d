"""The tracer a component holds while tracing is off.

OpenTelemetry's no-op tracer still runs each `start_as_current_span` as a generator context
manager that attaches its invalid span to the context and detaches it after: about 1 % of a
message's CPU (bench/http_turns.py). Here the context manager is one shared object that hands out
the invalid span and attaches nothing; the current span reads the same (invalid) either way.
"""

from __future__ import annotations

import contextlib
from typing import Any

from opentelemetry import trace

_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)


class OffTracer(trace.NoOpTracer):
    def start_as_current_span(self, *_: Any, **__: Any) -> Any:
        return _NO_SPAN
