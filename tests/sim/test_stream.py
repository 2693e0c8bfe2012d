"""C2C streaming: /stream_messages and the legacy `stream` field (rules 63-68)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.sim.conftest import Answer, SimClient


async def _chunk(client: SimClient, **body: Any) -> Answer:
    return await client.post(
        "/v2/users/u1/stream_messages", {"input_state": 1, "content_type": "markdown", **body}
    )


async def test_rule63_no_streaming_in_groups(client: SimClient) -> None:
    inbound = await client.member_says("g1")
    body = {"msg_id": inbound["msg_id"], "index": 0, "input_state": 1, "content_raw": "x"}
    (await client.post("/v2/groups/g1/stream_messages", body)).error(10000, status=404)
    (await client.send_group("g1", msg_id=inbound["msg_id"], stream={"state": 1, "index": 0})).error(12002)


async def test_rule64_first_chunk_gives_the_id_later_chunks_continue_it(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (await _chunk(client, msg_id=inbound["msg_id"], msg_seq=1, index=0, content_raw="Hel")).ok()
    assert {"id", "timestamp", "ext_info", "remain_msg_len"} <= set(first)
    common = {"msg_id": inbound["msg_id"], "msg_seq": 1, "stream_msg_id": first["id"]}
    second = (await _chunk(client, **common, index=1, content_raw="lo")).ok()
    assert second["id"] == first["id"]
    (await _chunk(client, **common, index=3, content_raw="!")).error(12002)
    (await _chunk(client, stream_msg_id="ROBOT1.0_nope", index=2, content_raw="!")).error(12002)
    (await _chunk(client, **common, index=2, input_state=10, content_raw="!")).ok()
    view = (await client.get(f"/_sim/streams/{first['id']}")).ok()
    assert (view["state"], view["content"]) == ("done", "Hello!")


async def test_rule65_replace_mode_must_keep_the_sent_prefix(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (
        await _chunk(client, msg_id=inbound["msg_id"], index=0, input_mode="replace", content_raw="abc")
    ).ok()
    common = {"msg_id": inbound["msg_id"], "stream_msg_id": first["id"], "input_mode": "replace"}
    (await _chunk(client, **common, index=1, content_raw="abcdef")).ok()
    changed = await _chunk(client, **common, index=2, content_raw="abX")
    # As captured from the platform: HTTP 404, code 40007, a finer err_code.
    changed.error(40007, status=404, err_code=40113003)
    assert changed.body["message"] == "已经提交的消息内容不可修改"
    # Dropping delivered text is a change too; the refused chunk used no index.
    (await _chunk(client, **common, index=2, content_raw="abcde")).error(40007, status=404, err_code=40113003)
    (await _chunk(client, **common, index=2, content_raw="abcdefg")).ok()


async def test_append_is_the_default_mode(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (await _chunk(client, msg_id=inbound["msg_id"], index=0, content_raw="ab")).ok()
    common = {"msg_id": inbound["msg_id"], "stream_msg_id": first["id"]}
    (await _chunk(client, **common, index=1, content_raw="ab")).ok()
    view = (await client.get(f"/_sim/streams/{first['id']}")).ok()
    assert view["content"] == "abab"


async def test_first_chunk_rules(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    anchor = {"msg_id": inbound["msg_id"], "msg_seq": 1}
    (await _chunk(client, **anchor, index=1, content_raw="x")).error(12002)
    (await _chunk(client, **anchor, index=0, content_raw=" \n")).error(50006)
    (await _chunk(client, **anchor, index=0, content_type="html", content_raw="x")).error(12002)
    (await _chunk(client, **anchor, index=0, input_state=2, content_raw="x")).error(12002)
    # None of the refused chunks used the msg_seq: the same one opens the stream now.
    (await _chunk(client, **anchor, index=0, content_raw="x")).ok()


async def test_markdown_stream_needs_markdown(client: SimClient) -> None:
    await client.settings(markdown_allowed=False)
    inbound = await client.user_says("u1")
    anchor = {"msg_id": inbound["msg_id"], "index": 0, "content_raw": "x"}
    (await _chunk(client, **anchor)).error(40034127)
    (await _chunk(client, **anchor, content_type="text")).ok()


async def test_a_stream_uses_one_msg_seq_and_one_reply(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    anchor = {"msg_id": inbound["msg_id"], "msg_seq": 5}
    first = (await _chunk(client, **anchor, index=0, input_mode="replace", content_raw="a")).ok()
    common = {**anchor, "stream_msg_id": first["id"], "input_mode": "replace"}
    (await _chunk(client, **common, index=1, content_raw="ab")).ok()
    (await _chunk(client, **common, index=2, input_state=10, content_raw="abc")).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=5)).error(40054005)
    for seq in (6, 7, 8):
        (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=seq)).ok()
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=9)).error(40034128)
    view = (await client.get(f"/_sim/streams/{first['id']}")).ok()
    assert (view["frames"], view["msg_id"], view["msg_seq"]) == (3, inbound["msg_id"], 5)


async def test_the_transcript_shows_each_frame_and_the_text_so_far(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (
        await _chunk(client, msg_id=inbound["msg_id"], index=0, input_mode="replace", content_raw="Hi")
    ).ok()
    common = {"msg_id": inbound["msg_id"], "stream_msg_id": first["id"], "input_mode": "replace"}
    (await _chunk(client, **common, index=1, content_raw="X")).error(40007, status=404, err_code=40113003)
    (await _chunk(client, **common, index=1, input_state=10, content_raw="Hi there")).ok()
    transcript = (await client.get("/_sim/transcript?scene=c2c&target=u1")).ok()
    frames = [entry for entry in transcript["entries"] if entry["direction"] == "out"]
    assert [(f["code"], f["stream"]["index"], f["stream"].get("text")) for f in frames] == [
        (0, 0, "Hi"),
        (40007, 1, None),
        (0, 1, "Hi there"),
    ]
    assert [f["stream"].get("done") for f in frames] == [False, None, True]
    assert frames[0]["kind"] == "passive" and frames[2]["kind"] == "stream chunk"


async def test_rule66_no_chunks_after_the_final_state(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (await _chunk(client, msg_id=inbound["msg_id"], index=0, input_state=10, content_raw="done")).ok()
    (
        await _chunk(client, msg_id=inbound["msg_id"], stream_msg_id=first["id"], index=1, content_raw="more")
    ).error(12002)


async def test_rule67_an_abandoned_stream_rolls_back_to_its_first_chunk(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    first = (await _chunk(client, msg_id=inbound["msg_id"], index=0, content_raw="first")).ok()
    (
        await _chunk(
            client, msg_id=inbound["msg_id"], stream_msg_id=first["id"], index=1, content_raw=" more"
        )
    ).ok()
    await client.advance(61)
    view = (await client.get(f"/_sim/streams/{first['id']}")).ok()
    assert (view["state"], view["content"]) == ("rolled_back", "first")


async def test_rule68_legacy_stream_field(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    anchor = {"msg_id": inbound["msg_id"], "msg_type": 2}
    (
        await client.post(
            "/v2/users/u1/messages", {**anchor, "markdown": {"content": "a"}, "stream": {"id": None}}
        )
    ).error(12002)
    first = (
        await client.post(
            "/v2/users/u1/messages",
            {**anchor, "msg_seq": 11, "markdown": {"content": "a"}, "stream": {"state": 1, "index": 0}},
        )
    ).ok()
    final = {**anchor, "msg_seq": 12, "stream": {"state": 10, "index": 1, "id": first["id"]}}
    unterminated = await client.post("/v2/users/u1/messages", {**final, "markdown": {"content": "b"}})
    unterminated.error(40034124)
    assert unterminated.body["message"] == "流式消息md分片需要\n结束"
    (await client.post("/v2/users/u1/messages", {**final, "markdown": {"content": "b\n"}})).ok()
    view = (await client.get(f"/_sim/streams/{first['id']}")).ok()
    assert (view["state"], view["content"]) == ("done", "ab\n")


async def test_rule21_a_stream_frame_may_carry_both_ids_and_streams_on_the_msg_id(client: SimClient) -> None:
    inbound = await client.user_says("u1")
    # As OpenClaw's qqbot sends every frame: msg_id and event_id both set (its event_id may
    # even be the message's id); the platform streams it on the msg_id.
    both = {"msg_id": inbound["msg_id"], "event_id": inbound["msg_id"], "msg_seq": 1}
    first = (await _chunk(client, **both, index=0, input_mode="replace", content_raw="a")).ok()
    common = {**both, "stream_msg_id": first["id"], "input_mode": "replace"}
    (await _chunk(client, **common, index=1, input_state=10, content_raw="ab")).ok()
    view = (await client.get(f"/_sim/streams/{first['id']}")).ok()
    assert (view["state"], view["msg_id"]) == ("done", inbound["msg_id"])
    # The reply was charged to the msg_id: its msg_seq is used.
    (await client.send_c2c("u1", msg_id=inbound["msg_id"], msg_seq=1)).error(40054005)
    # `/messages` still takes only one of the two.
    both_ids = {"msg_id": inbound["msg_id"], "event_id": inbound["event_id"], "msg_seq": 2}
    (await client.send_c2c("u1", **both_ids)).error(12002)


async def test_stream_both_ids_can_be_refused_as_on_messages(client: SimClient) -> None:
    await client.settings(stream_both_ids="reject")
    inbound = await client.user_says("u1")
    both = {"msg_id": inbound["msg_id"], "event_id": inbound["event_id"]}
    (await _chunk(client, **both, index=0, content_raw="a")).error(12002)
