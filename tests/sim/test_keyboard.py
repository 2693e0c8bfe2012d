"""Message buttons in the emulator (rules 55a-55k): what a keyboard must look like, where it is
shown, and a user's click: the INTERACTION_CREATE it becomes and the answer the bot gives it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


def button(button_id: str, action_type: int = 1, **permission: Any) -> dict[str, Any]:
    return {
        "id": button_id,
        "render_data": {"label": f"label {button_id}", "visited_label": f"done {button_id}", "style": 1},
        "action": {
            "type": action_type,
            "permission": permission or {"type": 2},
            "data": f"data {button_id}",
            "unsupport_tips": "update QQ",
        },
    }


def keyboard(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"rows": [{"buttons": list(buttons)}]}}


async def send(client: SimClient, scene: str, target: str, board: Any, msg_type: int = 2) -> Any:
    body: dict[str, Any] = {"msg_type": msg_type, "keyboard": board}
    if msg_type == 2:
        body["markdown"] = {"content": "choose"}
    else:
        body["content"] = "choose"
    path = f"/v2/users/{target}/messages" if scene == "c2c" else f"/v2/groups/{target}/messages"
    return await client.post(path, body)


def broken(change: str) -> dict[str, Any]:
    b = button("1")
    match change:
        case "no render_data":
            del b["render_data"]
        case "no label":
            b["render_data"]["label"] = ""
        case "no visited_label":
            del b["render_data"]["visited_label"]
        case "action type 3":
            b["action"]["type"] = 3
        case "permission type 9":
            b["action"]["permission"] = {"type": 9}
        case "roles outside a guild":
            b["action"]["permission"] = {"type": 3, "specify_role_ids": ["1"]}
        case "user ids not strings":
            b["action"]["permission"] = {"type": 0, "specify_user_ids": [1]}
        case "no data":
            del b["action"]["data"]
        case "no unsupport_tips":
            del b["action"]["unsupport_tips"]
        case "id not a string":
            b["id"] = 1
    return b


@pytest.mark.parametrize(
    "change",
    [
        "no render_data",
        "no label",
        "no visited_label",
        "action type 3",
        "permission type 9",
        "roles outside a guild",
        "user ids not strings",
        "no data",
        "no unsupport_tips",
        "id not a string",
    ],
)
async def test_rule55b_a_button_missing_a_required_field_is_a_content_error(
    client: SimClient, change: str
) -> None:
    (await send(client, "c2c", "u1", keyboard(broken(change)))).error(304040)


async def test_rule55_shape_limits_and_ids(client: SimClient) -> None:
    (await send(client, "c2c", "u1", "not an object")).error(304039)
    (await send(client, "c2c", "u1", {"content": {}})).error(304039)
    (await send(client, "c2c", "u1", {"id": "t1", "content": {"rows": []}})).error(304039)
    (await send(client, "c2c", "u1", {"content": {"rows": []}})).error(304040)
    (await send(client, "c2c", "u1", {"content": {"rows": [{"buttons": []}]}})).error(304040)
    (await send(client, "c2c", "u1", keyboard(button("1"), button("1")))).error(304040)  # ids unique
    six = [button(str(i)) for i in range(6)]
    (await send(client, "c2c", "u1", keyboard(*six))).error(40034029)
    (await send(client, "c2c", "u1", keyboard(*six[:5]))).ok()


async def test_rule55c_style_is_0_or_1_and_a_group_says_so_with_its_own_code(client: SimClient) -> None:
    b = button("1")
    b["render_data"]["style"] = 7
    (await send(client, "group", "g1", keyboard(b))).error(305007)
    (await send(client, "c2c", "u1", keyboard(b))).error(304040)
    b["render_data"]["style"] = 0
    (await send(client, "group", "g1", keyboard(b))).ok()


async def test_rule55d_custom_keyboards_and_templates_as_the_bot_was_granted(client: SimClient) -> None:
    (await send(client, "c2c", "u1", {"id": "any-template"})).ok()  # no template list: any id
    await client.settings(keyboard_templates=["t1"])
    (await send(client, "c2c", "u1", {"id": "t2"})).error(304038)
    (await send(client, "c2c", "u1", {"id": "t1"})).ok()
    await client.settings(custom_keyboard_allowed=False)
    answer = await send(client, "c2c", "u1", keyboard(button("1")))
    answer.error(304057)
    assert answer.body["message"] == "not allowd custom keyborad"  # the platform's own spelling


async def click(client: SimClient, body: dict[str, Any]) -> Any:
    return await client.post("/_sim/interactions", body)


async def test_rule55h_buttons_show_only_under_markdown(client: SimClient) -> None:
    plain = (await send(client, "c2c", "u1", keyboard(button("1")), msg_type=0)).ok()
    shown = (await send(client, "c2c", "u1", keyboard(button("1")))).ok()
    entries = (await client.get("/_sim/transcript?scene=c2c&target=u1")).ok()["entries"]
    assert [e.get("keyboard_shown") for e in entries] == [False, True]
    refused = await click(client, {"message_id": plain["id"], "button_id": "1"})
    assert refused.status == 400 and "markdown" in refused.body["error"]
    assert (await click(client, {"message_id": shown["id"], "button_id": "1"})).status == 200


async def test_rule55i_a_click_becomes_interaction_create_and_its_answer_is_recorded(
    client: SimClient,
) -> None:
    sent = (await send(client, "group", "g1", keyboard(button("a"), button("b")))).ok()
    clicked = (await click(client, {"message_id": sent["id"], "button_id": "b", "user": "m7"})).ok()
    entries = (await client.get("/_sim/transcript?scene=group&target=g1")).ok()["entries"]
    pushed = next(e for e in entries if e.get("t") == "INTERACTION_CREATE")
    d = pushed["d"]
    assert pushed["event_id"] == clicked["event_id"] and d["id"] == clicked["interaction_id"]
    assert (d["type"], d["scene"], d["chat_type"], d["version"]) == (11, "group", 1, 1)
    assert (d["group_openid"], d["group_member_openid"]) == ("g1", "m7")
    assert d["data"] == {"type": 11, "resolved": {"button_data": "data b", "button_id": "b"}}
    state = (await client.get(f"/_sim/interactions/{d['id']}")).ok()
    assert (state["code"], state["button_id"], state["user"]) == (None, "b", "m7")

    answer = await client.request("PUT", f"/interactions/{d['id']}", {"code": 4})
    assert answer.status == 204
    assert (await client.get(f"/_sim/interactions/{d['id']}")).ok()["code"] == 4
    entries = (await client.get("/_sim/transcript?scene=group&target=g1")).ok()["entries"]
    assert [(e["ack"], e["code"]) for e in entries if "ack" in e] == [(d["id"], 4)]
    (await client.request("PUT", f"/interactions/{d['id']}", {"code": 0})).error(630002)  # once only


async def test_rule55j_c2c_clicks_carry_the_user_and_the_event_id_answers_once(client: SimClient) -> None:
    sent = (await send(client, "c2c", "u1", keyboard(button("1")))).ok()
    clicked = (await click(client, {"message_id": sent["id"], "button_id": "1"})).ok()
    entries = (await client.get("/_sim/transcript?scene=c2c&target=u1")).ok()["entries"]
    d = next(e for e in entries if e.get("t") == "INTERACTION_CREATE")["d"]
    assert (d["scene"], d["chat_type"], d["user_openid"]) == ("c2c", 2, "u1")
    assert d["data"]["resolved"]["user_id"] == "u1"
    # The envelope id is an event anchor for a passive reply (rule 39).
    (await client.send_c2c("u1", event_id=clicked["event_id"])).ok()


async def test_rule55k_the_client_only_lets_permitted_users_click_callbacks(client: SimClient) -> None:
    only = button("1", type=0, specify_user_ids=["m1"])
    admins = button("2", type=1)
    link = button("3", action_type=0)
    command = button("4", action_type=2)
    sent = (await send(client, "group", "g1", keyboard(only, admins, link, command))).ok()

    def body(button_id: str, user: str, role: str | None = None) -> dict[str, Any]:
        found = {"message_id": sent["id"], "button_id": button_id, "user": user}
        return {**found, "member_role": role} if role else found

    assert (await click(client, body("1", "m2"))).status == 400
    assert (await click(client, body("1", "m1"))).status == 200
    assert (await click(client, body("2", "m2", "member"))).status == 400
    assert (await click(client, body("2", "m2", "admin"))).status == 200
    for button_id in ("3", "4"):
        refused = await click(client, body(button_id, "m1"))
        assert refused.status == 400, refused.body
    unknown = await click(client, {"message_id": sent["id"], "button_id": "9", "user": "m1"})
    assert unknown.status == 400 and "'9'" in unknown.body["error"]
    nothing = await click(client, {"message_id": "nope", "button_id": "1"})
    assert nothing.status == 400
