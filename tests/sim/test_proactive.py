"""Proactive sends: permission, platform eras, rate limits, is_wakeup, guild quotas (rules 41-52, 78)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


async def test_rule41_permission_follows_reject_and_receive_events(client: SimClient) -> None:
    (await client.send_c2c("u1")).ok()
    await client.event("C2C_MSG_REJECT", {"openid": "u1", "timestamp": 1})
    (await client.send_c2c("u1")).error(40034105)
    inbound = await client.user_says("u1")
    (await client.send_c2c("u1", msg_id=inbound["msg_id"])).ok()  # passive is unaffected
    await client.event("C2C_MSG_RECEIVE", {"openid": "u1", "timestamp": 2})
    (await client.send_c2c("u1")).ok()
    await client.event("GROUP_MSG_REJECT", {"group_openid": "g1", "op_member_openid": "m1"})
    (await client.send_group("g1")).error(40034105)
    assert (await client.get("/v2/groups/g1/bot_state")).ok()["allow_proactive_msg"] is False
    await client.settings(no_permission_code=40054013)
    (await client.send_group("g1")).error(40054013)


async def test_rule42_bot_level_c2c_rate(client: SimClient) -> None:
    for i in range(10):
        (await client.send_c2c(f"user{i}")).ok()
    (await client.send_c2c("user10")).error(40034100)
    await client.advance(1.01)
    (await client.send_c2c("user10")).ok()


async def test_rule43_per_user_minute_and_day(client: SimClient) -> None:
    for _ in range(2):
        for _ in range(10):
            (await client.send_c2c("u1")).ok()
        await client.advance(1.01)
    (await client.send_c2c("u1")).error(40034100)
    (await client.send_c2c("u2")).ok()
    await client.advance(60)
    (await client.send_c2c("u1")).ok()
    await client.settings(c2c_per_user_per_day=21)
    await client.advance(60)
    (await client.send_c2c("u1")).error(40034100)
    await client.advance(86_400)
    (await client.send_c2c("u1")).ok()


async def test_rule44_group_bot_rate_per_group_rate_and_day(client: SimClient) -> None:
    await client.settings(group_bot_per_minute=3, group_per_group_per_minute=2, group_per_group_per_day=3)
    (await client.send_group("g1")).ok()
    (await client.send_group("g1")).ok()
    (await client.send_group("g1")).error(40034100)  # 20/min per group (lowered to 2)
    (await client.send_group("g2")).ok()
    (await client.send_group("g3")).error(40034100)  # bot level 60/min (lowered to 3)
    await client.advance(61)
    (await client.send_group("g1")).ok()
    (await client.send_group("g1")).error(40034100)  # 1000/day per group (lowered to 3)


async def test_rule45_2025_mode_refuses_every_proactive_send(client: SimClient) -> None:
    await client.settings(mode="2025")
    (await client.send_c2c("u1")).error(40034105)
    (await client.send_group("g1")).error(40034105)
    inbound = await client.user_says("u1")
    (await client.send_c2c("u1", msg_id=inbound["msg_id"])).ok()


async def test_rule46_2023_mode_four_per_month(client: SimClient) -> None:
    await client.settings(mode="2023")
    for _ in range(4):
        (await client.send_group("g1")).ok()
    (await client.send_group("g1")).error(22009)
    (await client.send_group("g2")).ok()
    await client.advance(32 * 86_400)
    (await client.send_group("g1")).ok()


async def test_rule47_is_wakeup_once_per_period_within_30_days(client: SimClient) -> None:
    (await client.send_c2c("u1", is_wakeup=True)).error(40034123)
    await client.user_says("u1")
    (await client.send_c2c("u1", is_wakeup=True)).ok()
    (await client.send_c2c("u1", is_wakeup=True)).error(40034122)
    await client.advance(2 * 86_400)
    (await client.send_c2c("u1", is_wakeup=True)).ok()
    await client.advance(29 * 86_400)
    (await client.send_c2c("u1", is_wakeup=True)).error(40034123)
    (await client.send_group("g1", is_wakeup=True)).error(40034123)


PNG = "iVBORw0KGgoAAAAAAAAAAA=="  # the first bytes of a PNG: what the emulator checks an image by


async def test_rule48_passive_replies_do_not_use_proactive_quota_but_srv_send_msg_does(
    client: SimClient,
) -> None:
    await client.settings(c2c_per_user_per_minute=1)
    inbound = await client.user_says("u1")
    for seq in range(1, 4):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()
    upload = await client.post("/v2/users/u1/files", {"file_type": 1, "file_data": PNG, "srv_send_msg": True})
    assert upload.ok()["id"].startswith("ROBOT1.0_")
    (await client.send_c2c("u1")).error(40034100)


async def _guild(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False)
    for channel in ("c1", "c2", "c3"):
        await client.post(
            f"/_sim/channels/{channel}/messages", {"guild_id": "G1", "author_id": "a", "content": "x"}
        )


async def test_rule49_guild_channel_daily_quota_channel_count_and_rate(client: SimClient) -> None:
    await _guild(client)
    await client.settings(guild_channel_per_day=3)
    for _ in range(3):
        (await client.post("/channels/c1/messages", {"content": "push"})).ok()
    (await client.post("/channels/c1/messages", {"content": "push"})).error(304045)
    (await client.post("/channels/c2/messages", {"content": "push"})).ok()
    (await client.post("/channels/c3/messages", {"content": "push"})).error(304047)
    await client.advance(86_400)
    inbound = (await client.post("/_sim/channels/c3/messages", {"guild_id": "G1", "author_id": "a"})).ok()
    for _ in range(5):
        (await client.post("/channels/c3/messages", {"content": "r", "msg_id": inbound["msg_id"]})).ok()
    (await client.post("/channels/c3/messages", {"content": "r", "msg_id": inbound["msg_id"]})).error(20028)


async def test_rule50_guild_dm_daily_quotas(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False, dm_total_per_day=3)
    dms = []
    for user in ("a", "b"):
        dm = await client.post("/users/@me/dms", {"recipient_id": user, "source_guild_id": "G1"})
        dms.append(dm.ok()["guild_id"])
    for _ in range(2):
        (await client.post(f"/dms/{dms[0]}/messages", {"content": "hi"})).ok()
    (await client.post(f"/dms/{dms[0]}/messages", {"content": "hi"})).error(304049)
    (await client.post(f"/dms/{dms[1]}/messages", {"content": "hi"})).ok()
    (await client.post(f"/dms/{dms[1]}/messages", {"content": "hi"})).error(304050)


async def test_rule51_guild_sends_need_a_live_gateway_session(client: SimClient) -> None:
    (await client.post("/channels/c1/messages", {"content": "hi"})).error(304018)
    (await client.post("/dms/D1/messages", {"content": "hi"})).error(304018)


async def test_rule52_quiet_hours(client: SimClient) -> None:
    await client.settings(require_session_for_guild=False, quiet_hours=[0, 24])
    (await client.post("/dms/D1/messages", {"content": "hi"})).error(304022)
    inbound = (await client.post("/_sim/dms/D1/messages", {"author_id": "a", "content": "x"})).ok()
    (await client.post("/dms/D1/messages", {"content": "hi", "msg_id": inbound["msg_id"]})).ok()


async def test_rule78_audit_hold_then_verdict_event(client: SimClient) -> None:
    await _guild(client)
    await client.settings(audit="pass")
    held = await client.post("/channels/c1/messages", {"content": "push"})
    held.error(304023, status=202)
    audit_id = held.body["data"]["message_audit"]["audit_id"]
    for _ in range(100):  # a ceiling for the verdict to be published, not a timing assertion
        entries = (await client.get("/_sim/transcript?scene=channel&target=c1")).ok()["entries"]
        verdicts = [e for e in entries if e.get("t") == "MESSAGE_AUDIT_PASS"]
        if verdicts:
            break
        await asyncio.sleep(0.05)
    assert verdicts[0]["d"]["audit_id"] == audit_id
    assert verdicts[0]["d"]["message_id"]


async def test_rule41_permission_can_default_to_refused_until_a_receive_event(client: SimClient) -> None:
    await client.settings(proactive_default_allowed=False)
    (await client.send_c2c("u1")).error(40034105)
    await client.event("C2C_MSG_RECEIVE", {"openid": "u1"})
    (await client.send_c2c("u1")).ok()
    assert (await client.get("/v2/groups/g1/bot_state")).ok()["allow_proactive_msg"] is False


async def test_rule47_is_wakeup_stream_skips_the_anchor_check(client: SimClient) -> None:
    await client.user_says("u1")
    body = {"is_wakeup": True, "msg_id": "ignored", "index": 0, "input_state": 10, "content_raw": "come back"}
    (await client.post("/v2/users/u1/stream_messages", body)).ok()
    (await client.post("/v2/users/u1/stream_messages", body)).error(40034122)
