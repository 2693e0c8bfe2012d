"""Identity, discovery, message bodies, guild sends, recall, interactions, rate limits
(rules 53-62, 76, 77, 80 and §6.8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


async def test_rule80_identity_and_gateway_discovery(client: SimClient) -> None:
    me = (await client.get("/users/@me")).ok()
    assert {"id", "username", "avatar"} <= set(me)
    assert (await client.get("/gateway")).ok() == {"url": f"ws://127.0.0.1:{client.sim.port}/websocket/"}
    bot = (await client.get("/gateway/bot")).ok()
    assert bot["url"] == f"ws://127.0.0.1:{client.sim.port}/websocket/"
    assert bot["shards"] == 1
    assert set(bot["session_start_limit"]) == {"total", "remaining", "reset_after", "max_concurrency"}


async def test_rule53_msg_type_must_match_and_be_known(client: SimClient) -> None:
    (await client.send_c2c("u1", msg_type=9)).error(22006)
    (await client.send_group("g1", msg_type=9)).error(340069)
    (await client.send_group("g1", msg_type=6, input_notify={"input_type": 1, "input_second": 5})).error(
        340069
    )
    (await client.send_c2c("u1", msg_type=3)).error(22006)
    (await client.send_c2c("u1", msg_type=0, content="", markdown={"content": "x"})).error(22006)
    (await client.send_c2c("u1", msg_type=3, ark={"template_id": 23, "kv": []})).ok()


async def test_rule54_markdown_with_content_and_native_with_template(client: SimClient) -> None:
    (await client.send_c2c("u1", msg_type=2, content="x", markdown={"content": "**x**"})).error(22006)
    body = {"msg_type": 2, "markdown": {"content": "x", "custom_template_id": "t1"}}
    (await client.post("/v2/users/u1/messages", body)).error(50057)
    (await client.post("/v2/users/u1/messages", {"msg_type": 2, "markdown": {"content": "**ok**"}})).ok()
    await client.settings(markdown_allowed=False)
    (await client.post("/v2/groups/g1/messages", {"msg_type": 2, "markdown": {"content": "x"}})).error(304036)


def _button(button_id: str) -> dict[str, Any]:
    return {
        "id": button_id,
        "render_data": {"label": button_id, "visited_label": button_id, "style": 1},
        "action": {"type": 1, "permission": {"type": 2}, "data": button_id, "unsupport_tips": "x"},
    }


async def test_rule55_keyboard_at_most_5_rows_of_5_buttons(client: SimClient) -> None:
    def rows(count: int, width: int) -> dict[str, Any]:
        return {
            "content": {
                "rows": [{"buttons": [_button(f"{r}-{i}") for i in range(width)]} for r in range(count)]
            }
        }

    markdown = {"msg_type": 2, "content": None, "markdown": {"content": "pick"}}
    (await client.send_c2c("u1", **markdown, keyboard=rows(5, 5))).ok()
    (await client.send_c2c("u1", **markdown, keyboard=rows(6, 1))).error(40034029)
    (await client.send_c2c("u1", **markdown, keyboard=rows(1, 6))).error(40034029)


async def test_rule57_input_notify_only_c2c_and_seconds_in_range(client: SimClient) -> None:
    for second in (0, 61):
        body = {"msg_type": 6, "input_notify": {"input_type": 1, "input_second": second}}
        (await client.post("/v2/users/u1/messages", body)).error(50059)
    body = {"msg_type": 6, "input_notify": {"input_type": 1, "input_second": 60}}
    (await client.post("/v2/users/u1/messages", body)).ok()


async def test_rule58_group_url_check_is_off_by_default(client: SimClient) -> None:
    (await client.send_group("g1", content="see https://example.com")).ok()
    await client.settings(group_url_check=True)
    (await client.send_group("g1", content="see https://example.com")).error(40054010)
    (await client.send_c2c("u1", content="see https://example.com")).ok()


async def test_rule59_empty_message(client: SimClient) -> None:
    (await client.post("/v2/users/u1/messages", {"msg_type": 0})).error(50006)
    (await client.post("/v2/groups/g1/messages", {"msg_type": 0, "content": "  "})).error(50006)


async def test_rule60_v2_send_answer_and_unique_ids(client: SimClient) -> None:
    ids = set()
    for _ in range(3):
        body = (await client.send_group("g1")).ok()
        assert set(body) == {"id", "timestamp", "ext_info"} and body["timestamp"].endswith("+08:00")
        ids.add(body["id"])
    assert len(ids) == 3


async def test_rule61_guild_send_answers_a_full_message_by_the_bot(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False)
    await client.post("/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a", "content": "hi"})
    message = (await client.post("/channels/c1/messages", {"content": "hello"})).ok()
    assert message["author"]["bot"] is True
    assert (message["channel_id"], message["guild_id"], message["content"]) == ("c1", "G1", "hello")
    assert message["id"] and message["timestamp"].endswith("+08:00")


async def test_rule76_recall_own_message_within_two_minutes(client: SimClient) -> None:
    sent = (await client.send_c2c("u1")).ok()
    late = (await client.send_c2c("u1")).ok()
    recalled = await client.request("DELETE", f"/v2/users/u1/messages/{sent['id']}")
    assert (recalled.status, recalled.body) == (200, None)
    await client.advance(121)
    (await client.request("DELETE", f"/v2/users/u1/messages/{late['id']}")).error(40064004)
    (await client.request("DELETE", "/v2/users/u1/messages/ROBOT1.0_unknown")).error(40061002)
    member = await client.member_says("g1")
    (await client.request("DELETE", f"/v2/groups/g1/messages/{member['msg_id']}")).error(40062003)
    await client.settings(bot_is_group_admin=True)
    assert (await client.request("DELETE", f"/v2/groups/g1/messages/{member['msg_id']}")).status == 200


async def test_rule77_interaction_answered_once(client: SimClient) -> None:
    await client.event(
        "INTERACTION_CREATE", {"id": "act-1", "type": 11, "scene": "group", "group_openid": "g1"}
    )
    answer = await client.request("PUT", "/interactions/act-1", {"code": 0})
    assert (answer.status, answer.body) == (204, None)
    (await client.request("PUT", "/interactions/act-1", {"code": 0})).error(630002)
    (await client.request("PUT", "/interactions/unknown", {"code": 0})).error(630001)
    (await client.request("PUT", "/interactions/act-1", {"code": 9})).error(12002)


async def test_endpoint_rate_limit_answers_429_50002_and_can_be_switched_off(client: SimClient) -> None:
    await client.settings(endpoint_qps={"group_messages": 2})
    (await client.send_group("g1")).ok()
    (await client.send_group("g2")).ok()
    (await client.send_group("g3")).error(50002, status=429)
    await client.settings(rate_limits=False)
    (await client.send_group("g3")).ok()


async def test_a_body_that_is_not_json_is_a_clear_12002(client: SimClient) -> None:
    token = await client.fetch_token()
    async with client.session.post(
        client.sim.base_url + "/v2/users/u1/messages",
        data=b"{not json",
        headers={"Authorization": f"QQBot {token}", "Content-Type": "application/json"},
    ) as response:
        body = await response.json()
    assert (response.status, body["code"], body["message"]) == (400, 12002, "请求体不是合法的JSON")


async def test_rule62_message_reference_to_a_foreign_refidx(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    ref = client.sim.state.bus.history[-1].d["message_scene"]["ext"][0].removeprefix("msg_idx=")
    foreign = {"message_id": "REFIDX_unknown"}
    (await client.send_c2c("u1", message_reference=foreign)).ok()  # ignored by default
    await client.settings(reference_check="reject")
    (await client.send_c2c("u1", message_reference=foreign)).error(12002)
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], message_reference={"message_id": ref})).ok()


async def test_guild_message_can_be_fetched_by_id(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False)
    inbound = (
        await client.post("/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a", "content": "hi"})
    ).ok()
    sent = (await client.post("/channels/c1/messages", {"content": "yo", "msg_id": inbound["msg_id"]})).ok()
    for message_id in (inbound["msg_id"], sent["id"]):
        assert (await client.get(f"/channels/c1/messages/{message_id}")).ok()["message"]["id"] == message_id
    (await client.get(f"/channels/c2/messages/{sent['id']}")).error(306004)


async def test_guild_send_as_multipart_with_a_file_image(client: SimClient) -> None:
    """§5.3: guild sends may be multipart; objects are JSON strings, `file_image` is the raw file."""
    await client.settings(require_session_for_guild=False)
    inbound = (
        await client.post("/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a", "content": "hi"})
    ).ok()
    token = await client.fetch_token()
    headers = {"Authorization": f"QQBot {token}"}

    def form(**fields: str) -> aiohttp.FormData:
        data = aiohttp.FormData()
        for key, value in fields.items():
            data.add_field(key, value)
        data.add_field("file_image", b"\x89PNG" + b"0" * 64, filename="cat.png", content_type="image/png")
        return data

    url = client.sim.base_url + "/channels/c1/messages"
    async with client.session.post(
        url, data=form(content="a cat", msg_id=inbound["msg_id"]), headers=headers
    ) as response:
        message = await response.json()
    assert response.status == 200 and message["content"] == "a cat" and message["author"]["bot"] is True
    bad = form(message_reference="{not json")
    async with client.session.post(url, data=bad, headers=headers) as response:
        assert (response.status, (await response.json())["code"]) == (400, 12002)
    # v2 endpoints take JSON only.
    async with client.session.post(
        client.sim.base_url + "/v2/users/u1/messages", data=form(content="x"), headers=headers
    ) as response:
        assert (response.status, (await response.json())["code"]) == (400, 12002)
