"""The one classification table: platform answers → retry later / re-plan / permanent / bug."""

from __future__ import annotations

import pytest

from herald.core import DeliveryError, ErrorKind
from herald.qq.errors import QQApiError, classify

RETRY, REPLAN, PERMANENT, BUG = (
    ErrorKind.RETRY_LATER,
    ErrorKind.REPLAN,
    ErrorKind.PERMANENT,
    ErrorKind.BUG,
)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (500, None, RETRY),
        (504, 12345, RETRY),  # unknown code on a 5xx
        (429, None, RETRY),
        (400, 50002, RETRY),
        (400, 40034100, RETRY),
        (400, 40093001, RETRY),
        (400, 40054006, RETRY),
        (400, 304082, RETRY),
        (400, 304083, RETRY),
        (400, 40034004, RETRY),
        (500, 50055001, RETRY),
        (400, 40034005, REPLAN),
        (400, 40034128, REPLAN),
        (400, 304027, REPLAN),
        (400, 304103, REPLAN),
        (400, 40034024, REPLAN),
        (400, 40034025, REPLAN),
        (400, 40034026, REPLAN),
        (400, 40034027, REPLAN),
        (400, 50045, REPLAN),
        (400, 304026, REPLAN),
        (400, 22009, REPLAN),
        (400, 40034122, REPLAN),
        (400, 40034105, PERMANENT),
        (400, 40034102, PERMANENT),
        (400, 40054013, PERMANENT),
        (400, 40054003, PERMANENT),
        (400, 40034101, PERMANENT),
        (400, 40054002, PERMANENT),
        (400, 40054004, PERMANENT),
        (400, 304049, PERMANENT),
        (400, 304050, PERMANENT),
        (400, 304045, PERMANENT),
        (400, 304047, PERMANENT),
        (400, 22006, BUG),
        (400, 50006, BUG),
        (400, 40034029, BUG),
        (400, 304080, BUG),
        (400, 40054005, BUG),  # deduplicated: flagged separately, see below
        (400, 99999999, BUG),  # unknown 4xx
        (404, None, BUG),
    ],
)
def test_classification(status: int, code: int | None, kind: ErrorKind) -> None:
    assert classify(status, code) is kind


def test_error_reads_code_or_err_code_and_trace_id() -> None:
    error = QQApiError.from_response(
        400,
        {"message": "请求参数msg_id无效或越权", "err_code": 40034024, "trace_id": "t-1"},
        method="POST",
        path="/p",
    )
    assert (error.code, error.kind, error.trace_id) == (40034024, REPLAN, "t-1")
    assert "40034024" in str(error) and "POST /p" in str(error)
    from_header = QQApiError.from_response(500, "<html>bad gateway</html>", trace_id="hdr")
    assert (from_header.code, from_header.kind, from_header.trace_id) == (None, RETRY, "hdr")


def test_to_delivery_error_keeps_what_the_outbox_needs() -> None:
    error = QQApiError.from_response(429, {"code": 50002, "message": "slow down"}, retry_after=7.0)
    delivery = error.to_delivery_error()
    assert isinstance(delivery, DeliveryError)
    assert (delivery.kind, delivery.code, delivery.status, delivery.retry_after) == (RETRY, 50002, 429, 7.0)
    duplicate = QQApiError.from_response(400, {"code": 40054005, "message": "消息被去重"})
    assert duplicate.duplicate and not error.duplicate
    assert "already delivered" in duplicate.to_delivery_error().reason


def test_token_codes_mark_the_token_as_rejected() -> None:
    assert QQApiError.from_response(401, {"code": 11244, "message": "token expired"}).token_rejected
    assert QQApiError.from_response(400, {"code": 11243}).token_rejected
    assert not QQApiError.from_response(400, {"code": 40034024}).token_rejected
