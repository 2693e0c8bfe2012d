"""How a failed send is understood above the platform layer."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    RETRY_LATER = "retry_later"  # transient: 5xx, rate limits; try the same request again later
    REPLAN = "replan"  # the reply route died (anchor expired/spent/invalid); plan another route
    PERMANENT = "permanent"  # this target cannot receive it (no permission, bot removed, ...)
    BUG = "bug"  # our request was malformed; retrying cannot help
    UNDELIVERABLE = "undeliverable"  # no route exists right now (no anchor, proactive not allowed)
    # The request may have reached the platform (e.g. a crash between sending and recording the
    # answer) and the platform does not dedup a resend (proactive sends): resending could
    # duplicate, so the item is not retried blindly; the operator and the agent are told.
    OUTCOME_UNKNOWN = "outcome_unknown"


class DeliveryError(Exception):
    """A send did not happen. `code`/`status`/`trace_id` are the platform's when it answered."""

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        *,
        code: int | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.code = code
        self.status = status
        self.trace_id = trace_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.reason]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.trace_id:
            parts.append(f"trace_id={self.trace_id}")
        return " ".join(parts)
