"""What a failed QQ OpenAPI call means, classified once.

`QQApiError` carries the platform's answer (HTTP status, `code`/`err_code`, message, trace id)
and its `kind`: retry later, re-plan the route, permanent for this target, or a bug in our
request. `CODE_KINDS` is the one table; `classify(status, code)` adds the fallbacks (unknown
5xx → retry later, unknown 4xx → bug). `40054005` ("deduplicated: same msg_id + msg_seq") is
its own flag, `duplicate`, so the outbox can count a retried send as already delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from herald.core.errors import DeliveryError, ErrorKind

DUPLICATE_CODE = 40054005

RETRY = ErrorKind.RETRY_LATER
REPLAN = ErrorKind.REPLAN
PERMANENT = ErrorKind.PERMANENT
BUG = ErrorKind.BUG


@dataclass(frozen=True, slots=True)
class Code:
    """What one platform code means for Herald.

    `kind`: retry later, re-plan the route, permanent for this target, or a bug in our request.
    `anchor`: the reply anchor the request used is used up ("spent") or was never (or is no
    longer) known to the platform ("invalid"). `markdown_refused`: the target does not take
    markdown; send the part as text and remember it. `proactive_refused`: the target does not
    take proactive messages until it says otherwise. `keyboard_refused`: the message's buttons
    were refused; send them as numbered choices (`/choose N`) and remember it.
    """

    kind: ErrorKind
    anchor: Literal["spent", "invalid"] | None = None
    markdown_refused: bool = False
    proactive_refused: bool = False
    keyboard_refused: bool = False


# The one table: code -> meaning. Codes not listed fall back on the HTTP status (see `classify`).
CODES: dict[int, Code] = {
    # Retry later: rate limits, transient platform failures.
    50002: Code(RETRY),  # rate limited (stream_messages and generic)
    50001: Code(RETRY),  # internal error
    40034100: Code(RETRY),  # proactive send over the rate limit
    40093001: Code(RETRY),  # upload failed (BDH channel), retry
    40054006: Code(RETRY),  # friend-relationship check failed, retry
    304082: Code(RETRY),  # rich media fetch failed
    304083: Code(RETRY),  # rich media convert failed
    40034004: Code(RETRY),  # rich-media transfer failed
    50055001: Code(RETRY),  # send error, retry later
    50055002: Code(RETRY),
    50055006: Code(RETRY),
    50065001: Code(RETRY),  # recall failed, retry
    20028: Code(RETRY),  # channel write rate limit
    1100100: Code(RETRY),  # security rate limit
    1100308: Code(RETRY),  # in-guild rate limit
    100001: Code(RETRY),  # token endpoint: too many requests
    11242: Code(RETRY),  # token check failed (retry once)
    11252: Code(RETRY),  # app permission check failed (retry once)
    850027: Code(RETRY),  # upload send timeout
    # Re-plan: the reply route (anchor) is dead or was never valid.
    40034005: Code(REPLAN, anchor="spent"),  # reply msg_id expired
    40034128: Code(REPLAN, anchor="spent"),  # passive reply time or count exceeded
    304027: Code(REPLAN, anchor="spent"),  # guild reply msg expired
    304103: Code(REPLAN, anchor="spent"),  # message id expired
    40034024: Code(REPLAN, anchor="invalid"),  # msg_id invalid or not yours
    40034025: Code(REPLAN, anchor="invalid"),  # event_id invalid
    40034026: Code(REPLAN, anchor="invalid"),  # event_id expired
    40034027: Code(REPLAN, anchor="invalid"),  # event type not replyable
    50045: Code(REPLAN, anchor="invalid"),  # cannot reply to the bot's own message
    304026: Code(REPLAN, anchor="invalid"),  # wrong reply msg id
    304028: Code(REPLAN, anchor="invalid"),  # cannot reply to a non-@ message
    22009: Code(REPLAN),  # msg limit exceeded (older quota)
    40034122: Code(REPLAN),  # is_wakeup period limit reached
    40034123: Code(REPLAN),  # recall not supported
    # Permanent for this target.
    40034105: Code(PERMANENT, proactive_refused=True),  # proactive: no permission
    40034102: Code(PERMANENT, proactive_refused=True),  # proactive: no permission (2025)
    40054013: Code(PERMANENT, proactive_refused=True),  # user refuses messages
    40054003: Code(PERMANENT),  # bot not a group member
    40034101: Code(PERMANENT),  # bot not a group member
    40054002: Code(PERMANENT),  # bot muted
    40054004: Code(PERMANENT),  # no friend relationship
    40054016: Code(PERMANENT),  # bot offline
    304049: Code(PERMANENT),  # DM proactive per-user limit
    304050: Code(PERMANENT),  # DM proactive total limit
    304045: Code(PERMANENT),  # channel proactive limit
    304046: Code(PERMANENT),  # proactive not allowed in channel
    304047: Code(PERMANENT),  # channel count exceeded
    304048: Code(PERMANENT),  # proactive not allowed in guild
    304035: Code(PERMANENT),  # push over the channel-count limit
    304022: Code(PERMANENT),  # push time restriction (quiet hours)
    304018: Code(PERMANENT),  # bot not connected to the gateway
    850018: Code(PERMANENT),  # group or bot muted (upload)
    40093002: Code(PERMANENT),  # daily upload quota exceeded
    1100104: Code(PERMANENT),  # group no longer exists
    1100301: Code(PERMANENT),  # caller not a member
    11253: Code(PERMANENT),  # app lacks permission for this API
    11254: Code(PERMANENT),  # API banned for this app
    11265: Code(PERMANENT),  # bot banned
    306009: Code(PERMANENT),  # invalid user openid (recall)
    40064004: Code(PERMANENT),  # recall: past the 2-minute limit
    40062003: Code(PERMANENT),  # recall: no permission
    # Bug: our request was wrong; resending it cannot help.
    22006: Code(BUG),  # msg_type does not match content
    50006: Code(BUG),  # empty message
    40034029: Code(BUG, keyboard_refused=True),  # keyboard over limit
    304080: Code(BUG),  # invalid file_info
    340069: Code(BUG),  # invalid msg_type
    50037: Code(BUG),  # markdown with content (a request shape, not the target: §8, rule 54)
    50057: Code(BUG),  # native and template markdown exclusive
    50059: Code(BUG),  # input_notify type error
    40007: Code(BUG),  # stream replace prefix changed
    40054007: Code(BUG),  # message too long
    40054018: Code(BUG),  # message too long or malformed
    40034006: Code(BUG),  # content violates rules
    40054010: Code(BUG),  # URL not allowed in group
    40034028: Code(BUG),  # URL not allowed
    304003: Code(BUG),  # URL not registered
    850019: Code(BUG),  # unsupported format
    850026: Code(BUG),  # source URL could not be downloaded
    850031: Code(BUG),  # file too large
    # The target does not take markdown: fall back to text.
    304036: Code(BUG, markdown_refused=True),  # no markdown template permission (group)
    40034127: Code(BUG, markdown_refused=True),  # no markdown template permission
    40034124: Code(BUG, markdown_refused=True),  # markdown message parameter error
    40034011: Code(BUG, markdown_refused=True),  # markdown parameter error (40034008-40034011)
    # The message's buttons were refused: send them as numbered choices instead.
    304057: Code(BUG, keyboard_refused=True),  # custom keyboards not allowed for this bot
    304037: Code(BUG, keyboard_refused=True),  # no permission for message buttons
    304038: Code(BUG, keyboard_refused=True),  # keyboard template does not exist
    304039: Code(BUG, keyboard_refused=True),  # keyboard could not be parsed
    304040: Code(BUG, keyboard_refused=True),  # keyboard content error
    305007: Code(BUG, keyboard_refused=True),  # keyboard style parameter error (group)
    # Deduplicated: already delivered (flagged `duplicate`).
    DUPLICATE_CODE: Code(BUG),
}

# The kind alone, for callers that only need it.
CODE_KINDS: dict[int, ErrorKind] = {code: row.kind for code, row in CODES.items()}

# Codes that mean "the token is bad": the client refreshes once and retries once.
TOKEN_CODES = frozenset({11241, 11243, 11244})
# The upload code whose retry the media upload makes itself, within its own deadline.
UPLOAD_RETRY_CODE = 40093001


def meaning(code: int | None) -> Code | None:
    """The table's row for `code`, if it has one."""
    return None if code is None else CODES.get(code)


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
        maybe_sent: bool = False,
    ) -> None:
        self.status = status
        # No answer arrived, but the request may have reached the platform (timeout, connection
        # reset after it was written): whether it took effect is unknown.
        self.maybe_sent = maybe_sent
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
