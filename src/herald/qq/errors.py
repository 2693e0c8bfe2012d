"""What a failed QQ OpenAPI call means, classified once (architecture invariant 6).

`QQApiError` carries the platform's answer (HTTP status, `code`/`err_code`, message, trace id)
and its `kind`: retry later, re-plan the route, permanent for this target, or a bug in our
request. `CODE_KINDS` is the one table; `classify(status, code)` adds the fallbacks (unknown
5xx → retry later, unknown 4xx → bug). `40054005` ("deduplicated: same msg_id + msg_seq") is
its own flag, `duplicate`, so the outbox can count a retried send as already delivered
(qq-platform.md §6.3, §7.2).
"""

from __future__ import annotations

from typing import Any

from herald.core.errors import DeliveryError, ErrorKind

DUPLICATE_CODE = 40054005

RETRY = ErrorKind.RETRY_LATER
REPLAN = ErrorKind.REPLAN
PERMANENT = ErrorKind.PERMANENT
BUG = ErrorKind.BUG

# code -> kind. Codes not listed fall back on the HTTP status (see `classify`).
CODE_KINDS: dict[int, ErrorKind] = {
    # Retry later: rate limits, transient platform failures.
    50002: RETRY,  # rate limited (stream_messages and generic)
    50001: RETRY,  # internal error
    40034100: RETRY,  # proactive send over the rate limit
    40093001: RETRY,  # upload failed (BDH channel), retry
    40054006: RETRY,  # friend-relationship check failed, retry
    304082: RETRY,  # rich media fetch failed
    304083: RETRY,  # rich media convert failed
    40034004: RETRY,  # rich-media transfer failed
    50055001: RETRY,  # send error, retry later
    50055002: RETRY,
    50055006: RETRY,
    50065001: RETRY,  # recall failed, retry
    20028: RETRY,  # channel write rate limit
    1100100: RETRY,  # security rate limit
    1100308: RETRY,  # in-guild rate limit
    100001: RETRY,  # token endpoint: too many requests
    11242: RETRY,  # token check failed (retry once)
    11252: RETRY,  # app permission check failed (retry once)
    850027: RETRY,  # upload send timeout
    # Re-plan: the reply route (anchor) is dead or was never valid.
    40034005: REPLAN,  # reply msg_id expired
    40034128: REPLAN,  # passive reply time or count exceeded
    304027: REPLAN,  # guild reply msg expired
    304103: REPLAN,  # message id expired
    40034024: REPLAN,  # msg_id invalid or not yours
    40034025: REPLAN,  # event_id invalid
    40034026: REPLAN,  # event_id expired
    40034027: REPLAN,  # event type not replyable
    50045: REPLAN,  # cannot reply to the bot's own message
    304026: REPLAN,  # wrong reply msg id
    304028: REPLAN,  # cannot reply to a non-@ message
    22009: REPLAN,  # msg limit exceeded (older quota)
    40034122: REPLAN,  # is_wakeup period limit reached
    40034123: REPLAN,  # recall not supported
    # Permanent for this target.
    40034105: PERMANENT,  # proactive: no permission
    40034102: PERMANENT,  # proactive: no permission (2025)
    40054013: PERMANENT,  # user refuses messages
    40054003: PERMANENT,  # bot not a group member
    40034101: PERMANENT,  # bot not a group member
    40054002: PERMANENT,  # bot muted
    40054004: PERMANENT,  # no friend relationship
    40054016: PERMANENT,  # bot offline
    304049: PERMANENT,  # DM proactive per-user limit
    304050: PERMANENT,  # DM proactive total limit
    304045: PERMANENT,  # channel proactive limit
    304046: PERMANENT,  # proactive not allowed in channel
    304047: PERMANENT,  # channel count exceeded
    304048: PERMANENT,  # proactive not allowed in guild
    304035: PERMANENT,  # push over the channel-count limit
    304022: PERMANENT,  # push time restriction (quiet hours)
    304018: PERMANENT,  # bot not connected to the gateway
    850018: PERMANENT,  # group or bot muted (upload)
    40093002: PERMANENT,  # daily upload quota exceeded
    1100104: PERMANENT,  # group no longer exists
    1100301: PERMANENT,  # caller not a member
    11253: PERMANENT,  # app lacks permission for this API
    11254: PERMANENT,  # API banned for this app
    11265: PERMANENT,  # bot banned
    306009: PERMANENT,  # invalid user openid (recall)
    40064004: PERMANENT,  # recall: past the 2-minute limit
    40062003: PERMANENT,  # recall: no permission
    # Bug: our request was wrong; resending it cannot help.
    22006: BUG,  # msg_type does not match content
    50006: BUG,  # empty message
    40034029: BUG,  # keyboard over limit
    304080: BUG,  # invalid file_info
    340069: BUG,  # invalid msg_type
    50037: BUG,  # markdown only with keyboard
    50057: BUG,  # native and template markdown exclusive
    50059: BUG,  # input_notify type error
    40007: BUG,  # stream replace prefix changed
    40054007: BUG,  # message too long
    40054018: BUG,  # message too long or malformed
    40034006: BUG,  # content violates rules
    40054010: BUG,  # URL not allowed in group
    40034028: BUG,  # URL not allowed
    304003: BUG,  # URL not registered
    850019: BUG,  # unsupported format
    850026: BUG,  # source URL could not be downloaded
    850031: BUG,  # file too large
    # Deduplicated: already delivered (flagged `duplicate`).
    DUPLICATE_CODE: BUG,
}

