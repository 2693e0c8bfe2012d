"""The seed bug (AstrBot #6931): replying with the bot's own sent message id as msg_id."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


async def test_own_sent_id_as_msg_id_is_rejected_exactly_like_the_platform(client: SimClient) -> None:
    inbound = await client.user_says("6836D8522EE75AD3732E75C0D3B6F33A", "向我连续发送3条消息")
    first = await client.send_c2c("6836D8522EE75AD3732E75C0D3B6F33A", msg_id=inbound["msg_id"], msg_seq=9390)
    sent = first.ok()
    assert set(sent) == {"id", "timestamp", "ext_info"}
    assert sent["id"].startswith("ROBOT1.0_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", sent["timestamp"])
    assert sent["ext_info"]["ref_idx"].startswith("REFIDX_")

    second = await client.send_c2c("6836D8522EE75AD3732E75C0D3B6F33A", msg_id=sent["id"], msg_seq=7579)

    assert second.status == 400
    assert second.headers["Content-Type"] == "application/json"
    assert second.body == {
        "message": "请求参数msg_id无效或越权",
        "code": 40034024,
        "err_code": 40034024,
        "trace_id": second.body["trace_id"],
    }
    assert isinstance(second.body["trace_id"], str)
    assert second.headers["X-Tps-trace-ID"] == second.body["trace_id"]


async def test_the_inbound_anchor_still_works_after_the_rejection(client: SimClient) -> None:
    """The fix (keep inbound anchors apart from outbound ids): the user's msg_id stays usable."""
    inbound = await client.user_says("u-seed")
    sent = (await client.send_c2c("u-seed", msg_id=inbound["msg_id"], msg_seq=1)).ok()
    (await client.send_c2c("u-seed", msg_id=sent["id"], msg_seq=2)).error(40034024)
    (await client.send_c2c("u-seed", msg_id=inbound["msg_id"], msg_seq=2)).ok()


async def test_the_official_sdk_sees_the_seed_error_as_on_the_platform(
    client: SimClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botpy 1.2.1 pointed at the sim by base URL: the second send raises the error of the seed log."""
    from botpy import errors
    from botpy.api import BotAPI
    from botpy.http import BotHttp, Route

    monkeypatch.setattr(Route, "SCHEME", "http")
    monkeypatch.setattr(Route, "DOMAIN", f"127.0.0.1:{client.sim.port}")
    s = client.sim.state.settings
    http = BotHttp(timeout=5, app_id=s.app_id, secret=s.secret)
    assert http._token is not None
    http._token.access_token = await client.fetch_token()  # botpy's token URL is fixed; fetch it here
    http._token.expires_in = int(time.time()) + 7000
    api = BotAPI(http)
    try:
        inbound = await client.user_says("6836D8522EE75AD3732E75C0D3B6F33A")
        sent = await api.post_c2c_message(
            openid="6836D8522EE75AD3732E75C0D3B6F33A",
            msg_type=0,
            content="1",
            msg_id=inbound["msg_id"],
            msg_seq=1,
        )
        assert isinstance(sent, dict) and sent["id"].startswith("ROBOT1.0_")
        with pytest.raises(errors.ServerError, match="请求参数msg_id无效或越权"):
            await api.post_c2c_message(
                openid="6836D8522EE75AD3732E75C0D3B6F33A",
                msg_type=0,
                content="2",
                msg_id=sent["id"],
                msg_seq=2,
            )
    finally:
        await http.close()
