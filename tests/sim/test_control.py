"""The control API under /_sim/: injection, clock, transcript, request log, faults, settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


async def test_injected_c2c_message_has_the_platform_payload_shape(client: SimClient) -> None:
    injected = await client.user_says("u1", "hello")
    dispatch = client.sim.state.bus.history[-1]
    assert (dispatch.t, dispatch.id) == ("C2C_MESSAGE_CREATE", injected["event_id"])
    assert dispatch.id.startswith("C2C_MESSAGE_CREATE:")
    d = dispatch.d
    assert d["id"] == injected["msg_id"] and d["id"].startswith("ROBOT1.0_")
    assert d["author"]["user_openid"] == d["author"]["id"] == "u1"
    assert d["content"] == "hello" and d["timestamp"].endswith("+08:00")
    assert d["message_scene"]["ext"][0].startswith("msg_idx=REFIDX_")


async def test_injected_group_guild_and_dm_messages(client: SimClient) -> None:
    history = client.sim.state.bus.history
    await client.member_says("g1", "m1", "/cmd", at_bot=True)
    assert (history[-1].t, history[-1].d["content"], history[-1].d["group_openid"]) == (
        "GROUP_AT_MESSAGE_CREATE",
        " /cmd",
        "g1",
    )
    await client.member_says("g1", "m1", "chatter", at_bot=False)
    assert (history[-1].t, history[-1].d["content"]) == ("GROUP_MESSAGE_CREATE", "chatter")
    await client.post("/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a1", "content": "hi"})
    assert history[-1].t == "AT_MESSAGE_CREATE" and history[-1].d["guild_id"] == "G1"
    await client.post("/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a1", "at_bot": False})
    assert history[-1].t == "MESSAGE_CREATE"
    await client.post("/_sim/dms/D1/messages", {"author_id": "a1", "content": "psst"})
    assert history[-1].t == "DIRECT_MESSAGE_CREATE" and history[-1].d["guild_id"] == "D1"
    assert (await client.post("/_sim/groups/g1/messages", {"content": "no member"})).status == 400


async def test_transcript_shows_inbound_and_outbound_with_codes(client: SimClient) -> None:
    inbound = await client.user_says("u1", "q")
    sent = (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=1, content="a")).ok()
    await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=1, content="again")
    entries = (await client.get("/_sim/transcript?scene=c2c&target=u1")).ok()["entries"]
    assert [(e["direction"], e.get("content")) for e in entries] == [
        ("in", "q"),
        ("out", "a"),
        ("out", "again"),
    ]
    assert entries[0]["msg_id"] == inbound["msg_id"] and entries[0]["event_id"] == inbound["event_id"]
    assert (entries[1]["status"], entries[1]["id"], entries[1]["msg_seq"]) == (200, sent["id"], 1)
    assert (entries[2]["status"], entries[2]["code"]) == (400, 40054005)
    assert (await client.get("/_sim/transcript?scene=nope&target=u1")).status == 400
    conversations = (await client.get("/_sim/conversations")).ok()["conversations"]
    assert conversations[0]["scene"] == "c2c" and conversations[0]["target"] == "u1"


async def test_request_log_since_and_clear(client: SimClient) -> None:
    await client.get("/users/@me")
    await client.send_c2c("u1", msg_id="bogus")
    log = (await client.get("/_sim/requests")).ok()
    rows = [(r["method"], r["path"], r["status"], r["code"]) for r in log["requests"]]
    assert rows[-2:] == [("GET", "/users/@me", 200, None), ("POST", "/v2/users/u1/messages", 400, 40034024)]
    since = log["requests"][-1]["n"]
    await client.get("/gateway")
    assert [r["path"] for r in (await client.get(f"/_sim/requests?since={since}")).ok()["requests"]] == [
        "/gateway"
    ]
    await client.request("DELETE", "/_sim/requests")
    assert (await client.get("/_sim/requests")).ok()["requests"] == []


async def test_fail_next_fault(client: SimClient) -> None:
    await client.get("/users/@me")
    fault = {"kind": "fail_next", "count": 2, "status": 500, "code": 50055001}
    assert (await client.post("/_sim/faults", fault)).ok()["pending"] == 2
    (await client.send_c2c("u1")).error(50055001, status=500)
    (await client.get("/users/@me")).error(50055001, status=500)
    (await client.send_c2c("u1")).ok()


async def test_wire_faults_without_sessions_and_unknown_kind(client: SimClient) -> None:
    assert (await client.post("/_sim/faults", {"kind": "close", "code": 4009})).ok()["closed"] == 0
    assert (await client.post("/_sim/faults", {"kind": "reconnect"})).ok()["sessions"] == 0
    bad = await client.post("/_sim/faults", {"kind": "explode"})
    assert bad.status == 400 and "explode" in bad.body["error"]


async def test_settings_partial_update_and_unknown_field(client: SimClient) -> None:
    await client.settings(c2c_reply_limit=5, mode="2023")
    current = (await client.get("/_sim/settings")).ok()
    assert (current["c2c_reply_limit"], current["mode"], current["group_reply_limit"]) == (5, "2023", 5)
    unknown = await client.request("PUT", "/_sim/settings", {"c2c_reply_limt": 5})
    assert unknown.status == 400 and "c2c_reply_limt" in unknown.body["error"]
    invalid = await client.request("PUT", "/_sim/settings", {"mode": "1999"})
    assert invalid.status == 400 and "mode" in invalid.body["error"]


async def test_clock_and_reset(client: SimClient) -> None:
    before = (await client.get("/_sim/clock")).ok()
    await client.advance(3600)
    after = (await client.get("/_sim/clock")).ok()
    assert after["offset"] - before["offset"] == 3600
    assert (await client.post("/_sim/clock/advance", {"seconds": -1})).status == 400
    (await client.get("/users/@me")).ok()
    inbound = await client.user_says("u1")
    assert (await client.post("/_sim/reset")).ok() == {"reset": True}
    (await client.send_c2c("u1", msg_id=inbound["msg_id"])).error(40034024)  # the same token still works


async def test_a_hand_written_message_event_is_a_usable_anchor(client: SimClient) -> None:
    d = {"id": "ROBOT1.0_handmade", "group_openid": "g9", "author": {"id": "m1", "member_openid": "m1"}}
    await client.event("GROUP_AT_MESSAGE_CREATE", {**d, "content": " hi"})
    (await client.send_group("g9", msg_id="ROBOT1.0_handmade")).ok()
    (await client.send_group("g8", msg_id="ROBOT1.0_handmade")).error(40034024)


async def test_group_authors_and_the_bots_mention_carry_every_field_clients_require(
    client: SimClient,
) -> None:
    """NoneBot's QQ adapter requires `author.bot`, `author.member_role` and, in `mentions[]`,
    `member_openid` and `username` (a payload without them crashed it)."""
    await client.member_says("g1", "m1", "hi", at_bot=True)
    d = client.sim.state.bus.history[-1].d
    author = d["author"]
    assert (author["id"], author["member_openid"], author["bot"], author["member_role"]) == (
        "m1",
        "m1",
        False,
        "member",
    )
    assert isinstance(author["username"], str) and author["union_openid"]
    [mention] = d["mentions"]
    settings = client.sim.state.settings
    assert mention == {
        "scope": "single",
        "id": settings.bot_id,
        "member_openid": settings.bot_id,
        "username": settings.bot_name,
        "is_you": True,
        "bot": True,
    }
    assert d["group_id"] == d["group_openid"] == "g1" and d["message_type"] == 0
    # `member_role: null` leaves it out, as payloads before 2026 did.
    await client.post(
        "/_sim/groups/g1/messages", {"member_openid": "m2", "content": "x", "member_role": None}
    )
    assert "member_role" not in client.sim.state.bus.history[-1].d["author"]


async def test_events_built_from_fields_have_the_documented_shape(client: SimClient) -> None:
    now = int(client.sim.state.clock.time())
    answer = (await client.post("/_sim/events", {"t": "FRIEND_ADD", "fields": {"openid": "u9"}})).ok()
    assert answer["d"] == {"timestamp": now, "openid": "u9"}
    member = {"group_openid": "g9", "member_openid": "m9"}
    answer = (await client.post("/_sim/events", {"t": "GROUP_MEMBER_ADD", "fields": member})).ok()
    assert answer["d"] == {"timestamp": now, **member}
    reaction = {"user_id": "u", "guild_id": "G", "channel_id": "c", "message_id": "m", "emoji_id": "128"}
    answer = (await client.post("/_sim/events", {"t": "MESSAGE_REACTION_ADD", "fields": reaction})).ok()
    assert answer["d"] == {
        "user_id": "u",
        "guild_id": "G",
        "channel_id": "c",
        "target": {"id": "m", "type": 0},
        "emoji": {"id": "128", "type": 1},
    }
    # A recall of a message the emulator delivered names it as delivered.
    injected = (
        await client.post(
            "/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a1", "content": "oops"}
        )
    ).ok()
    fields = {"message_id": injected["msg_id"], "op_user_id": "admin"}
    answer = (await client.post("/_sim/events", {"t": "PUBLIC_MESSAGE_DELETE", "fields": fields})).ok()
    assert answer["d"]["message"]["channel_id"] == "c1" and answer["d"]["message"]["guild_id"] == "G1"
    assert answer["d"]["message"]["author"]["id"] == "a1" and answer["d"]["op_user"] == {"id": "admin"}
    transcript = (await client.get("/_sim/transcript?scene=channel&target=c1")).ok()
    assert transcript["entries"][-1]["t"] == "PUBLIC_MESSAGE_DELETE"


async def test_events_built_from_fields_name_what_is_missing(client: SimClient) -> None:
    answer = await client.post("/_sim/events", {"t": "GROUP_MEMBER_ADD", "fields": {"group_openid": "g"}})
    assert answer.status == 400 and "member_openid" in answer.body["error"]
    answer = await client.post("/_sim/events", {"t": "MESSAGE_DELETE", "fields": {"message_id": "unknown"}})
    assert answer.status == 400 and "channel_id" in answer.body["error"]
    answer = await client.post("/_sim/events", {"t": "READY", "fields": {}})
    assert answer.status == 400 and "'d'" in answer.body["error"]
    answer = await client.post("/_sim/events", {"t": "FRIEND_ADD", "fields": {"openid": "u"}, "d": {}})
    assert answer.status == 400