# Codes that mean "the token is bad": the client refreshes once and retries once.
TOKEN_CODES = frozenset({11241, 11243, 11244})


def classify(status: int, code: int | None) -> ErrorKind:
    """The kind of a failure from its HTTP status and platform code (the table wins)."""
    if code is not None and code in CODE_KINDS:
        return CODE_KINDS[code]
    if status == 429 or status >= 500 or status == 0:
        return RETRY
    if status == 401:
        return RETRY  # the token was refused even after one refresh; the token manager recovers
    return BUG


class QQApiError(Exception):
    """The QQ OpenAPI (or the token endpoint) refused a request, or could not be reached.

    `status` is 0 when no HTTP answer arrived (connection refused, timeout).
    """

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        *,
        trace_id: str | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.trace_id = trace_id
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.kind = kind if kind is not None else classify(status, code)
        super().__init__(str(self))

    @property
    def duplicate(self) -> bool:
        """The platform deduplicated this send (same msg_id + msg_seq accepted before)."""
        return self.code == DUPLICATE_CODE

    @property
    def token_rejected(self) -> bool:
        return self.status == 401 or (self.code is not None and self.code in TOKEN_CODES)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.path else ""
        parts = [f"{where}{self.message}"]
        if self.code is not None:
            parts.append(f"code={self.code}")
        parts.append(f"http={self.status}")
        if self.trace_id:
            parts.append(f"trace_id={self.trace_id}")
        return " ".join(parts)

    def to_delivery_error(self) -> DeliveryError:
        reason = self.message or f"HTTP {self.status}"
        if self.duplicate:
            reason = f"deduplicated by the platform (already delivered): {reason}"
        return DeliveryError(
            self.kind,
            reason,
            code=self.code,
            status=self.status or None,
            trace_id=self.trace_id,
            retry_after=self.retry_after,
        )

    @classmethod
    def from_response(
        cls,
        status: int,
        body: Any,
        *,
        trace_id: str | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> QQApiError:
        """Builds the error from a response body: reads `code` or `err_code`, `message`, `trace_id`."""
        code: int | None = None
        message = ""
        if isinstance(body, dict):
            for key in ("code", "err_code", "biz_code"):
                value = body.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value != 0:
                    code = value
                    break
                if isinstance(value, str) and value.isdigit() and value != "0":
                    code = int(value)
                    break
            raw_message = body.get("message", body.get("msg", ""))
            message = str(raw_message) if raw_message is not None else ""
            body_trace = body.get("trace_id")
            if isinstance(body_trace, str) and body_trace:
                trace_id = trace_id or body_trace
        elif isinstance(body, str):
            message = body[:200]
        if retry_after is None and (status == 429 or (code is not None and CODE_KINDS.get(code) is RETRY)):
            retry_after = 1.0
        return cls(
            status,
            code,
            message or f"HTTP {status}",
            trace_id=trace_id,
            method=method,
            path=path,
            retry_after=retry_after,
        )
