"""Passive replies: msg_id and event_id anchors, windows, reply counts, msg_seq (rules 20-40, 79)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


async def test_rule20_a_msg_id_reply_is_passive_and_recorded_as_such(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    sent = (await client.send_c2c("u1", msg_id=inbound["msg_id"])).ok()
    entries = (await client.get("/_sim/transcript?scene=c2c&target=u1")).ok()["entries"]
    out = entries[-1]
    assert (out["direction"], out["kind"], out["id"], out["msg_id"]) == (
        "out",
        "passive",
        sent["id"],
        inbound["msg_id"],
    )


async def test_rule21_msg_id_and_event_id_together_or_with_is_wakeup_are_refused(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    event_id = await client.event("C2C_MSG_RECEIVE", {"openid": "u1", "timestamp": 1})
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], event_id=event_id)).error(12002)
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], is_wakeup=True)).error(12002)
    await client.settings(both_ids="event_id_wins")
    (await client.send_c2c("u1", msg_id="anything", event_id=event_id)).ok()


async def test_rule22_unknown_msg_id(client: SimClient) -> None:
    (await client.send_c2c("u1", msg_id="ROBOT1.0_made-up")).error(40034024)


async def test_rule23_stream_id_is_not_an_anchor(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    chunk = await client.post(
        "/v2/users/u1/stream_messages",
        {"msg_id": inbound["msg_id"], "msg_seq": 1, "index": 0, "input_state": 10, "content_raw": "x"},
    )
    (await client.send_c2c("u1", msg_id=chunk.ok()["id"])).error(40034024)


async def test_rule24_c2c_msg_id_of_another_user(client: SimClient) -> None:
    a = await client.user_says("alice")
    (await client.send_c2c("bob", msg_id=a["msg_id"])).error(40034024)


async def test_rule25_group_msg_id_any_member_same_group_only(client: SimClient) -> None:
    at = await client.member_says("g1", "m1")
    plain = await client.member_says("g1", "m2", at_bot=False)
    (await client.send_group("g1", msg_id=at["msg_id"])).ok()
    (await client.send_group("g1", msg_id=plain["msg_id"])).ok()
    (await client.send_group("g2", msg_id=at["msg_id"], msg_seq=2)).error(40034024)
    c2c = await client.user_says("m1")
    (await client.send_group("g1", msg_id=c2c["msg_id"])).error(40034024)
    (await client.send_c2c("m1", msg_id=at["msg_id"], msg_seq=3)).error(40034024)


async def test_rule26_guild_own_message_and_other_channel(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False)
    inbound = (
        await client.post(
            "/_sim/channels/c1/messages", {"guild_id": "G1", "author_id": "a1", "content": "hi"}
        )
    ).ok()
    sent = (await client.post("/channels/c1/messages", {"content": "yo", "msg_id": inbound["msg_id"]})).ok()
    (await client.post("/channels/c1/messages", {"content": "yo", "msg_id": sent["id"]})).error(50045)
    (await client.post("/channels/c2/messages", {"content": "yo", "msg_id": inbound["msg_id"]})).error(304026)


async def test_rule27_c2c_window_is_60_minutes(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    await client.advance(3590)
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=1)).ok()
    await client.advance(20)
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=2)).error(40034005)


async def test_rule28_group_window_is_5_minutes(client: SimClient) -> None:
    inbound = await client.member_says("g1")
    await client.advance(301)
    (await client.send_group("g1", msg_id=inbound["msg_id"])).error(40034005)


async def test_rule29_guild_window_is_5_minutes(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False)
    inbound = (await client.post("/_sim/dms/D1/messages", {"author_id": "a1", "content": "hi"})).ok()
    await client.advance(301)
    (await client.post("/dms/D1/messages", {"content": "yo", "msg_id": inbound["msg_id"]})).error(304027)


async def test_rule30_c2c_fifth_reply_is_refused(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    for seq in range(1, 5):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=5)).error(40034128)


async def test_rule31_group_sixth_reply_is_refused(client: SimClient) -> None:
    inbound = await client.member_says("g1")
    for seq in range(1, 6):
        (await client.send_group("g1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()
    (await client.send_group("g1", msg_id=inbound["msg_id"], msg_seq=6)).error(40034128)


async def test_rule32_input_notify_counts_toward_the_limit(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    notify = {"msg_type": 6, "input_notify": {"input_type": 1, "input_second": 10}}
    for seq in range(1, 5):
        (
            await client.post(
                "/v2/users/u1/messages", {**notify, "msg_id": inbound["msg_id"], "msg_seq": seq}
            )
        ).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=5)).error(40034128)


async def test_rule33_a_stream_counts_as_one_reply(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (
        await client.post(
            "/v2/users/u1/stream_messages",
            {"msg_id": inbound["msg_id"], "msg_seq": 1, "index": 0, "input_state": 1, "content_raw": "a"},
        )
    ).ok()
    for index in range(1, 8):
        (
            await client.post(
                "/v2/users/u1/stream_messages",
                {
                    "msg_id": inbound["msg_id"],
                    "msg_seq": 1,
                    "index": index,
                    "input_state": 1,
                    "content_raw": "b",
                    "stream_msg_id": first["id"],
                },
            )
        ).ok()
    for seq in range(2, 5):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=9)).error(40034128)


async def test_rule34_failed_sends_use_neither_the_count_nor_the_msg_seq(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    for _ in range(6):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=1, msg_type=0, content="")).error(
            50006
        )
    for seq in range(1, 5):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()


async def test_rule35_same_msg_id_and_msg_seq_is_deduplicated(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=7)).ok()
    duplicate = await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=7)
    duplicate.error(40054005)
    assert duplicate.body["message"] == "消息被去重，请检查请求msgseq"
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=8)).ok()


async def test_rule36_missing_msg_seq_is_1_and_order_is_free(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    (await client.post("/v2/users/u1/messages", {"content": "x", "msg_id": inbound["msg_id"]})).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=1)).error(40054005)
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=9000)).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=3)).ok()


async def test_rule37_msg_seq_is_ignored_for_proactive_sends(client: SimClient) -> None:
    for _ in range(3):
        (await client.send_c2c("u1", msg_seq=1)).ok()


async def test_rule38_event_id_unknown_and_expired(client: SimClient) -> None:
    (await client.send_c2c("u1", event_id="C2C_MSG_RECEIVE:nope")).error(40034025)
    event_id = await client.event("GROUP_ADD_ROBOT", {"group_openid": "g1", "op_member_openid": "m1"})
    (await client.send_group("g1", event_id=event_id, msg_seq=1)).ok()
    await client.advance(301)
    (await client.send_group("g1", event_id=event_id, msg_seq=2)).error(40034026)


async def test_rule39_replyable_event_types(client: SimClient) -> None:
    c2c_ok = [
        await client.event("C2C_MSG_RECEIVE", {"openid": "u1"}),
        await client.event("FRIEND_ADD", {"openid": "u1"}),
        await client.event(
            "INTERACTION_CREATE", {"id": "i1", "scene": "c2c", "chat_type": 2, "user_openid": "u1"}
        ),
    ]
    for event_id in c2c_ok:
        (await client.send_c2c("u1", event_id=event_id)).ok()
    for t in ("FRIEND_DEL", "C2C_MSG_REJECT"):
        (await client.send_c2c("u1", event_id=await client.event(t, {"openid": "u1"}))).error(40034027)
    message = await client.user_says("u1")
    (await client.send_c2c("u1", event_id=message["event_id"])).error(40034027)
    (
        await client.send_group(
            "g1", event_id=await client.event("GROUP_MSG_RECEIVE", {"group_openid": "g1"})
        )
    ).ok()
    (
        await client.send_group("g1", event_id=await client.event("GROUP_DEL_ROBOT", {"group_openid": "g1"}))
    ).error(40034027)
    await client.settings(friend_add_replyable=False)
    (await client.send_c2c("u1", event_id=await client.event("FRIEND_ADD", {"openid": "u1"}))).error(40034027)


async def test_rule40_event_id_from_another_scene(client: SimClient) -> None:
    c2c_event = await client.event("C2C_MSG_RECEIVE", {"openid": "u1"})
    (await client.send_group("g1", event_id=c2c_event)).error(40034025)
    group_event = await client.event("GROUP_MSG_RECEIVE", {"group_openid": "g1"})
    (await client.send_c2c("u1", event_id=group_event)).error(40034025)


async def test_rule79_redelivered_message_shares_one_reply_counter(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    assert (await client.post("/_sim/faults", {"kind": "redeliver_last"})).ok()["event_id"] == inbound[
        "event_id"
    ]
    for seq in range(1, 5):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=5)).error(40034128)
